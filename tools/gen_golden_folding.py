#!/usr/bin/env python3
"""Golden data for batch-norm folding: PyTorch's own fuse_conv_bn_weights / fuse_linear_bn_weights
on random layers (tests/test_batch_norm_folding.cpp checks tq's folding bit for bit).

  /usr/bin/python3 tools/gen_golden_folding.py --out tests/golden
"""
import argparse
import os
import sys

import torch
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import tensor_json, write_json  # noqa: E402


def bn(n, g):
    return {"mean": 0.3 * torch.randn(n, generator=g), "var": 0.2 + 2 * torch.rand(n, generator=g),
            "gamma": 1 + 0.5 * torch.randn(n, generator=g), "beta": 0.2 * torch.randn(n, generator=g)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(20261123)
    cases = []
    for kind, wshape, bias in [("conv", (16, 4, 3, 3), True), ("conv", (8, 3, 5, 5), False), ("linear", (12, 7), True),
                               ("linear", (5, 9), False)]:
        w = torch.randn(*wshape, generator=g) * 0.3
        b = torch.randn(wshape[0], generator=g) * 0.1 if bias else None
        p = bn(wshape[0], g)
        eps = 1e-5 if kind == "conv" else 1e-3
        if kind == "conv":
            fw, fb = fuse_conv_bn_weights(w, b, p["mean"], p["var"], eps, p["gamma"], p["beta"])
        else:
            fw, fb = fuse_linear_bn_weights(w, b if b is not None else torch.zeros(wshape[0]), p["mean"], p["var"],
                                            eps, p["gamma"], p["beta"])
        case = {"kind": kind, "eps": eps, "weight": tensor_json(w), "folded_weight": tensor_json(fw.detach()),
                "folded_bias": tensor_json(fb.detach()), **{k: tensor_json(v) for k, v in p.items()}}
        if b is not None:
            case["bias"] = tensor_json(b)
        cases.append(case)
    write_json(os.path.join(args.out, "batch_norm_folding.json"), {"cases": cases})


if __name__ == "__main__":
    main()
