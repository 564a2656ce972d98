#!/usr/bin/env python3
"""A small torchvision VisionTransformer on Fashion-MNIST, quantized by the `tq` tool: accuracy and speed.

  make vit-demo   # or: /usr/bin/python3 tools/vit_demo.py --tq build-torch2/apps/cli/tq --out build-torch2/vit_demo

1. At its first run, trains torchvision's VisionTransformer (patch embedding adapted to 1x28x28;
   7x7 patches, so 16 tokens and the class token) on Fashion-MNIST's 60,000 training images with
   Debian's PyTorch, traces it in inference mode (nn.MultiheadAttention's fused path, as a model
   exported for inference has it) and caches OUT/vit_fashion.pt; later runs reuse it.
2. `tq quantize` it: the default static mapping, and the same with the attention's products in
   int8 (--int8-matmul); static with the Linears returning float32 (residual adds, LayerNorm and
   softmax float), with and without SmoothQuant; dynamic.
3. `tq compare` each with the float model on the 10,000 test images and `tq bench` each at batch 1
   and 64 against the float model (interleaved, in the tool's process, --threads threads).
Prints the table and writes OUT/vit_results.json.
"""
import argparse
import json
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from graph_demo import MEAN, STD, images, measure_variants, read_idx  # noqa: E402


def build_model(a):
    torch.manual_seed(0)
    m = torchvision.models.VisionTransformer(image_size=28, patch_size=7, num_layers=a.layers, num_heads=a.heads,
                                             hidden_dim=a.hidden, mlp_dim=a.mlp, num_classes=10)
    m.conv_proj = torch.nn.Conv2d(1, a.hidden, kernel_size=7, stride=7)
    return m


def train(a):
    path = os.path.join(a.out, "vit_fashion.pt")
    if os.path.exists(path):
        print(f"vit demo: reusing {path}", file=sys.stderr)
        return path
    torch.set_num_threads(a.threads)
    x = images(os.path.join(a.data, "train-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).long()
    model = build_model(a).train()
    steps = a.epochs * ((len(x) + 127) // 128)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(steps, 1), pct_start=0.1)
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    step = 0
    for epoch in range(a.epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            idx = order[i:i + 128]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % 100 == 0:
                print(f"vit demo: epoch {epoch}, step {step} of {steps}, loss {loss.item():.3f}, "
                      f"{time.time() - t0:.0f}s", file=sys.stderr)
            step += 1
    model.eval()
    with torch.no_grad():  # inference mode: nn.MultiheadAttention's fused path is what gets traced
        traced = torch.jit.trace(model, x[:2])
    traced.save(path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tq", default="build-torch2/apps/cli/tq")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="build-torch2/vit_demo")
    ap.add_argument("--epochs", type=int, default=5, help="0: untrained weights (for speed alone)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=512)
    ap.add_argument("--calib-images", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    model = train(a)
    train_idx = os.path.join(a.data, "train-images-idx3-ubyte.gz")
    norm = ["--normalize-idx", "--mean", str(MEAN), "--std", str(STD)]
    calib = ["--calib", train_idx, "--limit", str(a.calib_images), *norm]
    linear_only = ["--float-linear-outputs", "--exclude", "add", "layer_norm", "softmax"]
    variants = [("tq static, default mapping", "static", calib),
                ("tq static, default mapping + int8 q k^T and P V", "static_mm", [*calib, "--int8-matmul"]),
                ("tq static, Linears with float outputs", "float_out", [*calib, *linear_only]),
                ("tq static, float outputs + SmoothQuant 0.5", "sq05", [*calib, *linear_only, "--smooth-quant", "0.5"]),
                ("tq dynamic (Linear)", "dynamic", ["--mode", "dynamic"])]
    rows = measure_variants(a.tq, model, variants, a.out, a.data, a.threads, iters=30)
    print(f"{'variant':46} {'accuracy':>9} {'agree':>7} {'SQNR':>6} {'MB':>6} {'x fp32 bs1':>10} {'x fp32 bs64':>11}")
    for r in rows:
        acc = f"{100 * r['accuracy']:.2f}%" if "accuracy" in r else ""
        agree = f"{100 * r['top1_agreement']:.2f}%" if "top1_agreement" in r else ""
        sqnr = f"{r['sqnr_db']:.1f}" if "sqnr_db" in r else ""
        s1 = f"{r['speedup_bs1']:.2f}x" if "speedup_bs1" in r else ""
        s64 = f"{r['speedup_bs64']:.2f}x" if "speedup_bs64" in r else ""
        print(f"{r['variant']:46} {acc:>9} {agree:>7} {sqnr:>6} {r['bytes'] / 1e6:6.2f} {s1:>10} {s64:>11}")
    out = os.path.join(a.out, "vit_results.json")
    with open(out + ".tmp", "w") as f:
        json.dump({"rows": rows, "config": vars(a), "torch": torch.__version__}, f, indent=1)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
