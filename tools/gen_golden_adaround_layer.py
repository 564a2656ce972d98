#!/usr/bin/env python3
"""Golden data for the AdaRound algorithm on single layers (tools/adaround_reference.py's
adaround_layer_reference, run with Debian's PyTorch): the layer, its cached inputs (already
quantized, as the preceding layers would give them) and float targets, the options, and the
rounding the reference chose. tests/test_adaround_algorithm.cpp runs tq on the same data.

  /usr/bin/python3 tools/gen_golden_adaround_layer.py --out tests/golden
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adaround_reference import adaround_layer_reference, layer_forward  # noqa: E402
from golden_io import tensor_json, write_json  # noqa: E402


def fake_quant_input(x):
    """The inputs a quantized preceding layer would give: uint8 on the observed range."""
    scale = float(x.max() - x.min()) / 255
    zp = int(round(-float(x.min()) / scale))
    return torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, 255)


def case(name, layer, w, x_float, per_channel, quant_min, quant_max, options):
    targets = layer_forward(layer, x_float, w).detach()
    inputs = fake_quant_input(x_float)
    r = adaround_layer_reference(layer, w, inputs, targets, per_channel, quant_min, quant_max, **options)
    return {"name": name, "kind": layer["kind"], "relu": layer["relu"], "stride": layer.get("stride"),
            "padding": layer.get("padding"), "dilation": layer.get("dilation"), "groups": layer.get("groups", 1),
            "per_channel": per_channel, "quant_min": quant_min, "quant_max": quant_max, "options": options,
            "weight": tensor_json(w), "bias": tensor_json(layer["bias"]), "inputs": tensor_json(inputs),
            "targets": tensor_json(targets), "scale": tensor_json(r["scale"]), "nearest": tensor_json(r["nearest"]),
            "rounded": tensor_json(r["rounded"]), "v": tensor_json(r["v"]),
            "changed": int((r["rounded"] != r["nearest"]).sum()), "loss_nearest": r["loss_nearest"],
            "loss_adaround": r["loss_adaround"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(20261123)
    conv = {"kind": "conv", "bias": torch.randn(8) * 0.1, "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1],
            "groups": 1, "relu": True}
    linear = {"kind": "linear", "bias": torch.randn(12) * 0.1, "relu": False}
    conv_w = torch.randn(8, 4, 3, 3) * 0.3
    lin_w = torch.randn(12, 24) * 0.2
    conv_x = torch.relu(torch.randn(48, 4, 6, 6))
    lin_x = torch.randn(80, 24)
    opts = {"iterations": 400, "batch_size": 16, "seed": 5, "reg_lambda": 0.01, "beta_start": 20.0, "beta_end": 2.0,
            "warm_start": 0.2, "lr": 1e-3}
    cases = [
        case("conv3x3_relu_per_channel_w4", conv, conv_w, conv_x, True, -8, 7, opts),
        case("conv3x3_relu_per_channel_w8", conv, conv_w, conv_x, True, -128, 127, dict(opts, lr=1e-2)),
        case("linear_per_tensor_w3", linear, lin_w, lin_x, False, -4, 3, dict(opts, seed=11, warm_start=0.1)),
    ]
    write_json(os.path.join(args.out, "adaround_layer.json"), {"cases": cases})


if __name__ == "__main__":
    main()
