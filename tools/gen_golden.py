#!/usr/bin/env python3
"""Writes tq's golden files from PyTorch (Debian's python3-torch 1.13: /usr/bin/python3).

  /usr/bin/python3 tools/gen_golden.py --out tests/golden

observers.json       MinMax / MovingAverage / PerChannel / MovingAveragePerChannel observers:
                     arguments, calibration batches, and min_val, max_val, scale, zero_point
                     after each batch.
fake_quantize.json   torch.fake_quantize_per_tensor_affine / _per_channel_affine: input, qparams,
                     output and the gradient of sum(y * dy) with respect to x.
quantize.json        torch.quantize_per_tensor / _per_channel int_repr() values.
state_*.pt           observer state_dicts saved by PyTorch (torch.save of a plain dict), with
                     state_expected.json holding the qparams PyTorch computes from them.

HistogramObserver's golden data comes from PyTorch 2.x (histogram_observer_reference.json, written
by tools/gen_histogram_reference.py): 1.13 truncates the histogram range to integers.
Values are float32 written as exact decimal doubles. Only finite values are written (JSON has no
Inf/NaN); tests cover non-finite inputs with hand-derived expectations.
"""
import argparse
import os
import sys

import torch
from torch.ao.quantization import observer as O

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import tensor_json, write_json  # noqa: E402

torch.manual_seed(20261123)


def name(v):
    return str(v).replace("torch.", "")


def batches(kind, shape):
    n = 1
    for s in shape:
        n *= s
    r = lambda scale=1.0, shift=0.0: torch.randn(shape) * scale + shift
    table = {
        "normal": lambda: [r()],
        "growing": lambda: [r(0.5), r(2.0), r(8.0)],
        "shrinking": lambda: [r(8.0), r(1.0), r(0.1)],
        "shifting": lambda: [r(1.0, -3.0), r(1.0, 0.0), r(1.0, 5.0)],
        "tiny": lambda: [r(1e-6)],
        "huge": lambda: [r(1e30)],
        "denormal": lambda: [r(1e-40)],
        "constant": lambda: [torch.full(shape, 0.375)],
        "zeros": lambda: [torch.zeros(shape)],
        "positive": lambda: [torch.rand(shape) * 3 + 0.5],
        "negative": lambda: [-torch.rand(shape) * 3 - 0.5],
        "mixed_scales": lambda: [r() * torch.logspace(-3, 3, shape[-1]).expand(shape)],
    }
    return table[kind]()


def observer_cases():
    per_tensor_configs = [
        dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine),
        dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=True),
        dict(dtype=torch.qint8, qscheme=torch.per_tensor_affine),
        dict(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric),
        dict(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, reduce_range=True),
        dict(dtype=torch.quint8, qscheme=torch.per_tensor_symmetric),
        dict(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=-127, quant_max=127, eps=2 ** -12),
        dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=0, quant_max=15),
        dict(dtype=torch.quint8, qscheme=torch.per_tensor_symmetric, quant_min=0, quant_max=15),
        dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=0, quant_max=127),
        dict(dtype=torch.qint32, qscheme=torch.per_tensor_affine),
        dict(dtype=torch.qint32, qscheme=torch.per_tensor_symmetric),
    ]
    per_channel_configs = [
        dict(dtype=torch.quint8, qscheme=torch.per_channel_affine),
        dict(dtype=torch.qint8, qscheme=torch.per_channel_symmetric),
        dict(dtype=torch.qint8, qscheme=torch.per_channel_affine, reduce_range=True),
        dict(dtype=torch.quint8, qscheme=torch.per_channel_affine_float_qparams),
        dict(dtype=torch.quint4x2, qscheme=torch.per_channel_affine_float_qparams),
        dict(dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127, eps=2 ** -12),
    ]
    kinds = ["normal", "growing", "shrinking", "shifting", "tiny", "huge", "denormal", "constant", "zeros",
             "positive", "negative"]
    shapes = [[1], [7], [4, 33], [2, 3, 5, 6]]
    cases = []
    for cls, extra in [(O.MinMaxObserver, {}), (O.MovingAverageMinMaxObserver, {"averaging_constant": 0.25})]:
        for cfg in per_tensor_configs:
            for i, kind in enumerate(kinds):
                shape = shapes[i % len(shapes)]
                cases.append(run_observer(cls, {**cfg, **extra}, kind, shape))
    for cls, extra in [(O.PerChannelMinMaxObserver, {}),
                       (O.MovingAveragePerChannelMinMaxObserver, {"averaging_constant": 0.5})]:
        for cfg in per_channel_configs:
            for ch_axis, shape in [(0, [3, 10]), (1, [2, 4, 5]), (-1, [6, 2, 7]), (0, [1, 1]), (1, [2, 5, 3, 3])]:
                for kind in ["normal", "growing", "shifting", "constant", "mixed_scales", "positive"]:
                    cases.append(run_observer(cls, {**cfg, **extra, "ch_axis": ch_axis}, kind, shape))
    return cases


def run_observer(cls, cfg, kind, shape):
    ob = cls(**cfg)
    steps = []
    bs = batches(kind, shape)
    for b in bs:
        ob(b)
        s, z = ob.calculate_qparams()
        steps.append({"min_val": tensor_json(ob.min_val), "max_val": tensor_json(ob.max_val),
                      "scale": tensor_json(s), "zero_point": tensor_json(z)})
    cfg_out = {k: (name(v) if isinstance(v, (torch.dtype, torch.qscheme)) else v) for k, v in cfg.items()}
    return {"observer": cls.__name__, "config": cfg_out, "kind": kind,
            "batches": [tensor_json(b) for b in bs], "after_each_batch": steps}


