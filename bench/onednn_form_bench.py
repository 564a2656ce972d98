#!/usr/bin/env python3
"""Latency of tq's two int8 TorchScript forms in PyTorch 2.x, in one process, interleaved: the
quantized-dtype form (LibTorch's quantized:: operators on quint8 tensors, engine --engine) and the
onednn form (`tq quantize --int8-backend onednn`: plain uint8 tensors and oneDNN's int8
operators, no quantized dtype), beside the float model.

  .venv-torch2/bin/python bench/onednn_form_bench.py [--models resnet18,mobilenet_v3_large]
      [--size 224] [--threads 2] [--iters 20] [--rounds 3] [--engine onednn]
      [--tq build-torch2/apps/cli/tq] [--work build-torch2/bench/onednn_form]

For each model, tools/graph_models.py (Debian's PyTorch 1.13 with torchvision: seeded random
weights) writes the traced float model and 4 calibration batches of 8 randn images; the tq tool
quantizes it twice with the same calibration, once per form. This process loads the three files
with torch.jit.load and times them at batch 16 and 1 (randn input, seed 2): each round runs every
variant for 2 warm-up + --iters timed calls, and the median of all timed calls is reported. Also
printed: SQNR of each int8 output against fp32's and of the onednn form against the quantized
form (batch 16).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def sqnr(ref, x):
    noise = (ref - x).pow(2).sum().item()
    return 10 * torch.log10(torch.tensor(ref.pow(2).sum().item() / max(noise, 1e-30))).item()


def prepare_files(args, name):
    float_path = os.path.join(args.work, f"{name}_trace.pt")
    if not os.path.exists(float_path):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "graph_models.py"), "--out", args.work,
                        "--models", name, "--size", str(args.size), "--mode", "trace", "--batches", "4",
                        "--batch", "8", "--quiet"], check=True)
    samples = os.path.join(args.work, f"{name}_calib_samples.pt")
    calib = torch.load(os.path.join(args.work, f"{name}_calib.pt"))
    torch.save(calib.reshape(-1, *calib.shape[-3:]).contiguous(), samples)
    paths = {"fp32": float_path}
    for form in ("libtorch-quantized", "onednn"):
        out = os.path.join(args.work, f"{name}_int8_{form}.pt")
        subprocess.run([args.tq, "quantize", float_path, "--calib", samples, "--batch-size", "8", "--engine",
                        args.engine, "--int8-backend", form, "-o", out, "--force"], check=True,
                       stdout=subprocess.DEVNULL)
        paths[form] = out
    return paths


def time_variants(models, x, iters, rounds):
    times = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            for _ in range(2):
                m(x)
            for _ in range(iters):
                t0 = time.perf_counter()
                m(x)
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v3_large")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engine", default="onednn")
    ap.add_argument("--tq", default=os.path.join(ROOT, "build-torch2", "apps", "cli", "tq"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build-torch2", "bench", "onednn_form"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = args.engine
    print(f"PyTorch {torch.__version__}, {args.threads} threads, quantized engine {args.engine}, "
          f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for name in [n for n in args.models.split(",") if n]:
        paths = prepare_files(args, name)
        with torch.no_grad():
            models = {k: torch.jit.load(p) for k, p in paths.items()}
            print(f"\n{name} ({args.size}x{args.size})\n")
            print("| batch | fp32 ms | quantized form ms | onednn form ms | onednn form x fp32 | "
                  "onednn form x quantized form |")
            print("|---|---|---|---|---|---|")
            for batch in (16, 1):
                torch.manual_seed(2)
                x = torch.randn(batch, 3, args.size, args.size)
                t = time_variants(models, x, args.iters, args.rounds)
                print(f"| {batch} | {t['fp32']:.2f} | {t['libtorch-quantized']:.2f} | {t['onednn']:.2f} | "
                      f"{t['fp32'] / t['onednn']:.2f}x | {t['libtorch-quantized'] / t['onednn']:.2f}x |")
                if batch == 16:
                    out = {k: m(x) for k, m in models.items()}
                    print(f"| SQNR vs fp32 | | {sqnr(out['fp32'], out['libtorch-quantized']):.1f} dB | "
                          f"{sqnr(out['fp32'], out['onednn']):.1f} dB | onednn vs quantized form: "
                          f"{sqnr(out['libtorch-quantized'], out['onednn']):.1f} dB | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
