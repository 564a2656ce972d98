#!/usr/bin/env python3
"""PyTorch FX's QAT model of a TorchScript ResNet-18 (the graph demo's), as a TorchScript file
LibTorch can train, for timing against tq's graph-mode QAT in one process:

  /usr/bin/python3 tools/fx_qat_model.py --model build/demo/resnet18_fashion.pt \
      --out build/demo/resnet18_fashion_fx_qat.pt [--backend onednn] [--batch 64]

Loads the scripted model's weights into torchvision's resnet18 (first convolution 1->64, 3x3,
stride 1, as tools/graph_demo.py builds it), runs prepare_qat_fx with
get_default_qat_qconfig_mapping(backend) in training mode, and traces the prepared model on a
batch (PyTorch 1.13 cannot script FX's QAT modules): the trace records every operation of a
training step's forward (fake quantization with its observer updates, conv + batch norm on batch
statistics, running-statistics updates), so LibTorch replays PyTorch's QAT forward and autograd
its backward. Written to a temporary name, then renamed.

With --time-steps N it also times, in this Python process, N training steps (forward,
cross-entropy, backward, SGD) of the float model and of the FX QAT model as PyTorch users run
them (eager), interleaved, and prints the medians as JSON.
"""
import argparse
import json
import os
import statistics
import time
import warnings

import torch
import torchvision
from torch.ao.quantization import get_default_qat_qconfig_mapping
from torch.ao.quantization.quantize_fx import prepare_qat_fx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend", default="onednn")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--time-steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = torch.nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
    m.load_state_dict(torch.jit.load(args.model).state_dict())
    x = torch.randn(args.batch, 1, 28, 28)
    prepared = prepare_qat_fx(m.train(), get_default_qat_qconfig_mapping(args.backend), example_inputs=(x,))
    traced = torch.jit.trace(prepared, x, check_trace=False)
    traced.save(args.out + ".tmp")
    os.replace(args.out + ".tmp", args.out)
    if args.time_steps:
        fp32 = torchvision.models.resnet18(num_classes=10)
        fp32.conv1 = torch.nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
        fp32.load_state_dict(torch.jit.load(args.model).state_dict())
        fp32.train()
        y = torch.randint(0, 10, (args.batch,))
        models = {"fp32 (PyTorch eager) ms": fp32, "PyTorch FX QAT (eager) ms": prepared}
        opts = {k: torch.optim.SGD(m.parameters(), lr=1e-6, momentum=0.9) for k, m in models.items()}
        times = {k: [] for k in models}
        for it in range(-2, args.time_steps):
            for k, m in models.items():
                t0 = time.perf_counter()
                loss = torch.nn.functional.cross_entropy(m(x), y)
                opts[k].zero_grad()
                loss.backward()
                opts[k].step()
                if it >= 0:
                    times[k].append(1000 * (time.perf_counter() - t0))
        res = {"batch": args.batch, "threads": args.threads, "iters": args.time_steps}
        res.update({k: round(statistics.median(v), 1) for k, v in times.items()})
        res["FX QAT / fp32"] = round(res["PyTorch FX QAT (eager) ms"] / res["fp32 (PyTorch eager) ms"], 2)
        print(json.dumps(res))


if __name__ == "__main__":
    main()
