#!/usr/bin/env python3
"""The post-training accuracy table: Fashion-MNIST test accuracy of torchvision models quantized by
`tq quantize` with each method and bit width. Writes BUILD/bench/ptq_accuracy.json: rows {model,
method, weight_bits, act_bits, accuracy, seconds} (seconds: the whole `tq quantize` run).

Models: the demo's Fashion-MNIST CNN (tq::nn, eager mode, through bench/cnn_ptq_accuracy.cpp's
program, AdaRound with --cnn-adaround-iterations); the graph demo's ResNet-18 (1x28x28, trained by tools/graph_demo.py) for rounding, bias
correction and calibration methods; MobileNetV2 (first convolution 1 channel, stride 1, trained
here the same way) with per-tensor weights for the equalization rows.

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
from graph_demo import MEAN, STD, images, read_idx, train  # noqa: E402

import torch  # noqa: E402
import torchvision  # noqa: E402


def train_mobilenet(data, out, train_images, threads):
    """MobileNetV2 on Fashion-MNIST, as tools/graph_demo.py trains ResNet-18; cached."""
    path = os.path.join(out, "mobilenet_v2_fashion.pt")
    if os.path.exists(path):
        return path
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=10)
    model.features[0][0] = torch.nn.Conv2d(1, 32, 3, stride=1, padding=1, bias=False)
    x = images(os.path.join(data, "train-images-idx3-ubyte.gz"), train_images)
    y = read_idx(os.path.join(data, "train-labels-idx1-ubyte.gz"))[:train_images].long()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    model.train()
    for i in range(0, len(x), 128):
        idx = order[i:i + 128]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.jit.script(model).save(path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


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
    ap.add_argument("--cnn-bench", help="tq_cnn_ptq_accuracy (eager rows for the demo CNN)")
    ap.add_argument("--cnn-adaround-iterations", type=int, default=10000)
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
    # (model, method, weight bits, activation bits, extra flags)
    runs = []
    for wb in (8, 4, 3, 2):
        runs.append((model, "nearest", wb, 8, ["--activation-observer", "minmax"]))
    for wb in (4, 3, 2):
        runs.append((model, "adaround", wb, 8, ["--activation-observer", "minmax", *ada]))
        runs.append((model, "adaround+bias_correction", wb, 8, ["--activation-observer", "minmax", *ada,
                                                                 "--bias-correction"]))
        runs.append((model, "bias_correction", wb, 8, ["--activation-observer", "minmax", "--bias-correction"]))
    for ab in (8, 6, 4):
        for obs in ("minmax", "histogram", "entropy", "percentile", "mse"):
            runs.append((model, obs, 8, ab, ["--activation-observer", obs]))
    mobilenet = train_mobilenet(args.data, args.demo_dir, 20000, args.threads)
    per_tensor = ["--activation-observer", "minmax", "--per-tensor-weights"]
    runs += [(mobilenet, "nearest (per-channel)", 8, 8, ["--activation-observer", "minmax"]),
             (mobilenet, "nearest (per-tensor)", 8, 8, per_tensor),
             (mobilenet, "equalization (per-tensor)", 8, 8, [*per_tensor, "--equalize"]),
             (mobilenet, "equalization+bias_correction (per-tensor)", 8, 8, [*per_tensor, "--equalize",
                                                                             "--bias-correction"])]
    rows = []
    if args.cnn_bench:
        weights = os.path.join(args.demo_dir, "fashion_cnn_float.pt")
        if not os.path.exists(weights):
            raise SystemExit(f"ptq_accuracy: {weights} is missing: run `make demo` first")
        cnn_out = os.path.join(os.path.dirname(os.path.abspath(args.out)), "cnn_ptq_accuracy.json")
        print(run([args.cnn_bench, "--data", args.data, "--weights", weights, "--out", cnn_out, "--threads",
                   str(args.threads), "--calib-images", str(args.calib_images), "--adaround-iterations",
                   str(args.cnn_adaround_iterations)], args.threads), end="", flush=True)
        rows += json.load(open(cnn_out))["rows"]
    tmp = os.path.join(os.path.dirname(os.path.abspath(args.out)), "ptq_accuracy_model.pt")
    report = os.path.join(os.path.dirname(os.path.abspath(args.out)), "ptq_accuracy_compare.json")
    fp32_done = set()
    for path, method, wb, ab, flags in runs:
        name = os.path.basename(path).replace(".pt", "")
        t0 = time.time()
        run([args.tq, "quantize", path, "-o", tmp, "--force", *calib, "--weight-bits", str(wb), "--activation-bits",
             str(ab), *flags], args.threads)
        seconds = time.time() - t0
        if os.path.exists(report):
            os.remove(report)
        run([args.tq, "compare", path, tmp, "--data", test_idx, "--labels", test_labels, "--batch-size", "256",
             "--report", report, *norm], args.threads)
        c = json.load(open(report))
        if name not in fp32_done:
            fp32_done.add(name)
            rows.append({"model": name, "method": "fp32", "weight_bits": 32, "act_bits": 32,
                         "accuracy": round(100 * c["float_accuracy"], 2), "seconds": 0.0})
        row = {"model": name, "method": method, "weight_bits": wb, "act_bits": ab,
               "accuracy": round(100 * c["quantized_accuracy"], 2), "sqnr_db": round(c["output_sqnr_db"], 2),
               "seconds": round(seconds, 1)}
        rows.append(row)
        print(f"{name} {method} W{wb}A{ab}: accuracy {row['accuracy']:.2f}%, SQNR {row['sqnr_db']:.1f} dB, "
              f"{seconds:.1f} s", flush=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump({"threads": args.threads, "calib_images": args.calib_images,
                   "adaround_iterations": args.adaround_iterations, "adaround_samples": args.adaround_samples,
                   "cnn_adaround_iterations": args.cnn_adaround_iterations if args.cnn_bench else None,
                   "rows": rows}, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
