#!/usr/bin/env python3
"""Golden files for tq's fake-quantization modules, written by PyTorch (Debian's 1.13):

  /usr/bin/python3 tools/gen_golden_fake_quant.py --out tests/golden

learnable.json          torch._fake_quantize_learnable_per_tensor_affine / _per_channel_affine:
                        output and the gradients for x, scale and zero_point (with and without
                        LSQ's gradient scaling).
fake_quant_modules.json every default fake quantizer of fake_quantize.py run over three batches
                        (the third with the observer disabled): scale, zero_point, output and the
                        input gradient after each batch; and a LearnableFakeQuantize through
                        static estimation then parameter learning.
fq_state_*.pt           FakeQuantize / LearnableFakeQuantize state_dicts saved by PyTorch, with the
                        output each gives on a fixed input (fq_state_expected.json).
adaround.json           AdaroundFakeQuantizer: PyTorch 1.13 does not ship it, so the reference is
                        tools/adaround_reference.py, the seed's formulas in PyTorch tensor ops.
"""
import argparse
import math
import os
import sys
from collections import OrderedDict

import torch
import torch.ao.quantization.fake_quantize as F
from torch.ao.quantization import observer as O
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adaround_reference import adaround_reference  # noqa: E402
from golden_io import tensor_json, write_json  # noqa: E402

torch.manual_seed(20261124)


tj = tensor_json


def inputs(shape, spread=3.0):
    x = torch.randn(shape) * spread
    flat = x.view(-1)
    k = min(8, flat.numel())
    flat[:k] = (torch.arange(k, dtype=torch.float32) - 4) * 0.25  # near-tie values
    return x


def learnable_cases():
    cases = []
    for shape in [[37], [4, 50]]:
        for qmin, qmax, zp in [(0, 255, 3.3), (-128, 127, 0.0), (0, 15, 7.2), (0, 255, 200.6)]:
            for scaled in [False, True]:
                x = inputs(shape).requires_grad_(True)
                scale = torch.tensor([0.071]).requires_grad_(True)
                z = torch.tensor([zp]).requires_grad_(True)
                gf = 1.0 / math.sqrt(x.numel() * qmax) if scaled else 1.0
                y = torch._fake_quantize_learnable_per_tensor_affine(x, scale, z, qmin, qmax, gf)
                dy = torch.randn(shape)
                (y * dy).sum().backward()
                cases.append({"kind": "per_tensor", "quant_min": qmin, "quant_max": qmax, "grad_factor": gf,
                              "x": tj(x), "scale": tj(scale), "zero_point": tj(z), "dy": tj(dy), "y": tj(y),
                              "dx": tj(x.grad), "dscale": tj(scale.grad), "dzero_point": tj(z.grad)})
    for axis, shape in [(0, [3, 40]), (1, [2, 4, 15]), (2, [2, 3, 5])]:
        c = shape[axis]
        for qmin, qmax in [(0, 255), (-128, 127)]:
            x = inputs(shape).requires_grad_(True)
            scale = (torch.rand(c) * 0.1 + 0.02).requires_grad_(True)
            z = (torch.rand(c) * 0.8 * (qmax - qmin) + qmin + 0.1 * (qmax - qmin)).requires_grad_(True)
            gf = 1.0 / math.sqrt(x.numel() * qmax)
            y = torch._fake_quantize_learnable_per_channel_affine(x, scale, z, axis, qmin, qmax, gf)
            dy = torch.randn(shape)
            (y * dy).sum().backward()
            cases.append({"kind": "per_channel", "axis": axis, "quant_min": qmin, "quant_max": qmax,
                          "grad_factor": gf, "x": tj(x), "scale": tj(scale), "zero_point": tj(z), "dy": tj(dy),
                          "y": tj(y), "dx": tj(x.grad), "dscale": tj(scale.grad), "dzero_point": tj(z.grad)})
    return cases


