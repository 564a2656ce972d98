#!/usr/bin/env python3
"""Reference outputs of PyTorch 2.x's HistogramObserver (PyTorch 1.13 builds its histogram over an integer-truncated range and drops data).
Run with a PyTorch 2.x python:  python3 gen_histogram_reference.py > histogram_observer_reference.json
Each case: observer arguments, the calibration batches (flattened data + shape), and after every batch
the observer's min_val, max_val, histogram, and calculate_qparams() scale / zero_point."""
import json, torch
from torch.ao.quantization.observer import HistogramObserver
torch.manual_seed(20261122)

def batches(kind, n):
    if kind == "normal": return [torch.randn(n)]
    if kind == "growing": return [torch.randn(n) * s for s in (0.5, 2.0, 8.0)]
    if kind == "shrinking": return [torch.randn(n) * s for s in (8.0, 1.0, 0.1)]
    if kind == "shifting": return [torch.randn(n) + m for m in (-3.0, 0.0, 5.0)]
    if kind == "fractional": return [torch.rand(n) * 5.2 - 1.5]   # range [-1.5, 3.7): 1.13 truncates it to [-1, 3]
    if kind == "positive": return [torch.rand(n) * 0.9 + 0.05]
    if kind == "outliers": return [torch.cat([torch.randn(n), torch.tensor([60.0, -7.0])])]
    if kind == "constant": return [torch.full((n,), 0.375), torch.randn(n)]
    if kind == "relu": return [torch.relu(torch.randn(n)) for _ in range(2)]
    if kind == "tiny": return [torch.randn(n) * 1e-6]
    raise KeyError(kind)

configs = [
    dict(bins=2048, dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False),
    dict(bins=2048, dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=True),
    dict(bins=256, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, reduce_range=False),
    dict(bins=512, dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=0, quant_max=15),
]
cases = []
for cfg in configs:
    for kind in ["normal", "growing", "shrinking", "shifting", "fractional", "positive", "outliers", "constant", "relu", "tiny"]:
        ob = HistogramObserver(**cfg)
        steps = []
        bs = batches(kind, 1500)
        for b in bs:
            ob(b)
            s, z = ob.calculate_qparams()
            steps.append({"min_val": ob.min_val.item(), "max_val": ob.max_val.item(),
                          "histogram": ob.histogram.tolist(), "scale": s.tolist(), "zero_point": z.tolist()})
        cfg_out = {k: (str(v).replace("torch.", "") if isinstance(v, (torch.dtype, torch.qscheme)) else v) for k, v in cfg.items()}
        cases.append({"config": cfg_out, "kind": kind,
                      "batches": [{"shape": list(b.shape), "data": b.tolist()} for b in bs], "after_each_batch": steps})
print(json.dumps({"torch": torch.__version__, "observer": "HistogramObserver", "cases": cases}))
