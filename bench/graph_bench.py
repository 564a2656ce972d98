#!/usr/bin/env python3
"""Graph-mode quantization of real torchvision models: tq's C++ graph quantizer
(build/bench/tq_graph_bench, on the TorchScript file) against PyTorch's two graph-mode flows, FX
(prepare_fx / convert_fx on the eager model) and quantize_jit (prepare_jit / convert_jit on the
scripted model), onednn engine, each flow with its backend's default qconfig.

  /usr/bin/python3 bench/graph_bench.py [--models resnet18,resnet50,mobilenet_v2,shufflenet_v2_x1_0]
      [--size 224] [--batches 8] [--batch 16] [--threads 2] [--iters 10] [--rounds 3]
      [--tq-bench build/bench/tq_graph_bench] [--work build/bench/graph]
      [--json build/bench/graph_results.json] [--skip-tq]

For each model (tools/graph_models.py's build(): seeded random weights, non-trivial batch norms):
  * torch.jit.script it and save WORK/NAME.pt; tq_graph_bench loads that file, calibrates on
    `--batches` batches of randn [batch, 3, size, size] (seed 1), converts and writes
    WORK/NAME_int8.pt, and reports its own timings and peak RSS as one JSON line;
  * in this process, the same calibration batches for PyTorch: FX and quantize_jit, each with
    prepare, calibration and convert timed separately; during calibration every observed forward
    is interleaved with the float forward of the same batch (eager for FX, scripted for
    quantize_jit), which brackets it: calibration ratio = calibration s / float forward s.
    As in tq_graph_bench, one untimed warm-up call of each on batch 0 comes first (so the
    observers see batch 0 twice on both sides; the warm-up times are in the JSON);
  * latency of fp32 (scripted), FX int8, quantize_jit int8 and tq int8 (torch.jit.load of tq's
    file), at batch 16 then batch 1 (eval input: randn, seed 2), interleaved: each round runs every
    variant for 2 warm-up + `--iters` timed calls; the median over all timed calls is reported.
    Batch 16 runs first on purpose: PyTorch 1.13's onednn int8 models can fail once the batch size
    changes, and a failure is recorded ("fails": the error's first line), as users would see it;
  * SQNR (dB) of each int8 output against fp32's on the batch-16 eval input (sanity: a fast model
    that computes garbage would show here).
Prints a markdown table per model and writes everything to --json (temp file + os.replace, after
every model). Everything runs under torch.no_grad(), with torch.set_num_threads(--threads) here
and OMP_NUM_THREADS=--threads for tq_graph_bench.
"""
import argparse
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torchvision
import torch.ao.quantization as Q
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from torch.ao.quantization.quantize_jit import convert_jit, prepare_jit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import graph_models  # noqa: E402

ENGINE = "onednn"
DEFAULT_MODELS = "resnet18,resnet50,mobilenet_v2,shufflenet_v2_x1_0"
VARIANTS = ("fp32", "fx", "quantize_jit", "tq")
LABELS = {"fp32": "fp32 (TorchScript)", "fx": "FX", "quantize_jit": "quantize_jit", "tq": "tq"}


