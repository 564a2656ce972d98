#!/usr/bin/env python3
"""PyTorch 2.x's own int8 path on CPU beside tq, in one process, interleaved: torchao's PT2E
(prepare_pt2e / convert_pt2e, X86InductorQuantizer) compiled by torch.compile (Inductor lowers it
to oneDNN's int8 operators, weights frozen), PyTorch FX (prepare_fx / convert_fx, x86 qconfig
mapping), and tq's two int8 TorchScript forms (quantized dtypes; the onednn form), beside fp32.

  .venv-torchvision/bin/python bench/pt2e_bench.py [--models resnet18,resnet50,mobilenet_v2,efficientnet_b0]
      [--size 224] [--threads 2] [--iters 10] [--rounds 3] [--tq build-torch2/apps/cli/tq]
      [--work build-torch2/bench/pt2e] [--json build-torch2/bench/pt2e.json]

Runs in the torchvision environment (torch 2.14.1, torchvision 0.29.1, torchao 0.18.0: `make
build-torch2` makes it); the tq tool is the LibTorch 2.x build's. For each model,
tools/graph_models.py (Debian's PyTorch 1.13, seeded random weights) writes the traced model and 4
calibration batches of 8 randn images; torchvision 0.29's eager model takes the same weights.
  * tq takes X86InductorQuantizer's configuration (`--engine x86 --full-range`: activations on
    [0, 255], right on CPUs with VNNI; tq's default [0, 127] holds on every CPU).
  * Quantization time, each flow from its float model to its int8 model on the same 32 images:
    tq (the whole `tq quantize` command: load, prepare, calibrate, convert, save), PT2E (export,
    prepare, calibrate, convert; torch.compile's compilation separately, per input shape), FX.
  * Latency at batch 16 then 1 (randn, seed 2): each round runs every variant for 2 warm-up +
    --iters timed calls, the median of all timed calls reported. torch.compile compiles each
    batch size on its first call (not timed: printed as compile time).
  * SQNR of each int8 output against fp32's at batch 16.
fp32 is the traced TorchScript model (oneDNN / MKL convolutions of LibTorch 2.14) and, as
PT2E's float peer, torch.compile of the eager model.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings

import torch
import torchvision

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests"))
from check_pt2e_parity import pt2e_quantize  # noqa: E402  (the same PT2E flow as the parity test)
from onednn_form_bench import sqnr, time_variants  # noqa: E402  (the same timing as the onednn form's table)

VARIANTS = ("fp32", "fp32_compiled", "fx", "tq", "tq_onednn", "pt2e_compiled")
LABELS = {"fp32": "fp32 TorchScript", "fp32_compiled": "fp32 torch.compile", "fx": "FX int8",
          "tq": "tq (quantized dtypes)", "tq_onednn": "tq onednn form", "pt2e_compiled": "PT2E + torch.compile"}


def model_files(args, name):
    float_path = os.path.join(args.work, f"{name}_trace.pt")
    if not os.path.exists(float_path):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "graph_models.py"), "--out", args.work,
                        "--models", name, "--size", str(args.size), "--mode", "trace,script", "--batches", "4",
                        "--batch", "8", "--quiet"], check=True)
    calib = torch.load(os.path.join(args.work, f"{name}_calib.pt"))  # [4, 8, 3, size, size]
    samples = os.path.join(args.work, f"{name}_calib_samples.pt")
    torch.save(calib.reshape(-1, *calib.shape[-3:]).contiguous(), samples)
    return float_path, samples, calib


def tq_quantize(args, float_path, samples, name, form):
    out = os.path.join(args.work, f"{name}_int8_{form}.pt")
    t0 = time.perf_counter()
    subprocess.run([args.tq, "quantize", float_path, "--calib", samples, "--batch-size", "8", "--engine", "x86",
                    "--full-range", "--int8-backend", form, "-o", out, "--force"], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    return out, time.perf_counter() - t0


def fx_quantize(model, calib):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (calib[0],))
        for b in calib:
            prepared(b)
        converted = convert_fx(prepared)
    return converted, time.perf_counter() - t0


def bench_model(args, name):
    float_path, samples, calib = model_files(args, name)
    scripted = torch.jit.load(os.path.join(args.work, f"{name}_script.pt"))
    eager = getattr(torchvision.models, name)()
    eager.load_state_dict(scripted.state_dict())
    eager.eval()
    row = {"model": name, "quantize_s": {}, "compile_s": {}, "ms": {}, "sqnr_db": {}}

    tq_path, row["quantize_s"]["tq"] = tq_quantize(args, float_path, samples, name, "libtorch-quantized")
    onednn_path, row["quantize_s"]["tq_onednn"] = tq_quantize(args, float_path, samples, name, "onednn")
    with torch.no_grad():
        t0 = time.perf_counter()
        pt2e = pt2e_quantize(eager, calib, calib[0], dynamic_batch=True)
        row["quantize_s"]["pt2e"] = time.perf_counter() - t0
        fx, row["quantize_s"]["fx"] = fx_quantize(eager, calib)
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True  # PyTorch's recipe: weights constant, so int8 weights prepack once
        models = {"fp32": torch.jit.load(float_path), "fp32_compiled": torch.compile(eager), "fx": fx,
                  "tq": torch.jit.load(tq_path), "tq_onednn": torch.jit.load(onednn_path),
                  "pt2e_compiled": torch.compile(pt2e)}
        for batch in (16, 1):
            torch.manual_seed(2)
            x = torch.randn(batch, 3, args.size, args.size)
            for k in ("fp32_compiled", "pt2e_compiled"):
                t0 = time.perf_counter()
                models[k](x)
                row["compile_s"][f"{k}_b{batch}"] = time.perf_counter() - t0
            row["ms"][batch] = time_variants(models, x, args.iters, args.rounds)
            if batch == 16:
                out = {k: m(x) for k, m in models.items()}
                out = {k: (v.dequantize() if v.is_quantized else v) for k, v in out.items()}
                row["sqnr_db"] = {k: sqnr(out["fp32"], v) for k, v in out.items() if k != "fp32"}
    return row


def print_row(row, size):
    print(f"\n{row['model']} ({size}x{size}); quantize: " + ", ".join(
        f"{k} {v:.1f} s" for k, v in row["quantize_s"].items()) + "; torch.compile: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in row["compile_s"].items()) + "\n")
    print("| batch | " + " | ".join(LABELS[k] + " ms" for k in VARIANTS) + " | PT2E compiled ms / best tq ms |")
    print("|---" * (len(VARIANTS) + 2) + "|")
    for batch, t in row["ms"].items():
        best = min(t["tq"], t["tq_onednn"])
        print(f"| {batch} | " + " | ".join(f"{t[k]:.2f}" for k in VARIANTS) + f" | {t['pt2e_compiled'] / best:.2f}x |")
    print("| SQNR vs fp32 (b16) | | " + " | ".join(f"{row['sqnr_db'][k]:.1f} dB" for k in VARIANTS[1:]) + " | |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,efficientnet_b0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tq", default=os.path.join(ROOT, "build-torch2", "apps", "cli", "tq"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build-torch2", "bench", "pt2e"))
    ap.add_argument("--json", default=os.path.join(ROOT, "build-torch2", "bench", "pt2e.json"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "x86"
    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, torchao "
          f"{__import__('torchao').__version__}, {args.threads} threads, ATen CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {platform.processor() or platform.machine()}")
    rows = []
    for name in [n for n in args.models.split(",") if n]:
        rows.append(bench_model(args, name))
        print_row(rows[-1], args.size)
        with open(args.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
