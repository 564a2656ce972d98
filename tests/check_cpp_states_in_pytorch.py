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
print(f"{len(observers) - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
