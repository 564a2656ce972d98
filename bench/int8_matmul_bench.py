#!/usr/bin/env python3
"""tq's int8 batched matmul (`tq::matmul_int8`, the attention's q k^T with its 1 / sqrt(d) folded in)
against what an int8 graph runs without it (dequantize both, float32 matmul, scale, quantize) and
against the float32 matmul alone, in one process, interleaved, on attention shapes.

  make build-torch2 && .venv-torch2/bin/python bench/int8_matmul_bench.py \
      --library build-torch2/apps/torch_ops/libtq_torch_ops.so --threads 2

Needs the PyTorch whose LibTorch tq was built with.
"""
import argparse
import time
import warnings

import torch


def median_us(f, iters):
    for _ in range(10):
        f()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1e6)
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default="build-torch2/apps/torch_ops/libtq_torch_ops.so")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=300)
    a = ap.parse_args()
    torch.ops.load_library(a.library)
    torch.set_num_threads(a.threads)
    warnings.simplefilter("ignore")  # the quantized dtypes' deprecation notice
    # (batch, heads, tokens, head dim): the small ViT at batch 64, MiniLM at batch 16 and 1.
    shapes = [(64, 4, 17, 32), (16, 12, 128, 32), (1, 12, 128, 32)]
    print(f"{'q k^T, [batch, heads, tokens, dim]':36} {'tq int8 us':>11} {'dequant+fp32+quant us':>22} "
          f"{'fp32 matmul us':>15} {'tq vs dequant path':>19}")
    for shape in shapes:
        q = torch.quantize_per_tensor(torch.randn(shape), 0.05, 128, torch.quint8)
        kt = torch.quantize_per_tensor(torch.randn(shape), 0.05, 128, torch.quint8).transpose(-2, -1)
        alpha, scale, zero = shape[-1] ** -0.5, 0.2, 128
        qf, ktf = q.dequantize(), kt.dequantize()
        runs = {"tq": lambda: torch.ops.tq.matmul_int8(q, kt, alpha, scale, zero),
                "dequant": lambda: torch.quantize_per_tensor(torch.matmul(q.dequantize(), kt.dequantize()) * alpha,
                                                             scale, zero, torch.quint8),
                "fp32": lambda: torch.matmul(qf, ktf)}
        times = {k: [] for k in runs}
        for _ in range(5):  # interleaved rounds
            for k, f in runs.items():
                times[k].append(median_us(f, a.iters // 5))
        t = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        print(f"{str(list(shape)):36} {t['tq']:11.0f} {t['dequant']:22.0f} {t['fp32']:15.0f} "
              f"{t['dequant'] / t['tq']:18.2f}x")


if __name__ == "__main__":
    main()
