#!/usr/bin/env python3
"""Golden data for tq's graph-mode QAT, written by PyTorch FX (Debian's 1.13):

  /usr/bin/python3 tools/gen_golden_graph_qat.py --out tests/golden/graph

A small residual CNN with every trainable pattern graph-mode QAT has (conv + bn + relu without a
conv bias, conv + bn with one, conv + relu, linear + relu, linear) plus add + relu, max_pool2d,
adaptive_avg_pool2d and flatten. Per backend (onednn: per-channel weights; qnnpack: per-tensor),
with the model's seeded weights and non-trivial batch-norm statistics:
  prepare_qat_fx(model.train(), get_default_qat_qconfig_mapping(backend)), 5 steps of
  SGD(lr 0.05, momentum 0.9) on cross-entropy, then eval() and convert_fx, run on the engine.

Writes
  qat_model_script.pt     torch.jit.script of the float model (eval mode), what tq loads
  qat_<backend>.json      {backend, lr, momentum, steps: [{input, target}], losses,
                           points: [{scale, zero_point}]   every activation fake quantizer after
                                   training, once each, in graph order (shared ones once),
                           weight_scales: [{module, scales}]  each layer's weight fake
                                   quantizer's qparams after training (calculate_qparams, what
                                   convert starts from), layers in graph order,
                           test_input, output (int8 model, dequantized), output_scale}
"""
import argparse
import os
import sys

import torch
from torch.ao.quantization import get_default_qat_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import tensor_json, write_json  # noqa: E402

BACKENDS = ["onednn", "qnnpack"]
STEPS, BATCH, SIZE = 5, 8, 12
LR, MOMENTUM = 0.05, 0.9


class QatNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.relu1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.relu2 = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool2d(2)
        self.conv3 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.relu3 = torch.nn.ReLU()
        self.gap = torch.nn.AdaptiveAvgPool2d(2)
        self.fc1 = torch.nn.Linear(64, 32)
        self.relu4 = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(32, 10)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(x + self.bn2(self.conv2(x)))
        x = self.pool(x)
        x = self.relu3(self.conv3(x))
        x = torch.flatten(self.gap(x), 1)
        return self.fc2(self.relu4(self.fc1(x)))


def build():
    torch.manual_seed(0)
    m = QatNet()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for bn in (m.bn1, m.bn2):
            n = bn.num_features
            bn.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            bn.running_var.copy_(0.5 + torch.rand(n, generator=g))
            bn.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
            bn.bias.copy_(0.1 * torch.randn(n, generator=g))
    return m


def data():
    g = torch.Generator().manual_seed(1)
    steps = [(torch.randn(BATCH, 1, SIZE, SIZE, generator=g), torch.randint(0, 10, (BATCH,), generator=g))
             for _ in range(STEPS)]
    test_input = torch.randn(BATCH, 1, SIZE, SIZE, generator=g)
    return steps, test_input


def run(backend, out):
    torch.backends.quantized.engine = backend
    model = build()
    steps, test_input = data()
    prepared = prepare_qat_fx(model.train(), get_default_qat_qconfig_mapping(backend),
                              example_inputs=(steps[0][0],))
    opt = torch.optim.SGD(prepared.parameters(), lr=LR, momentum=MOMENTUM)
    losses = []
    for x, y in steps:
        loss = torch.nn.functional.cross_entropy(prepared(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    points, seen, weight_scales = [], set(), []
    for node in prepared.graph.nodes:
        if node.op != "call_module":
            continue
        m = prepared.get_submodule(node.target)
        if node.target.startswith("activation_post_process") and id(m) not in seen:
            seen.add(id(m))
            scale, zp = m.calculate_qparams()
            points.append({"node": node.target, "scale": scale.item(), "zero_point": int(zp.item())})
        elif hasattr(m, "weight_fake_quant"):
            scale, _ = m.weight_fake_quant.calculate_qparams()
            weight_scales.append({"module": node.target, "scales": scale.tolist()})
    prepared.eval()
    quantized = convert_fx(prepared)
    with torch.no_grad():
        output = quantized(test_input)
    output_scale = [p for p in points][-1]["scale"]
    write_json(os.path.join(out, f"qat_{backend}.json"), {
        "backend": backend, "lr": LR, "momentum": MOMENTUM,
        "steps": [{"input": tensor_json(x), "target": y.tolist()} for x, y in steps],
        "losses": losses, "points": points, "weight_scales": weight_scales,
        "test_input": tensor_json(test_input), "output": tensor_json(output), "output_scale": output_scale})
    print(f"qat_{backend}: losses {['%.6f' % l for l in losses]}, {len(points)} points", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    path = os.path.join(args.out, "qat_model_script.pt")
    torch.jit.script(build().eval()).save(path + ".tmp")
    os.replace(path + ".tmp", path)
    for backend in BACKENDS:
        run(backend, args.out)


if __name__ == "__main__":
    main()
