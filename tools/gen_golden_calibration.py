#!/usr/bin/env python3
"""Writes tq's golden file for the calibration observers (Debian's python3-torch 1.13: /usr/bin/python3).

  /usr/bin/python3 tools/gen_golden_calibration.py --out tests/golden

calibration.json   EntropyObserver, PercentileObserver, MSEObserver (sharing one calibration
                   histogram) and PerChannelMSEObserver: arguments, calibration batches, and after
                   the last batch min_val, max_val, the threshold T, the histogram's counts, the
                   final range and PyTorch's scale / zero_point for it. Computed by
                   tools/calibration_reference.py.

Each case: {"name", "observer": "entropy" | "percentile" | "mse" | "per_channel_mse",
"args": {"dtype", "qscheme", "quant_min", "quant_max", and "bins" (histogram observers),
"percentile" (percentile), "ch_axis" and "candidates" (per_channel_mse)}, "batches",
"min_val", "max_val", "scale", "zero_point" (lists for per_channel_mse), and for the histogram
observers "threshold", "histogram" (the B counts) and "range" ([lo, hi], float32).

Besides writing the file, this checks that the histogram's pair merging is exact (it equals one
torch.histc of all the data over the final range, up to values on a bin edge) and that no case's
answer hangs on a near-tie that a different summation order could flip.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import tensor_json, write_json  # noqa: E402
import calibration_reference as R  # noqa: E402

torch.manual_seed(20261123)

N = 1000  # elements per batch: ~45 histogram cases must stay ~1.5 MB in all
NEAR_TIE = 1e-9  # relative gap below which an argmin could depend on summation order


def name(v):
    return str(v).replace("torch.", "")


def heavy(n):
    x = torch.randn(n)
    k = 4
    x[torch.randperm(n)[:k]] = 20.0 * torch.sign(torch.randn(k)) * (1 + 0.2 * torch.rand(k))
    return x


def laplace(n):
    return torch.distributions.Laplace(0.0, 1.0).sample((n,))


QUINT8 = dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=0, quant_max=255)
QINT8_SYM = dict(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=-128, quant_max=127)


def histogram_configs():
    """(name, batches, quantization arguments, bins); each set of batches is shared by all observers."""
    return [
        ("normal", [torch.randn(N)], QUINT8, 2048),
        ("relu", [torch.relu(torch.randn(N))], QUINT8, 2048),
        ("heavy_tails", [heavy(N)], QUINT8, 2048),
        ("growing", [torch.randn(N // 2) * 0.5, torch.randn(N // 2) * 2.0, torch.randn(N // 2) * 8.0], QUINT8, 2048),
        ("zeros_first", [torch.zeros(N // 2), torch.randn(N)], QUINT8, 2048),
        ("symmetric_qint8", [laplace(N)], QINT8_SYM, 2048),
        ("a6", [laplace(N)], dict(QUINT8, quant_max=63), 2048),
        ("a4_relu", [torch.relu(torch.randn(N))], dict(QUINT8, quant_max=15), 2048),
        ("bins512", [torch.randn(N)], QUINT8, 512),
        ("all_zeros", [torch.zeros(64)], QUINT8, 2048),
        ("relu_bins256", [torch.relu(torch.randn(N))], QUINT8, 256),  # entropy: nq = 256 > M = 128
    ]


def check_merge(h, batches):
    """The merged histogram equals one histc of all the data over the final range [-T, T]: merging
    pairs is exact. A value on (or within float32 rounding of) a final bin edge may land on either
    side: histc rounds (x + T) in float32 at each T, and a batch's largest |x| sits exactly on its
    T's top edge, which after doubling is an inner edge. Those are taken out and must account for
    the whole difference, one count each, in a bin next to their edge."""
    x = torch.cat([b.flatten() for b in batches]).float()
    assert h.hist.sum() == x.numel(), "merging lost or invented counts"
    if h.T == 0:
        return 0
    B, T = h.B, float(h.T)
    pos = (x.double() + T) / h.w
    near = ((pos - pos.round()).abs() < 1e-3) & (x != 0)  # 0 is exact: bin B/2 at every T
    fresh = torch.histc(x[~near], bins=B, min=-T, max=T).double().numpy()
    diff = h.hist - fresh
    assert (diff >= 0).all() and diff.sum() == int(near.sum()), "merged histogram differs from histc"
    allowed = np.zeros(B, dtype=bool)
    for e in pos[near].round().long().tolist():
        allowed[max(e - 1, 0):min(e + 1, B)] = True
    assert not (diff[~allowed] != 0).any(), "merged histogram differs from histc away from bin edges"
    return int(near.sum())


def rel_gap(best, other):
    return (other - best) / max(abs(best), 1e-300)


def histogram_cases(margins):
    cases = []
    for cname, batches, q, bins in histogram_configs():
        h = R.CalibrationHistogram(bins)
        for b in batches:
            h.observe(b)
        near = check_merge(h, batches)
        if len(batches) > 1:
            print(f"{cname}: merged histogram == histc of all data over [-T, T] ({near} values on a bin edge)")
        qmin, qmax = q["quant_min"], q["quant_max"]
        fn = R.make_qparams_fn(q["dtype"], q["qscheme"], qmin, qmax)
        symmetric = q["qscheme"] == torch.per_tensor_symmetric
        runs = [("entropy", {}, lambda: R.entropy_range(h, qmin, qmax))]
        pcts = [99.99, 99.999, 100.0] + ([99.25] if cname in ("heavy_tails", "symmetric_qint8") else [])
        if cname == "all_zeros":
            pcts = [99.999]
        if cname == "relu_bins256":
            pcts = []
        for p in pcts:
            runs.append(("percentile", {"percentile": p}, lambda p=p: R.percentile_range(h, p, symmetric)))
        if cname != "relu_bins256":
            runs.append(("mse", {}, lambda: R.mse_range(h, qmin, qmax, fn)))
        for obs, extra, run in runs:
            lo, hi = run()
            scale, zp = fn(lo, hi)
            suffix = f"_{extra['percentile']:g}" if extra else ""
            case_name = f"{obs}{suffix}_{cname}"
            if h.T != 0:
                margins.append((case_name, near_tie_margin(h, obs, extra, qmin, qmax, fn, symmetric, (lo, hi))))
            cases.append({
                "name": case_name, "observer": obs,
                "args": {"dtype": name(q["dtype"]), "qscheme": name(q["qscheme"]), "quant_min": qmin,
                         "quant_max": qmax, "bins": bins, **extra},
                "batches": [tensor_json(b) for b in batches],
                "min_val": float(h.min_val), "max_val": float(h.max_val), "threshold": float(h.T),
                "histogram": [int(v) for v in h.hist], "range": [float(lo), float(hi)],
                "scale": float(scale), "zero_point": int(zp)})
    return cases


def near_tie_margin(h, obs, extra, qmin, qmax, fn, symmetric, chosen):
    """How far the answer is from flipping: the relative gap between the winning objective and the
    best one giving a different answer (entropy, mse), or the cdf's distance from the percentile."""
    if obs == "entropy":
        cands, kl = R.entropy_kl(h, qmin, qmax)
        if not cands.size:
            return np.inf  # no candidate threshold: the full range, nothing to tie with
        best = float(kl.min())
        ranges = [R.clamp_range(h, 0.0 if h.one_sided() else -np.float32(i * h.w), np.float32(i * h.w))
                  for i in cands]
        others = [k for k, r in zip(kl, ranges) if r != chosen]
        return rel_gap(best, min(others)) if others and np.isfinite(best) else np.inf
    if obs == "mse":
        errs = R.mse_errors(h, qmin, qmax, fn)
        best = min(e[3] for e in errs)
        qp = [e[2] for e in errs if e[3] == best][0]
        others = [e[3] for e in errs if e[2] != qp]
        return rel_gap(best, min(others)) if others else np.inf
    p = extra["percentile"]
    if symmetric:
        m = h.magnitude()
        cdfs, targets = [np.cumsum(m / m.sum())], [p / 100.0]
    else:
        c = (100.0 - p) / 200.0
        cdf = np.cumsum(h.hist / h.hist.sum())
        cdfs, targets = [cdf, cdf], [c, 1.0 - c]
    gap = np.inf
    for cdf, t in zip(cdfs, targets):
        d = np.abs(cdf - t)
        d = d[d != 0]  # an exact hit is not a near-tie: same sequential cumsum, same bits
        if d.size:
            gap = min(gap, float(d.min()))
    return gap


