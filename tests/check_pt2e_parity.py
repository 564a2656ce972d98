"""Graph mode against PyTorch 2.x's own graph quantizer: torchao's prepare_pt2e / convert_pt2e with
X86InductorQuantizer, on the same torchvision models (same weights), the same calibration batches
and the same evaluation input as tq. Run under the torchvision environment (torch 2.14.1,
torchvision 0.29.1, torchao 0.18.0; `make build-torch2` installs it):

  python tests/check_pt2e_parity.py --tq TQ --models-dir DIR --out OUT --model resnet18

tq quantizes the model file with the configuration that agrees with X86InductorQuantizer's default:
engine x86, HistogramObserver activations on the full uint8 range [0, 255] (--full-range; tq's
default is [0, 127], right on every CPU), per-channel symmetric int8 weights on [-128, 127]. Then,
for every convolution and Linear (by module path):
  - both quantize it (the same quantization points),
  - its per-channel weight scales agree (both fold batch norm first: float rounding only),
  - its input's scale and zero point agree (both HistogramObservers see the same float values, up
    to the float kernels' last bits),
and end to end tq's int8 output lies within one of its output steps of PT2E's on most elements.

Where the two configurations differ, by design, and the check says so rather than compares:
  - X86InductorQuantizer fuses a convolution with the residual add (+ ReLU) that follows it and
    quantizes only the sum; tq, as PyTorch FX does, quantizes the convolution's output and adds
    in int8 (quantized::add_relu). The convolution output is an extra tq quantization point.
  - X86InductorQuantizer's observers floor every scale at eps = 2^-12; tq's, as PyTorch FX's, at
    float32's epsilon. The comparison floors tq's scales at 2^-12 (it moves only layers whose
    weights are all below 2^-12 * 127.5 = 0.031 in a channel: the initialised-not-trained Linears).
  - A max pool's output shares its input's qparams in both, but PT2E's shared observer also sees
    the pooled values (one more histogram) where tq's (and FX's) sees the input only: the layers
    reading a max pool may get another scale.
  - X86InductorQuantizer fuses a convolution with a ReLU6 (hardtanh) after it and quantizes after
    the clamp; tq, as PyTorch FX, quantizes the convolution's output and clamps in int8 with those
    qparams (mobilenet_v2's inverted residual blocks: twice the step of PT2E's).
  - X86InductorQuantizer leaves a Linear's output float; tq returns the int8 Linear's output
    quantized (dequantized at the model's end). End to end the two differ by that last rounding.
Exit 77 (skipped) where torchao or torchvision is missing.
"""
import argparse
import json
import math
import os
import subprocess
import sys

try:
    import torch
    import torchvision
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
except ImportError as e:  # the environment is not there: say so, skip
    print(f"skipped: {e} (the torchvision environment: torch 2.14.1, torchvision 0.29.1, torchao 0.18.0)")
    sys.exit(77)

# Bounds. Scales: the two observers see the same values up to float rounding in different kernels
# (TorchScript's folded convolution vs eager's), so the histogram's bin edges move by ~1e-6 of
# the range; a scale that moves more than 1e-3 of itself is a different choice, not rounding.
SCALE_RTOL = 1e-3
PT2E_EPS = 2.0 ** -12  # X86InductorQuantizer's observers' eps
WEIGHT_SCALE_RTOL = 1e-5
# Input qparams equal (scale within SCALE_RTOL, same zero point) on at least this share of the
# layers where the configurations agree (not after a clamp or a pooling, see above): the histogram
# search is discrete, and a last-bit change of one input can tip it to a neighbouring bin.
MIN_LAYERS_EQUAL = 0.95
# End to end the configurations differ (above), so the outputs are not within one step everywhere
# (measured: 78-92% of elements on the four models). Bounds that still catch a broken layer: the
# two int8 outputs at least 30 dB apart from each other, at least 70% within one tq output step,
# and tq's distance from fp32 at most 3.5 dB worse than PT2E's (the ReLU6 difference costs
# mobilenet_v2 3 dB).
MIN_WITHIN_ONE_STEP = 0.7
MIN_SQNR_DB = 30.0
MAX_FP32_SQNR_LOSS_DB = 3.5