MODULES = [
    "default_fake_quant", "default_weight_fake_quant", "default_dynamic_fake_quant",
    "default_fixed_qparams_range_neg1to1_fake_quant", "default_fixed_qparams_range_0to1_fake_quant",
    "default_per_channel_weight_fake_quant", "default_embedding_fake_quant", "default_fused_act_fake_quant",
    "default_fused_wt_fake_quant", "default_fused_per_channel_wt_fake_quant",
    "fused_wt_fake_quant_range_neg_127_to_127", "fused_per_channel_wt_fake_quant_range_neg_127_to_127",
]


def module_cases():
    cases = []
    for name in MODULES:
        fq = getattr(F, name)()
        per_channel = fq.is_per_channel
        shape = [6, 20] if per_channel else [5, 24]
        steps = []
        batches = [inputs(shape, s) + m for s, m in [(1.0, 0.0), (3.0, 0.5), (2.0, -0.3)]]
        for i, b in enumerate(batches):
            if i == 2:
                fq.apply(torch.ao.quantization.disable_observer)
            x = b.clone().requires_grad_(True)
            y = fq(x)
            dy = torch.randn(shape)
            (y * dy).sum().backward()
            steps.append({"x": tj(x), "dy": tj(dy), "y": tj(y), "dx": tj(x.grad), "scale": tj(fq.scale),
                          "zero_point": tj(fq.zero_point)})
        cases.append({"name": name, "steps": steps})
    # LSQ module: static estimation on batch 1, then learned qparams on batches 2-3.
    lsq = _LearnableFakeQuantize(observer=O.MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                 use_grad_scaling=True)
    steps = []
    for i in range(3):
        if i == 1:
            lsq.enable_param_learning()
        x = (inputs([4, 30]) + 0.5).requires_grad_(True)
        y = lsq(x)
        dy = torch.randn(x.shape)
        (y * dy).sum().backward()
        step = {"x": tj(x), "dy": tj(dy), "y": tj(y), "dx": tj(x.grad), "scale": tj(lsq.scale),
                "zero_point": tj(lsq.zero_point)}
        if lsq.scale.grad is not None:
            step["dscale"] = tj(lsq.scale.grad)
            step["dzero_point"] = tj(lsq.zero_point.grad)
            lsq.scale.grad = None
            lsq.zero_point.grad = None
        steps.append(step)
    cases.append({"name": "learnable_fake_quantize", "steps": steps})
    return cases


def state_files(out):
    expected = {}
    made = {
        "fake_quant": F.default_fake_quant(),
        "per_channel_weight": F.default_per_channel_weight_fake_quant(),
        "fused_act": F.default_fused_act_fake_quant(),
        "learnable": _LearnableFakeQuantize(observer=O.MovingAverageMinMaxObserver, quant_min=0, quant_max=255),
    }
    for key, fq in made.items():
        shape = [4, 9]
        for _ in range(3):
            fq(torch.randn(shape) * 2 + 0.3)
        torch.save(dict(fq.state_dict()), os.path.join(out, f"fq_state_{key}.pt"))
        if key == "learnable":
            fq.toggle_observer_update(False)
        else:
            fq.apply(torch.ao.quantization.disable_observer)
        x = torch.randn(shape) * 2
        expected[key] = {"x": tj(x), "y": tj(fq(x)), "keys": list(fq.state_dict().keys())}
    return expected


def adaround_cases():
    cases = []
    for per_channel, shape in [(False, [8, 16]), (True, [6, 10]), (True, [4, 3, 2, 2])]:
        w = torch.randn(shape) * 0.5
        dy = torch.randn(shape)
        cases.append({"per_channel": per_channel, "ch_axis": 0, "w": tj(w), "dy": tj(dy),
                      **{k: tj(v) for k, v in adaround_reference(w, dy, per_channel).items()}})
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "learnable.json"), {"cases": learnable_cases()})
    write_json(os.path.join(args.out, "fake_quant_modules.json"), {"cases": module_cases()})
    write_json(os.path.join(args.out, "fq_state_expected.json"), {"states": state_files(args.out)})
    write_json(os.path.join(args.out, "adaround.json"), {"cases": adaround_cases()})


if __name__ == "__main__":
    main()
