#!/usr/bin/env python3
"""Golden data for GPTQ on one layer (tools/gptq_reference.py, run on the machine that runs the
tests): a weight, calibration inputs with outlier channels and one input that is always zero, the
Hessian the reference accumulates, and the integers and qparams GPTQ chooses, for several bit
widths and group sizes. tests/test_gptq.cpp runs tq on the same data.

  /usr/bin/python3 tools/gen_golden_gptq.py --out build/tests/golden
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import tensor_json, write_json  # noqa: E402
from gptq_reference import gptq_reference, hessian_reference  # noqa: E402

CASES = [(4, 128, False), (4, 64, False), (4, 96, False), (8, 128, False), (4, 384, False), (4, 128, True),
         (4, 64, True)]
BATCH = 100


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.manual_seed(24)
    out_features, in_features, tokens = 48, 384, 800
    weight = torch.randn(out_features, in_features) * 0.05
    # Correlated inputs with a few outlier channels, as a transformer's, and one dead input.
    mix = torch.randn(in_features, in_features) * 0.2 + torch.eye(in_features)
    x = torch.randn(tokens, in_features).matmul(mix)
    x[:, [7, 100, 250]] *= 12
    x[:, 5] = 0
    h, n = hessian_reference(x.split(BATCH))
    cases = []
    for bits, group, act_order in CASES:
        q, scales, zeros = gptq_reference(weight, h, bits=bits, group_size=group, act_order=act_order)
        cases.append({"bits": bits, "group_size": group, "act_order": act_order, "q": tensor_json(q),
                      "scales": tensor_json(scales),
                      "zero_points": tensor_json(zeros)})
    write_json(os.path.join(a.out, "gptq.json"), {"weight": tensor_json(weight), "inputs": tensor_json(x),
                                                  "batch": BATCH, "tokens": n, "hessian": tensor_json(h),
                                                  "cases": cases})


if __name__ == "__main__":
    main()