def per_channel_cases(margins):
    def conv_weight():
        w = torch.randn(8, 3, 3, 3) * torch.logspace(-1.5, 0.5, 8).reshape(8, 1, 1, 1)
        w[2, 1, 0, 2] = 6.0 * float(w[2].abs().max())
        w[5, 0, 2, 1] = -5.0 * float(w[5].abs().max())
        return w

    def linear_weight():
        spread, shift = torch.logspace(-1, 0.3, 16).reshape(16, 1), torch.linspace(-0.5, 0.5, 16).reshape(16, 1)
        w = torch.randn(16, 32) * spread + shift
        w[3] = 0.0  # an all-zero channel: range (0, 0)
        w[7, 4] = 8.0
        return w

    qint8_sym = dict(dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-128, quant_max=127)
    qint8_aff = dict(dtype=torch.qint8, qscheme=torch.per_channel_affine, quant_min=-128, quant_max=127)
    configs = [
        ("conv_symmetric", [conv_weight()], qint8_sym, 0, 100),
        ("linear_affine", [linear_weight()], qint8_aff, 0, 100),
        ("conv_4bit", [conv_weight()], dict(qint8_sym, quant_min=-8, quant_max=7), 0, 20),
        ("ch_axis1", [torch.randn(3, 8, 3, 3) * torch.logspace(-1, 0.5, 8).reshape(1, 8, 1, 1)], qint8_sym, 1, 100),
        ("two_forwards", [linear_weight(), linear_weight() * 1.5], qint8_aff, 0, 100),
    ]
    cases = []
    for cname, batches, q, ch_axis, n in configs:
        args = (q["dtype"], q["qscheme"], q["quant_min"], q["quant_max"])
        lo = hi = None
        for b in batches:
            l, h = R.per_channel_mse(b, ch_axis, n, *args)
            lo = l if lo is None else torch.minimum(lo, l)
            hi = h if hi is None else torch.maximum(hi, h)
            margins.append((f"per_channel_mse_{cname}", per_channel_margin(b, ch_axis, n, args)))
        scale, zp = R.per_channel_qparams(lo, hi, *args)
        cases.append({
            "name": f"per_channel_mse_{cname}", "observer": "per_channel_mse",
            "args": {"dtype": name(q["dtype"]), "qscheme": name(q["qscheme"]), "quant_min": q["quant_min"],
                     "quant_max": q["quant_max"], "ch_axis": ch_axis, "candidates": n},
            "batches": [tensor_json(b) for b in batches],
            "min_val": lo.tolist(), "max_val": hi.tolist(), "scale": scale.tolist(),
            "zero_point": [int(z) for z in zp.tolist()]})
    return cases


