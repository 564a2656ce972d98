#!/usr/bin/env python3
"""The ONNX Runtime rows of `make demo`: tq's ONNX QDQ export beside ONNX Runtime's own quantizer.

  .venv-torch2/bin/python tools/ort_demo.py --data /usr/share/datasets/fashion-mnist \
      --tq-onnx build/demo/resnet18_fashion_hist_int8.onnx --float-onnx build/demo/resnet18_fashion.onnx \
      --out build/demo/ort_results.json

Runs under a Python with onnxruntime and onnx (pip, pinned: onnxruntime==1.30.0, onnx==1.23.1).
The float model (exported by PyTorch's torch.onnx.export) is quantized by ORT's quantize_static
(QDQ, per-channel int8 weights, uint8 activations, MinMax and Entropy calibration) on the same
calibration images tq used (the first N training images); then every model (fp32, tq's export,
ORT's two) is evaluated on the 10,000 test images, and timed at batch 1 and 64 in ONNX Runtime,
interleaved in this one process. Prints a table and writes OUT (JSON).
"""
import argparse
import collections
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's training pixels (tools/graph_demo.py)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    _, _, dims = struct.unpack(">HBB", data[:4])
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def images(path, limit=None):
    x = read_idx(path)[:limit].astype(np.float32) / 255.0
    return ((x - MEAN) / STD)[:, None, :, :].astype(np.float32)


class Reader(CalibrationDataReader):
    def __init__(self, x, input_name, batch=32):
        self.batches = iter([{input_name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def accuracy(sess, x, labels):
    name = sess.get_inputs()[0].name
    correct = 0
    for i in range(0, len(x), 256):
        correct += int((sess.run(None, {name: x[i:i + 256]})[0].argmax(1) == labels[i:i + 256]).sum())
    return correct / len(x)


def kernel_times(path, x, threads, runs=300):
    """Microseconds per run spent in each ONNX operator type (ORT's profiler), and the sorted times
    of its QLinearConv nodes: two models with the same fused graph should match kernel by kernel."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    so.enable_profiling = True
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        sess.run(None, {sess.get_inputs()[0].name: x})
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    per_type, per_conv = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_type[e["args"]["op_name"]] += e["dur"] / runs
            if e["args"]["op_name"] == "QLinearConv":
                per_conv[e["name"]] += e["dur"] / runs
    return per_type, sorted(per_conv.values())


def print_kernel_times(models, x, threads):
    print(f"\nORT kernel time per run at batch {x.shape[0]} (microseconds, {threads} threads, 300 runs each):")
    convs = {}
    for name, path in models:
        per_type, convs[name] = kernel_times(path, x, threads)
        print(f"  {name}: total {sum(per_type.values()):.0f}; " +
              ", ".join(f"{op} {t:.1f}" for op, t in per_type.most_common()))
    names = list(convs)
    for other in names[1:]:
        pairs = list(zip(convs[names[0]], convs[other]))
        worst = max(abs(a - b) / max(b, 1e-9) for a, b in pairs) if pairs else 0.0
        print(f"  QLinearConv nodes, sorted by time, {names[0]} vs {other}: {len(pairs)} pairs, largest "
              f"difference {100 * worst:.0f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--tq-onnx", required=True)
    ap.add_argument("--float-onnx", required=True)
    ap.add_argument("--calib-images", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=200, help="timed runs of each model at batch 1 (a tenth at batch 64)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--kernel-times", action="store_true",
                    help="also profile tq's export and ORT's Entropy model kernel by kernel at batch 1")
    args = ap.parse_args()
    calib = images(os.path.join(args.data, "train-images-idx3-ubyte.gz"), args.calib_images)
    test = images(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    input_name = session(args.float_onnx, 1).get_inputs()[0].name
    models = [("fp32 (torch.onnx.export)", args.float_onnx), ("tq static (Histogram) -> ONNX QDQ", args.tq_onnx)]
    for method in (CalibrationMethod.MinMax, CalibrationMethod.Entropy):
        out = args.float_onnx.replace(".onnx", f"_ort_{method.name.lower()}.onnx")
        t0 = time.time()
        quantize_static(args.float_onnx, out, Reader(calib, input_name), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method)
        print(f"ort demo: quantize_static ({method.name}) took {time.time() - t0:.1f} s", file=sys.stderr)
        models.append((f"ORT quantize_static ({method.name}, per-channel QDQ)", out))
    sessions = [(name, path, session(path, args.threads)) for name, path in models]
    rows = []
    for name, path, sess in sessions:
        rows.append({"variant": name, "accuracy": accuracy(sess, test, labels), "bytes": os.path.getsize(path)})
    # Latency: every model at each batch size, interleaved (the order reversed every other round, so
    # that no model always runs after the same one), median and 10th percentile of the runs.
    for batch in (1, 64):
        x = test[:batch]
        times = {name: [] for name, _, _ in sessions}
        for _ in range(3):
            for _, _, sess in sessions:
                sess.run(None, {sess.get_inputs()[0].name: x})
        for i in range(args.iters if batch == 1 else max(args.iters // 10, 10)):
            for name, _, sess in (sessions if i % 2 == 0 else sessions[::-1]):
                t0 = time.perf_counter()
                sess.run(None, {sess.get_inputs()[0].name: x})
                times[name].append(time.perf_counter() - t0)
        for row in rows:
            row[f"ms_bs{batch}"] = 1000 * float(np.median(times[row["variant"]]))
            row[f"ms_bs{batch}_p10"] = 1000 * float(np.percentile(times[row["variant"]], 10))
    print(f"\nONNX Runtime {ort.__version__}, {args.threads} threads, Fashion-MNIST test set (10,000 images)")
    print("| model (run by ONNX Runtime) | accuracy | size bytes | ms bs1 (median / p10) | ms bs64 (median / p10) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {100 * r['accuracy']:.2f}% | {r['bytes']} | {r['ms_bs1']:.3f} / {r['ms_bs1_p10']:.3f} | "
              f"{r['ms_bs64']:.2f} / {r['ms_bs64_p10']:.2f} |")
    if args.kernel_times:
        print_kernel_times([(n, p) for n, p in models if n.startswith("tq") or "Entropy" in n], test[:1], args.threads)
    with open(args.out + ".tmp", "w") as f:
        json.dump({"onnxruntime": ort.__version__, "threads": args.threads, "rows": rows}, f, indent=2)
    os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
