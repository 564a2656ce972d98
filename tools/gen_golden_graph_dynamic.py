#!/usr/bin/env python3
"""Golden data for graph-mode dynamic quantization: a small Embedding + Linear model, scripted
and traced, and PyTorch's eager quantize_dynamic output on it (Linear: default_dynamic_qconfig;
Embedding: float_qparams_weight_only_qconfig), engine onednn.

  /usr/bin/python3 tools/gen_golden_graph_dynamic.py --out tests/golden/graph
"""
import argparse
import os
import sys

import torch
from torch.ao.quantization import default_dynamic_qconfig, float_qparams_weight_only_qconfig, quantize_dynamic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import tensor_json, write_json  # noqa: E402


class TextNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(100, 16)
        self.fc1 = torch.nn.Linear(16, 32)
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(32, 8)

    def forward(self, tokens):
        x = self.embed(tokens).mean(1)
        return self.fc2(self.relu(self.fc1(x)))


def save(module, path):
    module.save(path + ".tmp")
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(20261123)
    model = TextNet().eval()
    tokens = torch.randint(0, 100, (4, 10))
    save(torch.jit.script(model), os.path.join(args.out, "dynamic_model_script.pt"))
    save(torch.jit.trace(model, tokens), os.path.join(args.out, "dynamic_model_trace.pt"))
    q = quantize_dynamic(model, {torch.nn.Linear: default_dynamic_qconfig,
                                 torch.nn.Embedding: float_qparams_weight_only_qconfig})
    with torch.no_grad():
        out = q(tokens)
        float_out = model(tokens)
    write_json(os.path.join(args.out, "dynamic.json"), {
        "engine": "onednn", "tokens": tensor_json(tokens), "output": tensor_json(out),
        "float_output": tensor_json(float_out)})


if __name__ == "__main__":
    main()