def per_channel_margin(x, ch_axis, n, args):
    lo, hi, err = R.per_channel_mse_errors(x, ch_axis, n, *args)
    gap = np.inf
    for c in range(err.shape[1]):
        e = err[:, c].numpy()
        scales, zps = zip(*[R.per_channel_qparams(lo[k], hi[k], *args) for k in range(n)])
        best = int(np.argmin(e))
        # candidates with the same qparams as the winner give the same error bit for bit
        same = [bool(torch.equal(scales[k][c], scales[best][c]) and torch.equal(zps[k][c], zps[best][c]))
                for k in range(n)]
        others = [e[k] for k in range(n) if not same[k]]
        if others and e[best] > 0:
            gap = min(gap, rel_gap(e[best], min(others)))
    return gap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    margins = []
    cases = histogram_cases(margins) + per_channel_cases(margins)
    # Percentile answers are cdf comparisons; the cdf is one sequential cumsum of hist / total, which
    # any implementation doing the same float64 operations reproduces bit for bit.
    pct = [m for m in margins if m[0].startswith("percentile")]
    rest = [m for m in margins if not m[0].startswith("percentile")]
    worst = min(rest, key=lambda m: m[1])
    print(f"{len(cases)} cases; smallest relative margin from a tie (entropy, mse): {worst[1]:.3g} ({worst[0]})")
    close = [m for m in pct if m[1] < 1e-12]
    print(f"percentile: {len(close)} of {len(pct)} cases have a cdf value within 1e-12 of its target "
          f"(same-order cumsum required): {[m[0] for m in close]}")
    ties = [m for m in rest if m[1] < NEAR_TIE]
    assert not ties, f"answers that a different summation order could flip: {ties}"
    path = os.path.join(args.out, "calibration.json")
    write_json(path, {"cases": cases})
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
