#!/usr/bin/env python3
"""ResNet-18 eager quantization: PyTorch's Python flow (torchvision's quantizable resnet18) against
tq's C++ flow (bench/resnet18.cpp), same architecture, random weights, the engine's default qconfig
(Histogram activation observers, per-channel weights) on both sides.

  /usr/bin/python3 bench/resnet18_bench.py --tq build/bench/tq_resnet18_bench

Times fuse + prepare, calibration (32 batches of 16x3x224x224), convert, and fp32 / int8 latency
at batch 1 and 16 (median of --runs after warm-up), each side in its own process, 2 threads."""
import argparse
import json
import subprocess
import time

import torch
import torch.ao.quantization as Q
from torchvision.models.quantization import resnet18


def median_ms(model, x, runs):
    with torch.no_grad():
        for _ in range(3):
            model(x)
        t = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            t.append((time.perf_counter() - t0) * 1e3)
    return sorted(t)[len(t) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tq", required=True)
    ap.add_argument("--batches", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--engine", default="onednn")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    tq = subprocess.run([args.tq, "--batches", str(args.batches), "--batch-size", str(args.batch_size), "--runs",
                         str(args.runs), "--engine", args.engine], check=True, capture_output=True, text=True,
                        env={"TQ_BENCH_THREADS": str(args.threads)})
    tq = json.loads(tq.stdout.strip().splitlines()[-1])

    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = args.engine
    torch.manual_seed(0)
    model = resnet18(weights=None, quantize=False).eval()
    x1, x16 = torch.randn(1, 3, 224, 224), torch.randn(16, 3, 224, 224)
    fp32_b1, fp32_b16 = median_ms(model, x1, args.runs), median_ms(model, x16, args.runs)
    t0 = time.perf_counter()
    model.fuse_model()
    model.qconfig = Q.get_default_qconfig(args.engine)
    Q.prepare(model, inplace=True)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(args.batches):
            model(torch.randn(args.batch_size, 3, 224, 224))
    calibrate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    Q.convert(model, inplace=True)
    convert_s = time.perf_counter() - t0
    int8_b1, int8_b16 = median_ms(model, x1, args.runs), median_ms(model, x16, args.runs)
    py = {"torch": torch.__version__, "prepare_s": prepare_s, "calibrate_s": calibrate_s, "convert_s": convert_s,
          "fp32_ms_b1": fp32_b1, "fp32_ms_b16": fp32_b16, "int8_ms_b1": int8_b1, "int8_ms_b16": int8_b16}
    print(json.dumps({"pytorch": py, "tq": tq}, indent=1))
    n = args.batches * args.batch_size
    print(f"calibration: PyTorch {n / py['calibrate_s']:.1f} images/s, tq {n / tq['calibrate_s']:.1f} images/s "
          f"({py['calibrate_s'] / tq['calibrate_s']:.2f}x)")
    for b in ("b1", "b16"):
        print(f"batch {b[1:]}: fp32 PyTorch {py['fp32_ms_' + b]:.1f} ms, tq {tq['fp32_ms_' + b]:.1f} ms; "
              f"int8 PyTorch {py['int8_ms_' + b]:.1f} ms, tq {tq['int8_ms_' + b]:.1f} ms "
              f"(tq int8 vs PyTorch int8 {py['int8_ms_' + b] / tq['int8_ms_' + b]:.2f}x, "
              f"vs tq fp32 {tq['fp32_ms_' + b] / tq['int8_ms_' + b]:.2f}x)")


if __name__ == "__main__":
    main()