def sqnr_db(ref, x):
    noise = (ref - x).pow(2).sum().item()
    return math.inf if noise == 0 else 10 * math.log10(ref.pow(2).sum().item() / noise)


def tq_quantize(tq, model_file, calib_file, batch, out_dir, name, int8_backend):
    int8 = os.path.join(out_dir, f"{name}_tq_int8_{int8_backend}.pt")
    report = os.path.join(out_dir, f"{name}_tq_report.json")
    cmd = [tq, "quantize", model_file, "-o", int8, "--calib", calib_file, "--batch-size", str(batch),
           "--engine", "x86", "--full-range", "--report", report, "--force", "--int8-backend", int8_backend]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{name}: tq quantize failed ({run.returncode}): {run.stderr.strip()}")
    return int8, report


# --- tq's int8 TorchScript: each int8 conv / linear, its weight scales and its input qparams ------

def _constant(value):
    node = value.node()
    if node.kind() != "prim::Constant":
        raise ValueError(f"expected a constant, got {node.kind()}")
    return value.toIValue()


POOLING_OPS = ("aten::max_pool2d", "aten::adaptive_avg_pool2d", "aten::avg_pool2d")
CLAMP_OPS = ("aten::hardtanh", "aten::hardtanh_", "quantized::hardtanh", "aten::clamp", "aten::clamp_")


def _tq_qparams(value, passed=()):
    """The (scale, zero point) of an int8 value in tq's graph, where it was quantized or made by a
    quantized op (whose last two arguments are its output's), through the ops that keep their
    input's qparams (pooling, flatten, clamps, ...); and the operators passed on the way."""
    node = value.node()
    kind = node.kind()
    inputs = list(node.inputs())
    if kind == "aten::quantize_per_tensor":
        return _constant(inputs[1]), _constant(inputs[2]), passed
    if kind.startswith("quantized::") and kind not in CLAMP_OPS:
        return _constant(inputs[-2]), _constant(inputs[-1]), passed
    if not inputs:
        raise ValueError(f"{kind} has no input to take qparams from")
    return _tq_qparams(inputs[0], passed + (kind,))


def tq_layers(model):
    layers = {}
    for node in model.graph.nodes():
        kind = node.kind()
        if kind not in ("quantized::conv2d", "quantized::conv2d_relu", "quantized::linear",
                        "quantized::linear_relu"):
            continue
        out_name = node.output().debugName()
        if not out_name.startswith("tq_layer__"):
            raise ValueError(f"{kind}: output {out_name} is not named after its layer")
        path = out_name[len("tq_layer__"):].rsplit(".", 1)[0].replace("__", ".")
        inputs = list(node.inputs())
        packed = getattr(model, inputs[1].node().s("name"))
        unpack = torch.ops.quantized.conv2d_unpack if "conv" in kind else torch.ops.quantized.linear_unpack
        weight = unpack(packed)[0]
        scales = weight.q_per_channel_scales().double() if weight.qscheme() in (
            torch.per_channel_affine, torch.per_channel_symmetric) else torch.tensor([weight.q_scale()]).double()
        scale, zero_point, passed = _tq_qparams(inputs[0])
        layers[path] = {"input": (scale, zero_point), "weight_scales": scales, "through": passed}
    return layers


# --- torchao PT2E ---------------------------------------------------------------------------------

def split_shared_module_calls(gm):
    # torch 2.14's (non-strict) export records each node's module by its path only, so a module
    # called twice (torchvision's BasicBlock.relu) makes one source partition with two outputs,
    # which X86InductorQuantizer refuses ("Input partition has more than one output node").
    # Name each call apart, as strict export's source_fn_stack did ("layer1.0.relu@1").
    for n in gm.graph.nodes:
        stack = n.meta.get("nn_module_stack")
        if stack:
            key = list(stack)[-1]
            fqn, cls = stack[key]
            if "@" in key:
                stack[key] = (fqn + "@" + key.split("@")[1], cls)
    return gm


