#!/usr/bin/env python3
"""PyTorch's converted model loads the int8 state tq wrote (test_pytorch_interop) with
model.load_state_dict(torch.load(f)) and computes tq's output.
Usage: check_pytorch_loads_tq_int8.py OUTPUT_DIR"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from interop_net import Net, quantized  # noqa: E402

d = sys.argv[1]
io = torch.load(f"{d}/interop_int8_io.pt")
# Weights and qparams here are arbitrary: every one must come from tq's file.
torch.manual_seed(1)
model = quantized(Net().eval(), [torch.randn(2, 1, 8, 8) * 10])
model.load_state_dict(torch.load(f"{d}/interop_int8_state.pt"))
with torch.no_grad():
    y = model(io["x"])
equal = torch.equal(y, io["y"])
print(f"PyTorch on tq's int8 state: {'equal to tq' if equal else 'DIFFERENT from tq'} "
      f"(max |diff| {(y - io['y']).abs().max().item():g}, {y.numel()} values)")
sys.exit(0 if equal else 1)
