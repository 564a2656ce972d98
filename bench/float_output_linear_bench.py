#!/usr/bin/env python3
"""tq's float-output int8 Linear (`tq::linear_int8_float_output`) against fp32's Linear, PyTorch's
dynamic int8 Linear (`quantized::linear_dynamic`, engine onednn, per-channel weights) and its own
int8 GEMM alone (`torch._int_mm`), in one process, on transformer Linear shapes.

  make build-torch2 && .venv-torch2/bin/python bench/float_output_linear_bench.py \
      --library build-torch2/apps/torch_ops/libtq_torch_ops.so --threads 2

The gap between the operator and `_int_mm` is what its own passes cost: quantizing the input,
the weights' row sums for the zero point, scaling the sums to float32 and adding the bias.
Needs the PyTorch whose LibTorch tq was built with.
"""
import argparse
import time

import torch


def median_ms(f, iters):
    for _ in range(10):
        f()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default="build-torch2/apps/torch_ops/libtq_torch_ops.so")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=200)
    a = ap.parse_args()
    torch.ops.load_library(a.library)
    torch.set_num_threads(a.threads)
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} threads")
    print("| rows x in -> out | fp32 linear ms | PyTorch dynamic int8 ms | tq float-output ms | _int_mm alone ms "
          "| tq x fp32 | tq x PyTorch dynamic |")
    print("|---|---|---|---|---|---|---|")
    # A small ViT at batch 64 (17 tokens, width 128), MiniLM at batch 16 (128 tokens, width 384).
    for m, k, n in [(1088, 128, 384), (1088, 128, 512), (1088, 512, 128), (2048, 384, 1536), (2048, 1536, 384)]:
        x, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
        wq = torch.randint(-127, 128, (n, k), dtype=torch.int8)
        ws = torch.rand(n) * 0.01
        xq = torch.randint(-128, 128, (m, k), dtype=torch.int8)
        qw = torch.quantize_per_channel(w, ws.double(), torch.zeros(n, dtype=torch.long), 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(qw, b)
        fp32 = median_ms(lambda: torch.nn.functional.linear(x, w, b), a.iters)
        dyn = median_ms(lambda: torch.ops.quantized.linear_dynamic(x, packed, True), a.iters)
        tq = median_ms(lambda: torch.ops.tq.linear_int8_float_output(x, 0.05, 128, 0, 255, wq, ws, b), a.iters)
        gemm = median_ms(lambda: torch._int_mm(xq, wq.t()), a.iters)
        print(f"| {m} x {k} -> {n} | {fp32:.3f} | {dyn:.3f} | {tq:.3f} | {gemm:.3f} | {fp32 / tq:.2f}x | {dyn / tq:.2f}x |")


if __name__ == "__main__":
    main()
