#!/usr/bin/env python3
"""Loads observer states written by tq (test_state_dict) into PyTorch's observers and checks that
PyTorch computes the same qparams tq did. Usage: check_cpp_states_in_pytorch.py DIR"""
import json
import sys
from collections import OrderedDict

import torch
from torch.ao.quantization import observer as O

d = sys.argv[1]
expected = json.load(open(f"{d}/cpp_state_expected.json"))
observers = {
    "minmax": O.MinMaxObserver(),
    "per_channel": O.PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric),
    "histogram": O.HistogramObserver(),
}
failures = 0
for key, ob in observers.items():
    # A plain dict carries no module version; PyTorch 1.13 then assumes the pre-1.7 per-channel
    # buffer names (min_vals). State the current version, as a state_dict() would.
    sd = OrderedDict(torch.load(f"{d}/cpp_state_{key}.pt"))
    sd._metadata = {"": {"version": 3}}
    ob.load_state_dict(sd)
    s, z = ob.calculate_qparams()
    want = expected[key]
    ok = s.tolist() == want["scale"] and [float(v) for v in z.tolist()] == want["zero_point"]
    print(f"{key}: PyTorch {s.tolist()} {z.tolist()}  tq {want['scale']} {want['zero_point']}  {'ok' if ok else 'MISMATCH'}")
    failures += not ok
# Fake quantizers: load tq's state, switch the observer off, compare the output on tq's input.
import torch.ao.quantization.fake_quantize as F
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

fq_expected = json.load(open(f"{d}/cpp_fq_state_expected.json"))
fake_quants = {
    "fake_quant": F.default_fake_quant(),
    "per_channel_weight": F.default_per_channel_weight_fake_quant(),
    "learnable": _LearnableFakeQuantize(observer=O.MovingAverageMinMaxObserver, quant_min=0, quant_max=255),
}
for key, fq in fake_quants.items():
    sd = OrderedDict(torch.load(f"{d}/cpp_fq_state_{key}.pt"))
    sd._metadata = {"": {"version": 3}, "activation_post_process": {"version": 3}}
    fq.load_state_dict(sd)
    if key == "learnable":
        fq.toggle_observer_update(False)
    else:
        fq.apply(torch.ao.quantization.disable_observer)
    want = fq_expected[key]
    y = fq(torch.tensor(want["x"]).reshape(want["shape"]))
    ok = y.flatten().tolist() == want["y"]
    print(f"{key}: output {'equal' if ok else 'MISMATCH'} ({y.numel()} values)")
    failures += not ok

total = len(observers) + len(fake_quants)
print(f"{total - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
