#!/usr/bin/env python3
"""The post-training accuracy table: Fashion-MNIST test accuracy of the graph demo's model
(torchvision ResNet-18, 1x28x28, trained by tools/graph_demo.py) quantized by `tq quantize` with
each method and bit width. Writes BUILD/bench/ptq_accuracy.json: rows {model, method,
weight_bits, act_bits, accuracy, seconds} (seconds: the whole `tq quantize` run).

  /usr/bin/python3 bench/ptq_accuracy.py --tq build/apps/cli/tq --data /usr/share/datasets/fashion-mnist \
      --out build/bench/ptq_accuracy.json

Per-channel symmetric weights; activations MinMax unless the method is a calibration method.
Fewer than 8 bits narrow the integer range (values still run through the int8 kernels).
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from graph_demo import MEAN, STD, train  # noqa: E402


def run(cmd, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"ptq_accuracy: {' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tq", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--demo-dir", default="build/demo", help="where the trained model is cached")
    ap.add_argument("--calib-images", type=int, default=1024)
    ap.add_argument("--adaround-iterations", type=int, default=500)
    ap.add_argument("--adaround-samples", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    os.makedirs(args.demo_dir, exist_ok=True)
    model = train(args.data, args.demo_dir, 20000, args.threads)
    train_idx = os.path.join(args.data, "train-images-idx3-ubyte.gz")
    test_idx = os.path.join(args.data, "t10k-images-idx3-ubyte.gz")
    test_labels = os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")
    norm = ["--normalize-idx", "--mean", str(MEAN), "--std", str(STD)]
    calib = ["--calib", train_idx, "--limit", str(args.calib_images), *norm]
    ada = ["--adaround", "--adaround-iterations", str(args.adaround_iterations), "--adaround-samples",
           str(args.adaround_samples)]
    # (method, weight bits, activation bits, extra flags)
    runs = []
    for wb in (8, 4, 3, 2):
        runs.append(("nearest", wb, 8, ["--activation-observer", "minmax"]))
    for wb in (4, 3, 2):
        runs.append(("adaround", wb, 8, ["--activation-observer", "minmax", *ada]))
        runs.append(("adaround+bias_correction", wb, 8, ["--activation-observer", "minmax", *ada, "--bias-correction"]))
    for wb in (4, 3, 2):
        runs.append(("bias_correction", wb, 8, ["--activation-observer", "minmax", "--bias-correction"]))
    for ab in (8, 6, 4):
        for obs in ("minmax", "histogram", "entropy", "percentile", "mse"):
            runs.append((obs, 8, ab, ["--activation-observer", obs]))
    rows = []
    tmp = os.path.join(os.path.dirname(os.path.abspath(args.out)), "ptq_accuracy_model.pt")
    report = os.path.join(os.path.dirname(os.path.abspath(args.out)), "ptq_accuracy_compare.json")
    fp32 = None
    for method, wb, ab, flags in runs:
        t0 = time.time()
        run([args.tq, "quantize", model, "-o", tmp, "--force", *calib, "--weight-bits", str(wb), "--activation-bits",
             str(ab), *flags], args.threads)
        seconds = time.time() - t0
        if os.path.exists(report):
            os.remove(report)
        run([args.tq, "compare", model, tmp, "--data", test_idx, "--labels", test_labels, "--batch-size", "256",
             "--report", report, *norm], args.threads)
        c = json.load(open(report))
        if fp32 is None:
            fp32 = {"model": "resnet18_fashion", "method": "fp32", "weight_bits": 32, "act_bits": 32,
                    "accuracy": round(100 * c["float_accuracy"], 2), "seconds": 0.0}
            rows.append(fp32)
        row = {"model": "resnet18_fashion", "method": method, "weight_bits": wb, "act_bits": ab,
               "accuracy": round(100 * c["quantized_accuracy"], 2), "sqnr_db": c["output_sqnr_db"], "seconds": round(seconds, 1)}
        rows.append(row)
        print(f"{method:>10} W{wb}A{ab}: accuracy {row['accuracy']:.2f}%, SQNR {row['sqnr_db']:.1f} dB, "
              f"{seconds:.1f} s", flush=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump({"threads": args.threads, "calib_images": args.calib_images,
                   "adaround_iterations": args.adaround_iterations, "adaround_samples": args.adaround_samples,
                   "rows": rows}, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