def first_line(e):
    """`Type: first non-empty line of the message` of an exception. TorchScript's interpreter
    errors start with a generic line and end with the real one; that one is added."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    msg = f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    if lines and lines[0].startswith("The following operation failed in the TorchScript"):
        cause = [ln for ln in lines[1:] if re.match(r"^[A-Za-z_.]*(Error|Exception): ", ln)]
        if cause:
            msg += " ... " + cause[-1]
    return msg


def logits(out):
    """The output tensor (googlenet's scripted forward returns a named tuple)."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out.dequantize() if out.is_quantized else out


def sqnr_db(ref, out):
    ref, out = ref.double(), logits(out).double()
    noise = (ref - out).pow(2).sum().item()
    signal = ref.pow(2).sum().item()
    if noise == 0.0 or signal == 0.0:
        return None  # identical outputs (or an all-zero reference): no finite SQNR
    return 10.0 * math.log10(signal / noise)


def write_json_atomic(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def run_tq(args, name, model_path, int8_path):
    cmd = [args.tq_bench, "--model", model_path, "--out", int8_path, "--batches", str(args.batches),
           "--batch", str(args.batch), "--size", str(args.size), "--threads", str(args.threads),
           "--engine", ENGINE]
    if args.tq_activation:
        cmd += ["--activation", args.tq_activation]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    res = None
    for line in reversed(p.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                res = json.loads(line)
                break
            except json.JSONDecodeError:
                pass
    if p.returncode != 0 or res is None:
        err = [ln.strip() for ln in p.stderr.splitlines() if ln.strip()]
        why = err[0] if err else f"exit status {p.returncode}, no JSON on stdout"
        return {"fails": why, "returncode": p.returncode, "command": cmd,
                "stderr_tail": "\n".join(p.stderr.splitlines()[-20:]),
                "stdout_tail": "\n".join(p.stdout.splitlines()[-5:])}
    res["process_wall_s"] = wall
    res["command"] = cmd
    if res.get("float_peak_rss_mb") and res.get("calibration_peak_rss_mb") is not None:
        res["peak_rss_ratio"] = res["calibration_peak_rss_mb"] / res["float_peak_rss_mb"]
    return res


def calibrate_interleaved(float_fn, observed_fn, batches):
    """As tq_graph_bench does: one untimed warm-up call of each on batches[0] (TorchScript's
    executor profiles its first runs; the observers do record this call, as tq's do), then
    float_fn(b) and observed_fn(b) for every batch. Returns the summed seconds of each, the
    per-batch times and the warm-up calls' times (kept apart: not in the sums)."""
    f_t, c_t = [], []
    with torch.no_grad():
        t0 = time.perf_counter()
        float_fn(batches[0])
        t1 = time.perf_counter()
        observed_fn(batches[0])
        t2 = time.perf_counter()
        warm = {"float_warmup_s": t1 - t0, "calibration_warmup_s": t2 - t1}
        for b in batches:
            t0 = time.perf_counter()
            float_fn(b)
            t1 = time.perf_counter()
            observed_fn(b)
            t2 = time.perf_counter()
            f_t.append(t1 - t0)
            c_t.append(t2 - t1)
    return {"float_forward_s": sum(f_t), "calibration_s": sum(c_t),
            "calibration_ratio": sum(c_t) / sum(f_t),
            "float_forward_batch_s": f_t, "calibration_batch_s": c_t, **warm}


def pytorch_fx(name, size, batches, example):
    """FX: prepare_fx, interleaved calibration (bracketed by the eager float model), convert_fx."""
    res = {}
    float_eager = graph_models.build(name, size)
    model = graph_models.build(name, size)
    try:
        t0 = time.perf_counter()
        observed = prepare_fx(model, Q.get_default_qconfig_mapping(ENGINE), (example,))
        res["prepare_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 (FX cannot trace some models)
        return {"fails": first_line(e), "stage": "prepare_fx"}, None
    try:
        res.update(calibrate_interleaved(float_eager, observed, batches))
        del float_eager
        t0 = time.perf_counter()
        int8 = convert_fx(observed)
        res["convert_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001
        return {"fails": first_line(e), "stage": "calibration/convert_fx", **res}, None
    res["prepare_convert_s"] = res["prepare_s"] + res["convert_s"]
    return res, int8


def pytorch_quantize_jit(scripted_fp32, model_path, batches):
    """quantize_jit's steps, timed separately: prepare_jit (fold conv-bn, insert observers),
    calibration (interleaved with the scripted float model), convert_jit (+ the constant
    propagation and dead-code elimination quantize_jit runs after it)."""
    res = {}
    model = torch.jit.load(model_path)  # an independent copy of the scripted model
    stage = "prepare_jit"
    try:
        t0 = time.perf_counter()
        observed = prepare_jit(model, {"": Q.get_default_qconfig(ENGINE)}, inplace=False)
        res["prepare_s"] = time.perf_counter() - t0
        del model
        stage = "calibration"
        res.update(calibrate_interleaved(scripted_fp32, observed, batches))
        stage = "convert_jit"
        t0 = time.perf_counter()
        int8 = convert_jit(observed, inplace=True)
        torch._C._jit_pass_constant_propagation(int8.graph)
        torch._C._jit_pass_dce(int8.graph)
        res["convert_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 (e.g. googlenet)
        return {"fails": first_line(e), "stage": stage, **res}, None
    res["prepare_convert_s"] = res["prepare_s"] + res["convert_s"]
    return res, int8


def latency(variants, name, size, iters, rounds):
    """{batch: {variant: {"ms": median, "calls": n} | {"fails": msg}}}, batch 16 first, then 1,
    and the SQNR of each int8 output against fp32's on the batch-16 input."""
    out, sqnr = {}, {}
    with torch.no_grad():
        for bs in (16, 1):
            x = graph_models.eval_input(name, bs, size)
            times = {v: [] for v in variants}
            errors = {}
            for _ in range(rounds):
                for v, fn in variants.items():
                    if v in errors:
                        continue
                    try:
                        for _ in range(2):
                            y = fn(x)
                        if bs == 16 and v not in sqnr:
                            sqnr[v] = logits(y).clone() if v == "fp32" else y
                        for _ in range(iters):
                            t0 = time.perf_counter()
                            fn(x)
                            times[v].append((time.perf_counter() - t0) * 1e3)
                    except Exception as e:  # noqa: BLE001 (onednn int8 after a batch-size change)
                        errors[v] = first_line(e)
            out[str(bs)] = {v: ({"fails": errors[v], "calls": len(times[v])} if v in errors else
                                {"ms": statistics.median(times[v]), "calls": len(times[v]),
                                 "min_ms": min(times[v])})
                            for v in variants}
    ref = sqnr.pop("fp32", None)
    sqnr_out = {}
    if ref is not None:
        for v, y in sqnr.items():
            try:
                sqnr_out[v] = sqnr_db(ref, y)
            except Exception as e:  # noqa: BLE001
                sqnr_out[v] = {"fails": first_line(e)}
    return out, sqnr_out


def fmt(v, spec=".3f"):
    return format(v, spec) if isinstance(v, (int, float)) else "—"


def table(name, r):
    lat = r.get("latency_ms", {})

    def ms(v, bs):
        e = lat.get(bs, {}).get(v)
        if e is None:
            return None, "—"
        if "fails" in e:
            return None, "fails"
        return e["ms"], f"{e['ms']:.2f}"

    lines = [f"### {name} (size {r['size']}, calibration {r['batches']} x {r['batch']}, "
             f"{r['threads']} threads, {ENGINE})", "",
             "| flow | calibration s (float forward s) | calibration ratio | prepare+convert s "
             "| latency ms bs1 / bs16 | speed-up vs fp32 bs1 / bs16 | SQNR dB vs fp32 |",
             "|---|---|---|---|---|---|---|"]
    f1, f1s = ms("fp32", "1")
    f16, f16s = ms("fp32", "16")
    lines.append(f"| {LABELS['fp32']} | — | — | — | {f1s} / {f16s} | 1.00 / 1.00 | — |")
    notes = []
    for v in ("fx", "quantize_jit", "tq"):
        q = r.get(v)
        if q is None:
            continue
        if "fails" in q:
            lines.append(f"| {LABELS[v]} | fails | — | — | — | — | — |")
            notes.append(f"{LABELS[v]} fails ({q.get('stage', 'tq_graph_bench')}): {q['fails']}")
            continue
        calib = f"{q['calibration_s']:.3f} ({q['float_forward_s']:.3f})"
        pc = q.get("prepare_s", 0.0) + q.get("convert_s", 0.0)
        pcs = f"{pc:.3f} ({q.get('prepare_s', float('nan')):.3f} + {q.get('convert_s', float('nan')):.3f})"
        q1, q1s = ms(v, "1")
        q16, q16s = ms(v, "16")
        su1 = f"{f1 / q1:.2f}" if f1 and q1 else "—"
        su16 = f"{f16 / q16:.2f}" if f16 and q16 else "—"
        s = r.get("sqnr_db", {}).get(v)
        ss = f"{s:.1f}" if isinstance(s, float) else ("fails" if isinstance(s, dict) else "—")
        lines.append(f"| {LABELS[v]} | {calib} | {q['calibration_ratio']:.2f} | {pcs} | {q1s} / {q16s} "
                     f"| {su1} / {su16} | {ss} |")
    for bs in ("16", "1"):
        for v, e in lat.get(bs, {}).items():
            if "fails" in e:
                notes.append(f"{LABELS[v]} at batch {bs} fails after {e['calls']} timed calls: {e['fails']}")
    t = r.get("tq")
    if t and "fails" not in t:
        ratio = t.get("peak_rss_ratio")
        notes.append(f"tq peak RSS: calibration {fmt(t.get('calibration_peak_rss_mb'), '.0f')} MB / "
                     f"float forward {fmt(t.get('float_peak_rss_mb'), '.0f')} MB = {fmt(ratio, '.2f')}x; "
                     f"quantized nodes {t.get('quantized_nodes', '?')} / {t.get('nodes', '?')}")
    lines.append("")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tq-bench", default="build/bench/tq_graph_bench")
    ap.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated (default: %(default)s)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batches", type=int, default=8, help="calibration batches")
    ap.add_argument("--batch", type=int, default=16, help="calibration batch size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10, help="timed latency calls per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="build/bench/graph", help="scripted and int8 model files")
    ap.add_argument("--json", default="build/bench/graph_results.json")
    ap.add_argument("--tq-activation", choices=("histogram", "minmax"), default=None,
                    help="passed to tq_graph_bench as --activation (default: its own default)")
    ap.add_argument("--skip-tq", action="store_true", help="PyTorch only (no tq_graph_bench run)")
    args = ap.parse_args(argv)

    if not args.skip_tq and not os.access(args.tq_bench, os.X_OK):
        ap.error(f"{args.tq_bench} is not an executable (build it, pass --tq-bench, or --skip-tq)")
    # convert_jit's model.cpu() reads .grad of non-leaf tensors: PyTorch's warning, not ours.
    warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf")
    load = os.getloadavg()
    if load[0] > 0.5:
        print(f"warning: load average {load[0]:.2f} before starting: timings need an idle machine",
              file=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = ENGINE
    os.makedirs(args.work, exist_ok=True)

    results = {"config": {k: v for k, v in vars(args).items()},
               "env": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                       "engine": ENGINE, "python": platform.python_version(),
                       "machine": platform.machine(), "cpus": os.cpu_count(),
                       "loadavg_at_start": load},
               "models": {}}
    tq_failed = False
    for name in [n for n in args.models.split(",") if n]:
        r = {"size": args.size, "batches": args.batches, "batch": args.batch, "threads": args.threads}
        results["models"][name] = r
        print(f"[{name}] scripting", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        scripted = torch.jit.script(graph_models.build(name, args.size))
        r["script_s"] = time.perf_counter() - t0
        model_path = os.path.join(args.work, f"{name}.pt")
        int8_path = os.path.join(args.work, f"{name}_int8.pt")
        torch.jit.save(scripted, model_path + ".tmp")
        os.replace(model_path + ".tmp", model_path)

        variants = {"fp32": scripted}
        if not args.skip_tq:
            print(f"[{name}] tq_graph_bench", file=sys.stderr, flush=True)
            if os.path.exists(int8_path):
                os.remove(int8_path)
            r["tq"] = run_tq(args, name, model_path, int8_path)
            if "fails" in r["tq"]:
                tq_failed = True
            else:
                try:
                    variants["tq"] = torch.jit.load(int8_path)
                except Exception as e:  # noqa: BLE001
                    r["tq"]["load_fails"] = first_line(e)
                    tq_failed = True

        batches = graph_models.calibration(name, args.batches, args.batch, args.size)
        print(f"[{name}] FX", file=sys.stderr, flush=True)
        r["fx"], fx_int8 = pytorch_fx(name, args.size, batches, batches[0])
        if fx_int8 is not None:
            variants["fx"] = fx_int8
        gc.collect()
        print(f"[{name}] quantize_jit", file=sys.stderr, flush=True)
        r["quantize_jit"], jit_int8 = pytorch_quantize_jit(scripted, model_path, batches)
        if jit_int8 is not None:
            variants["quantize_jit"] = jit_int8
        del batches
        gc.collect()

        print(f"[{name}] latency", file=sys.stderr, flush=True)
        ordered = {v: variants[v] for v in VARIANTS if v in variants}
        r["latency_ms"], r["sqnr_db"] = latency(ordered, name, args.size, args.iters, args.rounds)
        del ordered, variants, fx_int8, jit_int8, scripted
        gc.collect()

        print(table(name, r), flush=True)
        print(flush=True)
        write_json_atomic(args.json, results)
    print(f"results: {args.json}", file=sys.stderr)
    return 1 if tq_failed else 0


if __name__ == "__main__":
    sys.exit(main())
