#!/usr/bin/env python3
"""The graph-mode half of `make demo`, end to end through the `tq` tool on real data.

  /usr/bin/python3 tools/graph_demo.py --tq build/apps/cli/tq --data /usr/share/datasets/fashion-mnist \
      --out build/demo

1. At its first run, trains torchvision's ResNet-18 (first convolution adapted to 1x28x28) on
   Fashion-MNIST with Debian's PyTorch, scripts it and caches OUT/resnet18_fashion.pt; later runs
   reuse it.
2. `tq quantize` it three ways (static Histogram, static MinMax, dynamic), `tq compare` each with
   the float model on the 10,000 test images (accuracy, top-1 agreement, SQNR) and `tq bench`
   each at batch 1 and 64 against the float model (interleaved, in the tool's process).
3. `tq compare --per-layer` plots each quantized layer's output SQNR, int8 against float
   (OUT/layer_sqnr.svg).
4. Quantizes the same model with PyTorch FX (same calibration images, onednn defaults) and
   measures it the same way, for a side-by-side row.
5. With --ort-python (a Python with onnxruntime): `tq quantize -o model.onnx` (the Histogram
   variant as ONNX QDQ), the float model through torch.onnx.export, and tools/ort_demo.py runs
   both in ONNX Runtime beside ORT's own quantize_static of the float model (accuracy on the test
   images, latency at batch 1 and 64).
Prints the table and writes OUT/graph_results.json.
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import time

import torch
import torchvision

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's training pixels


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def images(path, limit=None):
    x = read_idx(path)
    if limit:
        x = x[:limit]
    return ((x.float() / 255.0 - MEAN) / STD).unsqueeze(1)


def build_model():
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = torch.nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
    return m


def train(data, out, train_images, threads):
    path = os.path.join(out, "resnet18_fashion.pt")
    if os.path.exists(path):
        print(f"graph demo: reusing {path}", file=sys.stderr)
        return path
    torch.set_num_threads(threads)
    x = images(os.path.join(data, "train-images-idx3-ubyte.gz"), train_images)
    y = read_idx(os.path.join(data, "train-labels-idx1-ubyte.gz"))[:train_images].long()
    model = build_model().train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    t0 = time.time()
    for step, i in enumerate(range(0, len(x), 128)):
        idx = order[i:i + 128]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 40 == 0:
            print(f"graph demo: training step {step}, loss {loss.item():.3f}, {time.time() - t0:.0f}s", file=sys.stderr)
    model.eval()
    scripted = torch.jit.script(model)
    scripted.save(path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def tq(tq_bin, *args):
    p = subprocess.run([tq_bin, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"graph demo: tq {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def last_json(text):
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def measure_variants(tq_bin, model, variants, out, data, threads, iters=20):
    """`tq quantize` MODEL each way ((name, tag, flags) in VARIANTS), `tq compare` each with the float
    model on Fashion-MNIST's 10,000 test images and `tq bench` each at batch 1 and 64. Returns the
    rows, fp32's first: compare reports the float model's accuracy, and bench times the float model
    interleaved with each quantized one (--vs)."""
    test_idx = os.path.join(data, "t10k-images-idx3-ubyte.gz")
    test_labels = os.path.join(data, "t10k-labels-idx1-ubyte.gz")
    norm = ["--normalize-idx", "--mean", str(MEAN), "--std", str(STD)]
    fp32 = {"variant": "fp32", "bytes": os.path.getsize(model)}
    rows = [fp32]
    for name, tag, flags in variants:
        path = model.replace(".pt", f"_{tag}_int8.pt")
        tq(tq_bin, "quantize", model, "-o", path, "--force", "--report", path.replace(".pt", "_report.json"), *flags)
        cmp = os.path.join(out, f"compare_{tag}.json")
        if os.path.exists(cmp):
            os.remove(cmp)
        tq(tq_bin, "compare", model, path, "--data", test_idx, "--labels", test_labels, "--batch-size", "256",
           "--report", cmp, *norm)
        c = json.load(open(cmp))
        row = {"variant": name, "accuracy": c["quantized_accuracy"], "top1_agreement": c["top1_agreement"],
               "sqnr_db": c["output_sqnr_db"], "bytes": os.path.getsize(path)}
        fp32["accuracy"] = c["float_accuracy"]
        for b in (1, 64):
            j = last_json(tq(tq_bin, "bench", path, "--input-shape", f"{b},1,28,28", "--threads", str(threads),
                             "--iters", str(iters), "--vs", model))
            row[f"ms_bs{b}"] = j["model"]["median_ms"]
            row[f"speedup_bs{b}"] = j["speedup"]
            fp32[f"ms_bs{b}"] = min(fp32.get(f"ms_bs{b}", float("inf")), j["vs"]["median_ms"])
        rows.append(row)
        print(f"{name} done", file=sys.stderr)
    return rows


def fx_row(model_path, data, calib_images, threads):
    """PyTorch FX on the same model and calibration images: accuracy, size, latency."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.set_num_threads(threads)
    torch.backends.quantized.engine = "onednn"
    model = build_model()
    model.load_state_dict({k: v for k, v in torch.jit.load(model_path).state_dict().items()})
    model.eval()
    calib = images(os.path.join(data, "train-images-idx3-ubyte.gz"), calib_images)
    prepared = prepare_fx(model, get_default_qconfig_mapping("onednn"), example_inputs=(calib[:1],))
    with torch.no_grad():
        for i in range(0, len(calib), 32):
            prepared(calib[i:i + 32])
    q = convert_fx(prepared)
    test = images(os.path.join(data, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data, "t10k-labels-idx1-ubyte.gz")).long()
    row = {"variant": "PyTorch FX static (Histogram)"}
    with torch.no_grad():
        correct = sum((q(test[i:i + 256]).argmax(1) == labels[i:i + 256]).sum().item() for i in range(0, len(test), 256))
        row["accuracy"] = correct / len(test)
        for b in (64, 1):  # 1.13's onednn int8 models fail when the batch size changes
            x = test[:b]
            try:
                for _ in range(3):
                    q(x)
                ts = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    q(x)
                    ts.append((time.perf_counter() - t0) * 1e3)
                row[f"ms_bs{b}"] = sorted(ts)[len(ts) // 2]
            except RuntimeError as e:
                row[f"ms_bs{b}"] = "fails: " + str(e).splitlines()[-1][:80]
    path = model_path.replace(".pt", "_fx_int8.pt")
    torch.jit.save(torch.jit.script(q), path)
    row["bytes"] = os.path.getsize(path)
    return row


def ort_demo(args, model, train_idx, norm, tq_int8_accuracy):
    """tq's ONNX export and ORT's own quantizer, run by ONNX Runtime (tools/ort_demo.py)."""
    tq_onnx = model.replace(".pt", "_hist_int8.onnx")
    tq(args.tq, "quantize", model, "-o", tq_onnx, "--force", "--calib", train_idx, "--limit", str(args.calib_images),
       *norm)
    float_onnx = model.replace(".pt", ".onnx")
    torch.onnx.export(torch.jit.load(model).eval(), torch.zeros(1, 1, 28, 28), float_onnx + ".tmp", opset_version=13,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    os.replace(float_onnx + ".tmp", float_onnx)
    out = os.path.join(args.out, "ort_results.json")
    subprocess.run([args.ort_python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_demo.py"),
                    "--data", args.data, "--tq-onnx", tq_onnx, "--float-onnx", float_onnx, "--calib-images",
                    str(args.calib_images), "--threads", str(args.threads), "--out", out], check=True)
    rows = json.load(open(out))["rows"]
    ort_tq = next(r for r in rows if r["variant"].startswith("tq"))
    print(f"tq's ONNX export in ONNX Runtime: {100 * ort_tq['accuracy']:.2f}%, tq's int8 TorchScript "
          f"{100 * tq_int8_accuracy:.2f}% (difference {100 * (ort_tq['accuracy'] - tq_int8_accuracy):+.2f} points)")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tq", default="build/apps/cli/tq")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="build/demo")
    ap.add_argument("--train-images", type=int, default=20000)
    ap.add_argument("--calib-images", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ort-python", default="", help="a Python with onnxruntime: adds the ONNX Runtime rows")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = train(args.data, args.out, args.train_images, args.threads)
    train_idx = os.path.join(args.data, "train-images-idx3-ubyte.gz")
    test_idx = os.path.join(args.data, "t10k-images-idx3-ubyte.gz")
    norm = ["--normalize-idx", "--mean", str(MEAN), "--std", str(STD)]
    variants = [("tq static (Histogram)", "hist", ["--calib", train_idx, "--limit", str(args.calib_images), *norm]),
                ("tq static (MinMax)", "minmax", ["--calib", train_idx, "--limit", str(args.calib_images),
                                                   "--activation-observer", "minmax", *norm]),
                ("tq dynamic (Linear)", "dynamic", ["--mode", "dynamic"])]
    rows = measure_variants(args.tq, model, variants, args.out, args.data, args.threads)
    # Where the int8 model departs from the float one: each quantized layer's output SQNR, as a
    # plot a person can open (Numeric Suite's comparison).
    plot = os.path.join(args.out, "layer_sqnr.svg")
    tq(args.tq, "compare", model, model.replace(".pt", "_hist_int8.pt"), "--data", test_idx, "--limit", "256",
       "--per-layer", "--plot", plot, *norm)
    rows.append(fx_row(model, args.data, args.calib_images, args.threads))
    print("\n| variant | accuracy | size bytes | ms bs1 | ms bs64 | top-1 agreement with fp32 | SQNR dB vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    fmt = lambda v, f: (f.format(v) if isinstance(v, (int, float)) else str(v))  # noqa: E731
    for r in rows:
        print(f"| {r['variant']} | {100 * r['accuracy']:.2f}% | {r['bytes']} | {fmt(r['ms_bs1'], '{:.2f}')} | "
              f"{fmt(r['ms_bs64'], '{:.2f}')} | {fmt(r.get('top1_agreement', '—'), '{:.4f}')} | "
              f"{fmt(r.get('sqnr_db', '—'), '{:.1f}')} |")
    ort_rows = ort_demo(args, model, train_idx, norm, rows[1]["accuracy"]) if args.ort_python else []
    out = os.path.join(args.out, "graph_results.json")
    with open(out + ".tmp", "w") as f:
        json.dump({"model": "torchvision resnet18 (1x28x28) on Fashion-MNIST", "threads": args.threads,
                   "rows": rows, "onnxruntime_rows": ort_rows}, f, indent=2)
    os.replace(out + ".tmp", out)
    print(f"wrote {out} and {plot}")


if __name__ == "__main__":
    main()
