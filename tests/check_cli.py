"""Runs the real `tq` binary (ctest): exit codes, one-line messages, outputs and their absence.
usage: check_cli.py TQ_BINARY SEED_MODEL WORK_DIR [MODELS_DIR]
With MODELS_DIR (tools/graph_models.py's output), the four commands also run on every torchvision
model of the graph-mode acceptance set."""
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib

import torch

FAILURES = []


def run(args, code, needle=None):
    p = subprocess.run([TQ] + args, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    ok = p.returncode == code and (needle is None or needle in out)
    if code != 0 and ok:
        # Errors are one clean line: no LibTorch backtrace.
        ok = "Exception raised from" not in out and "frame #" not in out
    print(("ok  " if ok else "FAIL") + f"  tq {' '.join(args)} -> {p.returncode}" + ("" if ok else f"\n{out}"))
    if not ok:
        FAILURES.append(args)
    return out


class TextModel(torch.nn.Module):
    """Token ids and a mask in (a transformer's inputs), one Linear of 64 input features."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 64)
        self.fc = torch.nn.Linear(64, 32)

    def forward(self, ids, mask):
        x = self.embed(ids) * mask.unsqueeze(-1).to(torch.float32)
        return self.fc(x).mean(1)


def png(path, w, h, seed):
    """A small RGB PNG written with zlib (no imaging library needed)."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
    raw = b"".join(b"\x00" + bytes(pixels[y].flatten().tolist()) for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2_x1_0", "googlenet",
          "densenet121", "efficientnet_b0", "vit_b_16"]


def acceptance(models_dir, work):
    for name in MODELS:
        for mode in ("script", "trace"):
            m = os.path.join(models_dir, f"{name}_{mode}.pt")
            data = os.path.join(models_dir, f"{name}_input.pt")
            out = os.path.join(work, f"{name}_{mode}_int8.pt")
            run(["quantize", m, "-o", out, "--calib", data, "--batch-size", "2", "--force"], 0, "wrote")
            run(["compare", m, out, "--data", data], 0, "output SQNR")
            if mode == "script":
                run(["inspect", m], 0, "patterns that match")
                run(["bench", out, "--input-shape", "1,3,64,64", "--iters", "2", "--warmup", "1", "--vs", m], 0,
                    "as fast")
    return 1 if FAILURES else 0


def main():
    global TQ
    TQ, model, work = sys.argv[1], sys.argv[2], sys.argv[3]
    if len(sys.argv) > 4:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        return acceptance(sys.argv[4], work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    w = lambda name: os.path.join(work, name)  # noqa: E731
    torch.manual_seed(0)
    torch.save(torch.randn(8, 3, 16, 16), w("calib.pt"))
    torch.save(torch.randn(4, 5, 16, 16), w("wrong_shape.pt"))
    # .npy written by hand (no numpy needed): version 1.0 header, little-endian float32.
    arr = torch.randn(6, 3, 16, 16)
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 3, 16, 16), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(w("calib.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + arr.numpy().tobytes())
    with open(w("truncated.npy"), "wb") as f:
        f.write(open(w("calib.npy"), "rb").read()[:200])
    with open(w("not_a_model.pt"), "w") as f:
        f.write("not a zip archive")
    os.makedirs(w("empty_dir"))
    for k, cls in enumerate(["cat", "dog"]):
        os.makedirs(w(f"images/{cls}"))
        for i in range(3):
            png(w(f"images/{cls}/{i}.png"), 20, 18, 10 * k + i)
    os.makedirs(w("bad_images"))
    png(w("bad_images/good.png"), 16, 16, 99)
    with open(w("bad_images/corrupt.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nnot really")

    run(["--help"], 0, "quantize")
    run(["quantize", "--help"], 0, "--calib")
    out = run(["quantize", model, "-o", w("int8.pt"), "--calib", w("calib.pt"), "--engine", "qnnpack",
               "--batch-size", "4", "--report", w("report.json")], 0, "quantization points")
    torch.backends.quantized.engine = "qnnpack"
    int8 = torch.jit.load(w("int8.pt"))
    y = int8(torch.randn(2, 3, 16, 16))
    assert y.shape == (2, 32), y.shape
    report = json.load(open(w("report.json")))
    if report["quantized_nodes"] <= 0 or not report["quantization_points"]:
        FAILURES.append("report")
    run(["quantize", model, "-o", w("int8.pt"), "--calib", w("calib.pt")], 1, "exists (use --force")
    run(["quantize", model, "-o", model, "--calib", w("calib.pt"), "--force"], 1, "is the input model")
    run(["quantize", model, "-o", work, "--calib", w("calib.pt")], 1, "is a directory")
    run(["quantize", model, "-o", w("x.pt")], 1, "--mode static needs --calib")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("calib.pt"), "--fx-test-config", "--mode", "dynamic"], 1,
        "--fx-test-config")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("calib.pt"), "--engine", "tpu"], 1, "--engine")
    # The onednn form: plain uint8 tensors and oneDNN's int8 operators (LibTorch 2.x).
    run(["quantize", model, "-o", w("x.pt"), "--mode", "dynamic", "--int8-backend", "onednn"], 1,
        "--int8-backend onednn applies to --mode static")
    # The tq under test may link another LibTorch than this Python's PyTorch: ctest says which.
    if int(os.environ.get("TQ_LIBTORCH_VERSION", "1.13").split(".")[0]) >= 2:
        run(["quantize", model, "-o", w("onednn.pt"), "--calib", w("calib.pt"), "--int8-backend", "onednn"], 0, "wrote")
        with zipfile.ZipFile(w("onednn.pt")) as z:
            code = "".join(z.read(n).decode(errors="replace") for n in z.namelist() if n.endswith(".py"))
        if "ops.quantized." in code or "quantize_per_tensor" in code or "ops.onednn.qconv_pointwise" not in code:
            FAILURES.append("onednn form")
            print("FAIL  the onednn form's code:\n" + code)
    else:
        run(["quantize", model, "-o", w("x.pt"), "--calib", w("calib.pt"), "--int8-backend", "onednn"], 1,
            "--int8-backend onednn: the onednn int8 form needs LibTorch 2.x")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("calib.pt"), "--per-token"], 1,
        "--per-token applies to --mode dynamic")
    run(["quantize", model, "-o", w("per_token.pt"), "--mode", "dynamic", "--per-token"], 0, "wrote")
    run(["quantize", model, "-o", w("x.pt"), "--mode", "weight-only", "--weight-bits", "6"], 1,
        "--mode weight-only takes --weight-bits 4 or 8, got 6")
    run(["quantize", model, "-o", w("x.pt"), "--mode", "dynamic", "--group-size", "64"], 1,
        "--group-size applies to --mode weight-only")
    run(["quantize", model, "-o", w("x.pt"), "--mode", "weight-only", "--weight-bits", "4", "--group-size", "48"], 1,
        "--group-size must be a multiple of 32, got 48")
    run(["quantize", model, "-o", w("weight_only.pt"), "--mode", "weight-only", "--weight-bits", "4"], 0, "wrote")
    # GPTQ on a model with two inputs, calibrated on a dict of them by argument name (a tokenizer's output).
    text_model = w("text_model.pt")
    torch.jit.script(TextModel()).save(text_model)
    ids, mask = torch.randint(0, 50, (16, 8)), torch.ones(16, 8, dtype=torch.long)
    torch.save({"ids": ids, "mask": mask}, w("tokens.pt"))
    torch.save({"ids": ids}, w("tokens_no_mask.pt"))
    torch.save({"ids": ids[:4], "mask": mask[:4]}, w("tokens_few.pt"))
    torch.save({"ids": ids, "mask": mask, "extra": mask}, w("tokens_extra.pt"))
    # SmoothQuant: the Linear's input enters int8 from float once the mask's mul stays float.
    run(["quantize", text_model, "-o", w("smooth.pt"), "--calib", w("tokens.pt"), "--exclude", "mul", "--smooth-quant",
         "0.8", "--float-linear-outputs", "--report", w("smooth.json")], 0, "SmoothQuant: 1 Linear input(s) rescaled")
    smoothed = json.load(open(w("smooth.json")))["smoothed"]
    if len(smoothed) != 1 or not smoothed[0].startswith("fc (64 channels, s from "):
        FAILURES.append("--smooth-quant report: " + json.dumps(smoothed))
    run(["quantize", text_model, "-o", w("x.pt"), "--mode", "dynamic", "--smooth-quant", "0.5"], 1,
        "--smooth-quant, --float-linear-outputs and --int8-matmul apply to --mode static")
    run(["quantize", text_model, "-o", w("x.pt"), "--mode", "weight-only", "--int8-matmul"], 1,
        "--float-linear-outputs and --int8-matmul apply to --mode static")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("calib.pt"), "--fx-test-config", "--int8-matmul"], 1,
        "--int8-matmul does not combine with --fx-test-config")
    # Float Linear outputs and SmoothQuant have a QDQ form (a Mul before QuantizeLinear, no QuantizeLinear after).
    run(["quantize", model, "-o", w("float_outputs.onnx"), "--calib", w("calib.pt"), "--float-linear-outputs",
         "--smooth-quant", "0.5"], 0, "wrote")
    run(["quantize", text_model, "-o", w("x.pt"), "--mode", "dynamic", "--gptq"], 1,
        "--gptq applies to --mode weight-only")
    run(["quantize", text_model, "-o", w("x.pt"), "--mode", "weight-only", "--gptq"], 1, "--gptq needs --calib DATA")
    run(["quantize", text_model, "-o", w("x.pt"), "--mode", "weight-only", "--gptq", "--calib", w("tokens_no_mask.pt")],
        2, "the model's forward takes 'mask', which the file does not hold")
    run(["quantize", text_model, "-o", w("x.pt"), "--mode", "weight-only", "--gptq", "--calib", w("tokens_extra.pt")],
        2, "'extra' is no argument of the model's forward")
    run(["quantize", text_model, "-o", w("x.pt"), "--mode", "weight-only", "--gptq", "--calib", w("tokens_few.pt"),
         "--group-size", "32"], 3, "'fc': 32 calibration tokens for 64 input features")
    run(["quantize", text_model, "-o", w("x.pt"), "--calib", w("tokens.pt"), "--adaround"], 1,
        "holds named inputs (a dict)")
    run(["compare", text_model, text_model, "--data", w("tokens.pt")], 2,
        "holds named inputs (a dict), which only tq quantize --calib takes")
    run(["quantize", text_model, "-o", w("gptq.pt"), "--mode", "weight-only", "--gptq", "--calib", w("tokens.pt"),
         "--group-size", "32", "--batch-size", "4"], 0, "wrote")
    if os.path.exists(w("x.pt")):
        FAILURES.append("a failed quantize wrote its output")
    # The activation range: [0, 127] by default on x86 engines (no saturation anywhere), --full-range on request.
    run(["quantize", model, "-o", w("x.pt"), "--mode", "dynamic", "--full-range"], 1,
        "--full-range applies to --mode static with 8-bit activations")
    run(["quantize", model, "-o", w("reduced.pt"), "--calib", w("calib.pt"), "--engine", "onednn", "--report",
         w("reduced.json")], 0, "activation range: reduced range [0, 127]")
    run(["quantize", model, "-o", w("full.pt"), "--calib", w("calib.pt"), "--engine", "onednn", "--full-range",
         "--report", w("full.json")], 0, "activation range: full range [0, 255]")
    reduced, full = json.load(open(w("reduced.json"))), json.load(open(w("full.json")))
    if not reduced["activation_range"]["reduce_range"] or reduced["activation_range"]["full_range_layers"]:
        FAILURES.append("default activation range")
    if full["activation_range"]["reduce_range"] or not full["activation_range"]["full_range_layers"]:
        FAILURES.append("--full-range activation range")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("calib.pt"), "--exclude", "no.such.module"], 1,
        "names module type or operator 'no.such.module'")
    run(["quantize", model, "-o", w("excl.pt"), "--calib", w("calib.pt"), "--engine", "qnnpack", "--exclude", "add",
         "--exclude", "conv4", "--report", w("excl.json")], 0, "wrote")
    excl = {(n["op"], n["module"]): n for n in json.load(open(w("excl.json")))["nodes"]}
    if excl[("aten::add", "")]["quantized"] or excl[("aten::conv2d", "conv4")]["quantized"] or \
            not excl[("aten::conv2d", "conv1")]["quantized"]:
        FAILURES.append("--exclude add / conv4")
    run(["quantize", w("missing.pt"), "-o", w("x.pt"), "--calib", w("calib.pt")], 2, "no such file")
    run(["quantize", w("not_a_model.pt"), "-o", w("x.pt"), "--calib", w("calib.pt")], 2, "is not a TorchScript file")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("wrong_shape.pt")], 2, "shape [4, 5, 16, 16]")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("empty_dir")], 2, "no PNG or JPEG images")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("bad_images"), "--resize", "16", "--center-crop", "16"], 2,
        "corrupt.png: cannot decode image")
    if os.path.exists(w("x.pt")):
        FAILURES.append("a failed quantize left an output file")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("bad_images"), "--resize", "16", "--center-crop", "16",
         "--skip-bad"], 0, "skipped 1 unreadable images")
    run(["quantize", model, "-o", w("seed.pt"), "--calib", w("calib.pt"), "--fx-test-config"], 0, "ConvNormRelu")
    # ONNX QDQ output, picked by the extension or --format; ONNX Runtime runs it in OnnxExport.*.
    run(["quantize", model, "-o", w("int8.onnx"), "--calib", w("calib.pt")], 0, "QuantizeLinear")
    with open(w("int8.onnx"), "rb") as f:
        if b"DequantizeLinear" not in f.read():
            FAILURES.append("int8.onnx holds no DequantizeLinear")
    run(["quantize", model, "-o", w("int8_onnx.bin"), "--calib", w("calib.pt"), "--format", "onnx",
         "--onnx-profile", "s8s8"], 0, "QuantizeLinear")
    run(["quantize", model, "-o", w("int8_tensorrt.onnx"), "--calib", w("calib.pt"), "--onnx-profile", "tensorrt"], 0,
        "QuantizeLinear")
    run(["quantize", model, "-o", w("x.pt"), "--calib", w("calib.pt"), "--onnx-profile", "tensorrt"], 1,
        "--onnx-profile tensorrt calibrates symmetric 8-bit activations for a static ONNX output")
    run(["quantize", model, "-o", w("int8.onnx"), "--calib", w("calib.pt")], 1, "exists (use --force")
    run(["quantize", model, "-o", w("x.onnx"), "--calib", w("calib.pt"), "--onnx-opset", "11"], 1,
        "--onnx-opset 11 is too old")
    run(["quantize", model, "-o", w("x.onnx"), "--mode", "dynamic"], 1, "ONNX output")
    # Weight-only Linears: blocked DequantizeLinear at opset 21 (the default for --mode weight-only).
    mlp = w("mlp.pt")
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))).save(mlp)
    torch.save(torch.randn(8, 64), w("mlp_calib.pt"))
    run(["quantize", mlp, "-o", w("weight_only.onnx"), "--mode", "weight-only", "--weight-bits", "4", "--group-size",
         "32", "--calib", w("mlp_calib.pt")], 0, "0 int8 weights, 2 group-wise weights")
    run(["quantize", mlp, "-o", w("x.onnx"), "--mode", "weight-only", "--group-size", "32", "--calib", w("mlp_calib.pt"),
         "--onnx-opset", "17"], 1, "--onnx-opset 17 is too old for --mode weight-only")
    run(["quantize", mlp, "-o", w("x.onnx"), "--mode", "weight-only"], 1, "ONNX output (")
    if os.path.exists(w("x.onnx")):
        FAILURES.append("a refused ONNX export left an output file")
    run(["quantize", model, "-o", w("ref.pt"), "--calib", w("calib.pt"), "--engine", "qnnpack", "--reference"], 0)
    run(["quantize", model, "-o", w("npy.pt"), "--calib", w("calib.npy"), "--engine", "qnnpack"], 0, "wrote")
    run(["quantize", model, "-o", w("npy_bad.pt"), "--calib", w("truncated.npy")], 2, "truncated .npy data")
    with open(w("qconfig.json"), "w") as f:
        json.dump({"global": {"activation": "minmax", "weights": "per-tensor"}, "module_name": {"conv1": None},
                   "object_type": {"add": None}}, f)
    run(["quantize", model, "-o", w("qc.pt"), "--calib", w("calib.pt"), "--engine", "qnnpack", "--qconfig",
         w("qconfig.json"), "--report", w("qc.json")], 0, "wrote")
    qc = {(n["op"], n["module"]): n for n in json.load(open(w("qc.json")))["nodes"]}
    if qc[("aten::conv2d", "conv1")]["quantized"] or qc[("aten::add", "")]["quantized"] or \
            not qc[("aten::conv2d", "conv2")]["quantized"]:
        FAILURES.append("--qconfig module_name / object_type")
    with open(w("bad_qconfig.json"), "w") as f:
        json.dump({"global": {"activation": "kl"}}, f)
    run(["quantize", model, "-o", w("qc2.pt"), "--calib", w("calib.pt"), "--qconfig", w("bad_qconfig.json")], 2,
        "unknown activation observer 'kl'")
    with open(w("bits_qconfig.json"), "w") as f:
        json.dump({"global": {"activation": "entropy"}, "module_name": {"conv1": {"weight_bits": 1}}}, f)
    run(["quantize", model, "-o", w("qc2.pt"), "--calib", w("calib.pt"), "--qconfig", w("bits_qconfig.json")], 2,
        "module_name.conv1: bits must be between 2 and 8")
    run(["quantize", model, "-o", w("w9.pt"), "--calib", w("calib.pt"), "--weight-bits", "9"], 1, "--weight-bits")
    run(["quantize", model, "-o", w("ada.pt"), "--mode", "dynamic", "--adaround"], 1,
        "--adaround, --bias-correction, --equalize, --smooth-quant, --float-linear-outputs and --int8-matmul apply to "
        "--mode static")
    run(["quantize", model, "-o", w("eq.pt"), "--calib", w("calib.pt"), "--engine", "qnnpack", "--per-tensor-weights",
         "--equalize"], 0, "wrote")
    # Mixed precision: images in class folders give labels; 2-bit weights first.
    img = ["--resize", "16", "--center-crop", "16"]
    run(["quantize", model, "-o", w("mp.pt"), "--calib", w("images"), *img, "--engine", "qnnpack", "--weight-bits", "2",
         "--max-accuracy-drop", "0", "--eval", w("images"), "--report", w("mp.json")], 0, "mixed precision: float")
    mp = json.load(open(w("mp.json")))["mixed_precision"]
    if mp["evaluations"] < 2 or not mp["layers"] or (mp["met"] and mp["accuracy"] < mp["float_accuracy"]):
        FAILURES.append("--max-accuracy-drop report: " + json.dumps(mp))
    run(["quantize", model, "-o", w("mp3.pt"), "--calib", w("images"), *img, "--engine", "qnnpack", "--weight-bits", "2",
         "--max-accuracy-drop", "0", "--eval", w("images"), "--sensitivity", "metric", "--report", w("mp3.json")], 0,
        "alone -> float")
    mp3 = json.load(open(w("mp3.json")))["mixed_precision"]
    if mp3["ranking"] != "metric" or mp3["evaluations"] < 2 + len(mp3["sensitivity_order"]):
        FAILURES.append("--sensitivity metric report: " + json.dumps(mp3))
    run(["quantize", model, "-o", w("mp2.pt"), "--calib", w("calib.pt"), "--max-accuracy-drop", "1"], 1,
        "--max-accuracy-drop needs --eval")
    run(["quantize", model, "-o", w("mp2.pt"), "--calib", w("calib.pt"), "--max-accuracy-drop", "1", "--eval",
         w("calib.pt")], 2, "needs labels")
    for obs in ("entropy", "percentile", "mse"):
        run(["quantize", model, "-o", w(obs + ".pt"), "--calib", w("calib.pt"), "--engine", "qnnpack",
             "--activation-observer", obs, "--weight-observer", "mse", "--activation-bits", "6"], 0, "wrote")
    run(["quantize", model, "-o", w("ada.pt"), "--calib", w("calib.pt"), "--engine", "qnnpack", "--weight-bits", "4",
         "--adaround", "--adaround-iterations", "30", "--adaround-samples", "8", "--batch-size", "4",
         "--bias-correction", "--report", w("ada.json")], 0, "bias correction on")
    ada = json.load(open(w("ada.json")))["adaround"]
    if not ada["layers"] or any(l["loss_adaround"] > l["loss_nearest"] for l in ada["layers"]):
        FAILURES.append("--adaround report: " + json.dumps(ada))
    if not json.load(open(w("ada.json")))["bias_correction"]["layers"]:
        FAILURES.append("--bias-correction report")
    with open(w("broken.json"), "w") as f:
        f.write("{not json")
    run(["quantize", model, "-o", w("qc2.pt"), "--calib", w("calib.pt"), "--qconfig", w("broken.json")], 2,
        "not valid JSON")
    run(["inspect", model], 0, "patterns that match")
    run(["bench", w("int8.pt"), "--input-shape", "1,3,16,16", "--iters", "3", "--warmup", "1", "--vs", model,
         "--engine", "qnnpack"], 0, "as fast")
    run(["bench", model, "--input-shape", "1,x"], 1, "--input-shape")
    run(["bench", model, "--input-shape", "1,7,16,16", "--iters", "1"], 2, "failed on input of shape [1, 7, 16, 16]")
    run(["compare", model, w("int8.pt"), "--data", w("calib.pt"), "--engine", "qnnpack"], 0, "output SQNR")
    run(["compare", model, w("int8.pt"), "--data", w("images"), "--resize", "16", "--center-crop", "16",
         "--engine", "qnnpack", "--report", w("compare.json")], 0, "accuracy")
    run(["compare", model, w("int8.pt"), "--data", w("calib.pt"), "--engine", "qnnpack", "--batch-size", "4",
         "--sensitivity", "--plot", w("sensitivity.svg"), "--report", w("sensitivity.json")], 0,
        "layers by sensitivity")
    # The picture is well-formed SVG with one bar per layer, the layers of the report.
    import xml.etree.ElementTree as ET
    try:
        svg = ET.parse(w("sensitivity.svg")).getroot()
        bars = [e for e in svg.iter("{http://www.w3.org/2000/svg}rect")][1:]
        layers = json.load(open(w("sensitivity.json")))["sensitivity"]
        if len(bars) != len(layers) or len(layers) != 4 or not all(float(b.get("width")) > 0 for b in bars):
            FAILURES.append("sensitivity plot")
        print("ok    sensitivity.svg: well-formed, one bar per layer")
    except (ET.ParseError, OSError, KeyError) as e:
        FAILURES.append(f"sensitivity plot: {e}")
    run(["compare", model, w("int8.pt"), "--data", w("calib.pt"), "--engine", "qnnpack", "--batch-size", "4",
         "--per-layer", "--plot", w("per_layer.svg"), "--report", w("per_layer.json")], 0, "per-layer SQNR")
    try:
        layers = {r["layer"]: r["sqnr_db"] for r in json.load(open(w("per_layer.json")))["per_layer"]}
        bars = [e for e in ET.parse(w("per_layer.svg")).getroot().iter("{http://www.w3.org/2000/svg}rect")][1:]
        # Every quantized layer of the seed model, each int8 output close to its float value.
        if sorted(layers) != ["conv1", "conv2", "conv3", "conv4", "top"] or len(bars) != 5 or \
                not all(25 < db < 80 for db in layers.values()):
            FAILURES.append(f"per-layer SQNR: {layers}")
        print("ok    per_layer.svg and per-layer SQNR of every quantized layer")
    except (ET.ParseError, OSError, KeyError) as e:
        FAILURES.append(f"per-layer: {e}")
    run(["compare", model, model, "--data", w("calib.pt"), "--per-layer"], 2, "no layer of it matches")
    run(["compare", model, w("int8.pt"), "--data", w("calib.pt"), "--plot", w("p.svg")], 1,
        "--plot needs --per-layer or --sensitivity")
    if FAILURES:
        print("failed:", FAILURES)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