def pt2e_quantize(model, calibration, example, dynamic_batch=False):
    shapes = ({0: torch.export.Dim.DYNAMIC},) if dynamic_batch else None
    with torch.no_grad():
        exported = split_shared_module_calls(torch.export.export(model, (example,), dynamic_shapes=shapes).module())
        quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        for batch in calibration:
            prepared(batch)
        return convert_pt2e(prepared)


def pt2e_layers(converted):
    qd = torch.ops.quantized_decomposed
    layers = {}
    for node in converted.graph.nodes:
        if node.op != "call_function" or node.target not in (torch.ops.aten.conv2d.default,
                                                             torch.ops.aten.linear.default):
            continue
        path = list(node.meta["nn_module_stack"].values())[-1][0].split("@")[0]
        x, w = node.args[0], node.args[1]
        entry = {"input": None, "weight_scales": None}
        if isinstance(x, torch.fx.Node) and x.target == qd.dequantize_per_tensor.default:
            entry["input"] = (float(x.args[1]), int(x.args[2]))
        if isinstance(w, torch.fx.Node) and w.target == qd.dequantize_per_channel.default:
            entry["weight_scales"] = getattr(converted, w.args[1].target).double()
        layers[path] = entry
    return layers


def check_model(args, name):
    model_file = os.path.join(args.models_dir, f"{name}_trace.pt")
    scripted = torch.jit.load(os.path.join(args.models_dir, f"{name}_script.pt"))
    calibration = torch.load(os.path.join(args.models_dir, f"{name}_calib.pt"))  # [batches, batch, ...]
    x = torch.load(os.path.join(args.models_dir, f"{name}_input.pt"))
    calib_file = os.path.join(args.out, f"{name}_calib_flat.pt")
    torch.save(calibration.flatten(0, 1).clone(), calib_file)

    # The same weights in torchvision 0.29's eager model (PT2E exports eager modules).
    model = getattr(torchvision.models, name)()
    model.load_state_dict(scripted.state_dict())
    model.eval()
    with torch.no_grad():
        fp32 = model(x)
        drift = (fp32 - scripted(x)).abs().max().item()

    int8_file, report_file = tq_quantize(args.tq, model_file, calib_file, calibration.shape[1], args.out, name,
                                         "libtorch-quantized")
    ours = tq_layers(torch.jit.load(int8_file))
    # End to end, the onednn form: a convolution and the residual add after it are one oneDNN
    # operator there, as in X86InductorQuantizer's lowering, so only the sum is rounded.
    onednn_file, _ = tq_quantize(args.tq, model_file, calib_file, calibration.shape[1], args.out, name, "onednn")
    with torch.no_grad():
        tq_out = torch.jit.load(onednn_file)(x)
    with open(report_file) as f:
        output_qparams = json.load(f)["output"]
    out_scale = output_qparams["scale"] if isinstance(output_qparams, dict) else None

    converted = pt2e_quantize(model, calibration, x)
    with torch.no_grad():
        pt2e_out = converted(x)
    theirs = pt2e_layers(converted)

    failures = []
    only_tq = sorted(p for p in ours if p not in theirs or theirs[p]["input"] is None)
    only_pt2e = sorted(p for p in theirs if theirs[p]["input"] is not None and p not in ours)
    if only_tq or only_pt2e:
        failures.append(f"quantization points differ: int8 in tq only {only_tq}, in PT2E only {only_pt2e}")
    common = sorted(p for p in ours if p in theirs and theirs[p]["input"] is not None)
    equal_inputs, compared, worst_weight = 0, 0, 0.0
    differing, by_design = [], {"after a clamp": 0, "after a pooling": 0}
    for p in common:
        (s1, z1), (s2, z2) = ours[p]["input"], theirs[p]["input"]
        s1 = max(s1, PT2E_EPS)
        equal = abs(s1 - s2) <= SCALE_RTOL * s2 and z1 == z2
        through = ours[p]["through"]
        if any(k in CLAMP_OPS for k in through):
            by_design["after a clamp"] += 0 if equal else 1
        elif any(k in POOLING_OPS for k in through):
            by_design["after a pooling"] += 0 if equal else 1
        else:
            compared += 1
            equal_inputs += 1 if equal else 0
            if not equal:
                differing.append(f"{p}: tq ({s1:.6g}, {z1}) PT2E ({s2:.6g}, {z2})")
        w1, w2 = ours[p]["weight_scales"].clamp(min=PT2E_EPS), theirs[p]["weight_scales"]
        if w2 is None or w1.shape != w2.shape:
            failures.append(f"{p}: weight scales {tuple(w1.shape)} in tq, "
                            f"{None if w2 is None else tuple(w2.shape)} in PT2E")
            continue
        worst_weight = max(worst_weight, ((w1 - w2).abs() / w2.abs()).max().item())
    if worst_weight > WEIGHT_SCALE_RTOL:
        failures.append(f"weight scales differ by {worst_weight:.2e} of themselves (bound {WEIGHT_SCALE_RTOL})")
    if equal_inputs < MIN_LAYERS_EQUAL * compared:
        failures.append(f"input qparams equal on {equal_inputs}/{compared} layers (bound {MIN_LAYERS_EQUAL:.0%}): "
                        + "; ".join(differing[:4]))

    tq_vs_pt2e = sqnr_db(pt2e_out, tq_out)
    step = out_scale if out_scale else (tq_out.max() - tq_out.min()).item() / 255
    within = ((tq_out - pt2e_out).abs() <= step * 1.0001).double().mean().item()
    if within < MIN_WITHIN_ONE_STEP:
        failures.append(f"{within:.1%} of outputs within one tq output step of PT2E's (bound {MIN_WITHIN_ONE_STEP:.0%})")
    if tq_vs_pt2e < MIN_SQNR_DB:
        failures.append(f"tq's int8 output {tq_vs_pt2e:.1f} dB from PT2E's (bound {MIN_SQNR_DB} dB)")
    tq_db, pt2e_db = sqnr_db(fp32, tq_out), sqnr_db(fp32, pt2e_out)
    if tq_db < pt2e_db - MAX_FP32_SQNR_LOSS_DB:
        failures.append(f"tq's int8 output {tq_db:.1f} dB from fp32, PT2E's {pt2e_db:.1f} dB "
                        f"(bound: {MAX_FP32_SQNR_LOSS_DB} dB worse)")

    row = {"model": name, "layers": len(common), "compared": compared, "input_qparams_equal": equal_inputs,
           "differ_after_clamp": by_design["after a clamp"], "differ_after_pooling": by_design["after a pooling"],
           "worst_weight_scale_rtol": worst_weight, "within_one_step": within, "tq_vs_pt2e_db": tq_vs_pt2e,
           "tq_vs_fp32_db": tq_db, "pt2e_vs_fp32_db": pt2e_db,
           "top1_agree": (tq_out.argmax(1) == pt2e_out.argmax(1)).double().mean().item(),
           "eager_vs_torchscript_max_abs": drift, "differing": differing}
    print(f"{name}: {len(common)} int8 conv / linear layers in both; input qparams equal on {equal_inputs} of the "
          f"{compared} where the configurations agree (differ by design: {by_design['after a clamp']} after a "
          f"clamp, {by_design['after a pooling']} after a pooling); "
          f"weight scales within {worst_weight:.1e}; {within:.1%} of outputs within one step; "
          f"tq vs PT2E {tq_vs_pt2e:.1f} dB; vs fp32: tq {row['tq_vs_fp32_db']:.1f} dB, PT2E {row['pt2e_vs_fp32_db']:.1f} dB")
    for d in differing:
        print(f"  input qparams differ: {d}")
    return failures, row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tq", required=True, help="the tq tool")
    parser.add_argument("--models-dir", required=True, help="tools/graph_models.py's output")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("TQ_THREADS", "2")))
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"torchao {__import__('torchao').__version__}")
    rows, failed = [], False
    for name in args.model:
        failures, row = check_model(args, name)
        rows.append(row)
        for f in failures:
            print(f"{name}: {f}", file=sys.stderr)
            failed = True
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