def fake_quant_input(n):
    x = torch.randn(n) * 3
    # Exact ties at half steps and values far outside the range.
    x[: n // 8] = (torch.arange(n // 8, dtype=torch.float32) - n // 16) * 0.5
    special = torch.tensor([1e6, -1e6, 1e-30, -0.0])[: max(0, n - n // 8)]
    x[n // 8: n // 8 + len(special)] = special
    return x


def fake_quantize_cases():
    cases = []
    per_tensor = [(0.1, 0, 0, 255), (0.5, 3, 0, 255), (0.25, 0, -128, 127), (0.0123, -5, -128, 127),
                  (1.0, 8, 0, 15), (0.5, 128, 0, 255), (1e-3, 0, -64, 63), (3.0, 0, 0, 0), (0.007, 200, 0, 255)]
    for scale, zp, qmin, qmax in per_tensor:
        for shape in [[1], [37], [5, 64]]:
            n = 1
            for s in shape:
                n *= s
            x = fake_quant_input(n).reshape(shape).requires_grad_(True)
            y = torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
            dy = torch.randn(shape)
            (y * dy).sum().backward()
            cases.append({"kind": "per_tensor", "scale": scale, "zero_point": zp, "quant_min": qmin,
                          "quant_max": qmax, "x": tensor_json(x), "dy": tensor_json(dy), "y": tensor_json(y),
                          "dx": tensor_json(x.grad)})
    for axis, shape in [(0, [4, 50]), (1, [3, 5, 20]), (-1, [10, 6]), (2, [2, 3, 4, 5]), (0, [1, 3])]:
        c = shape[axis]
        for qmin, qmax, zp_kind in [(0, 255, "int"), (-128, 127, "int"), (0, 15, "int"), (-128, 127, "zero"),
                                    (0, 255, "float")]:
            n = 1
            for s in shape:
                n *= s
            x = fake_quant_input(n).reshape(shape).requires_grad_(True)
            scale = torch.rand(c) * 0.2 + 0.01
            if zp_kind == "int":
                zp = torch.randint(qmin, qmax + 1, (c,), dtype=torch.int32)
            elif zp_kind == "zero":
                zp = torch.zeros(c, dtype=torch.int32)
            else:
                zp = torch.rand(c) * (qmax - qmin) + qmin
            # PyTorch takes only non-negative axes; tq also accepts negative ones.
            y = torch.fake_quantize_per_channel_affine(x, scale, zp, axis % len(shape), qmin, qmax)
            dy = torch.randn(shape)
            (y * dy).sum().backward()
            cases.append({"kind": "per_channel", "axis": axis, "quant_min": qmin, "quant_max": qmax,
                          "scale": tensor_json(scale), "zero_point": tensor_json(zp), "x": tensor_json(x),
                          "dy": tensor_json(dy), "y": tensor_json(y), "dx": tensor_json(x.grad)})
    return cases


def quantize_cases():
    cases = []
    for dtype in [torch.quint8, torch.qint8, torch.qint32]:
        for scale, zp in [(0.05, 0), (0.3, 10), (0.01, -3)]:
            if dtype == torch.quint8 and zp < 0:
                continue
            x = fake_quant_input(200) * 4
            q = torch.quantize_per_tensor(x, scale, zp, dtype)
            cases.append({"kind": "per_tensor", "dtype": name(dtype), "scale": scale, "zero_point": zp,
                          "x": tensor_json(x), "q": tensor_json(q.int_repr().to(torch.int64)),
                          "dq": tensor_json(q.dequantize())})
    for dtype in [torch.quint8, torch.qint8]:
        x = fake_quant_input(120).reshape(4, 30)
        scale = (torch.rand(4) * 0.1 + 0.01).double()  # float32 values, as tq stores scales
        zp = torch.randint(0, 20, (4,), dtype=torch.int64)
        q = torch.quantize_per_channel(x, scale, zp, 0, dtype)
        cases.append({"kind": "per_channel", "dtype": name(dtype), "axis": 0,
                      "scale": tensor_json(scale.float()), "zero_point": tensor_json(zp), "x": tensor_json(x),
                      "q": tensor_json(q.int_repr().to(torch.int64)), "dq": tensor_json(q.dequantize())})
    return cases


def state_files(out):
    expected = {}
    made = {
        "minmax": (O.MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric), [4, 9]),
        "moving_average": (O.MovingAverageMinMaxObserver(averaging_constant=0.1), [4, 9]),
        "per_channel": (O.PerChannelMinMaxObserver(ch_axis=1, dtype=torch.qint8,
                                                   qscheme=torch.per_channel_symmetric), [3, 5, 4]),
        "moving_average_per_channel": (O.MovingAveragePerChannelMinMaxObserver(ch_axis=0), [6, 8]),
        "fixed_qparams": (O.default_fixed_qparams_range_neg1to1_observer(), [3]),
    }
    for key, (ob, shape) in made.items():
        for _ in range(3):
            ob(torch.randn(shape) * 2 + 0.3)
        torch.save(dict(ob.state_dict()), os.path.join(out, f"state_{key}.pt"))
        s, z = ob.calculate_qparams()
        expected[key] = {"scale": tensor_json(s), "zero_point": tensor_json(z),
                         "keys": list(ob.state_dict().keys())}
    return expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "observers.json"), {"cases": observer_cases()})
    write_json(os.path.join(args.out, "fake_quantize.json"), {"cases": fake_quantize_cases()})
    write_json(os.path.join(args.out, "quantize.json"), {"cases": quantize_cases()})
    write_json(os.path.join(args.out, "state_expected.json"), {"states": state_files(args.out)})


if __name__ == "__main__":
    main()
