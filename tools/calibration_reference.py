"""Reference implementations of tq's calibration observers, in numpy and PyTorch ops.

tq's tests compare its C++ observers against golden data computed here (tests/golden/calibration.json,
written by tools/gen_golden_calibration.py). Both sides follow one written contract, the exact
algorithm spelled out step by step (bin layout, float32 / float64 at each step, tie-breaking), so
that the C++ results can be compared value for value. The algorithms come from:

CalibrationHistogram   the histogram all three histogram observers share: B signed bins over a range
                       [-T, T] symmetric about zero that doubles (merging pairs of bins, exactly) when
                       data outgrows it, binned with torch.histc.
entropy_range          TensorRT's entropy (KL-divergence) calibration, as MXNet formulates it
                       (mxnet/contrib/quantization.py: _get_optimal_threshold, _smooth_distribution):
                       the magnitude threshold whose quantized distribution is closest to the data's.
percentile_range       ONNX Runtime's percentile calibration (onnxruntime/quantization/calibrate.py,
                       HistogramCollector.compute_percentile): the range holding `percentile` percent
                       of the data.
mse_range              pytorch-quantization's "mse" calibrator (pytorch_quantization/calib/
                       histogram.py: _compute_amax_mse): the amax minimising the histogram-weighted
                       squared fake-quantization error.
per_channel_mse        per-channel weight range search: for each channel, the fraction k / N of its
                       min/max range minimising the channel's squared fake-quantization error.

Every final range becomes qparams through PyTorch's own _calculate_qparams (via a MinMaxObserver or
PerChannelMinMaxObserver built with the same dtype, qscheme and quant range), so the reference and
tq share the last step with the observers tq already matches.

Run directly (/usr/bin/python3 tools/calibration_reference.py) it prints a sanity table: the range
each method picks on normal and heavy-tailed data, next to plain min/max.
"""
import numpy as np
import torch
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

F32 = np.float32


class CalibrationHistogram:
    """B signed bins over [-T, T]; bin b covers [-T + b*w, -T + (b+1)*w), w = 2T/B.

    hist: float64 counts; T, min_val, max_val: numpy float32."""

    def __init__(self, bins=2048):
        if bins % 4 != 0 or bins < 8:
            raise ValueError("bins must be a multiple of 4 and >= 8")
        self.B = bins
        self.hist = np.zeros(bins, dtype=np.float64)
        self.T = F32(0)
        self.min_val = F32(np.inf)
        self.max_val = F32(-np.inf)

    def observe(self, x):
        x = x.detach().float().flatten()
        if x.numel() == 0 or torch.isnan(x).any():
            raise ValueError("observe needs a non-empty tensor without NaN")
        lo, hi = F32(x.min().item()), F32(x.max().item())
        self.min_val = min(self.min_val, lo)
        self.max_val = max(self.max_val, hi)
        t = max(-lo, hi)
        B = self.B
        if self.T == 0 and t > 0:
            self.T = t  # zeros counted so far sit in bin B/2, whose lower edge is 0 at any T
        while t > self.T:
            # Doubling T maps old bins 2j - B/2 and 2j + 1 - B/2 exactly onto new bin j: no
            # re-binning error, and the middle half of the new bins holds all the old ones.
            new = np.zeros(B, dtype=np.float64)
            j = np.arange(B // 4, 3 * B // 4)
            new[j] = self.hist[2 * j - B // 2] + self.hist[2 * j + 1 - B // 2]
            self.hist = new
            self.T = F32(self.T * F32(2))
        if self.T == 0:
            self.hist[B // 2] += x.numel()  # all data zero so far: no range to bin over yet
        else:
            T = float(self.T)
            self.hist += torch.histc(x, bins=B, min=-T, max=T).double().numpy()

    # Derived quantities, all float64.
    @property
    def w(self):
        return 2.0 * float(self.T) / self.B

    def edge(self, b):
        return -float(self.T) + b * self.w

    def magnitude(self):
        """m[k] = hist[B/2 + k] + hist[B/2 - 1 - k]: counts by |x|, bin k covering [k*w, (k+1)*w)."""
        M = self.B // 2
        return self.hist[M:] + self.hist[M - 1::-1]

    def one_sided(self):
        return bool(self.min_val >= 0)


def clamp_range(h, lo, hi):
    """The final range never reaches past the observed data: float32 max(lo, min_val), min(hi, max_val)."""
    return max(F32(lo), h.min_val), min(F32(hi), h.max_val)


def _smooth(v, eps=1e-4):
    """MXNet's _smooth_distribution: moves eps of mass onto empty bins so the KL stays finite.
    None when invalid (all zero, or a bin driven to <= 0)."""
    zeros = v == 0
    nzeros = int(zeros.sum())
    nnon = v.size - nzeros
    if nnon == 0:
        return None
    eps1 = eps * nzeros / nnon
    v = v + eps * zeros - eps1 * (~zeros)
    if (v <= 0).any():
        return None
    return v


def entropy_kl(h, quant_min, quant_max):
    """(candidates i, KL[i]) of the entropy search: threshold i*w, i in [nq, M]."""
    m = h.magnitude()
    M = m.size
    L = quant_max - quant_min + 1
    nq = L if h.one_sided() else L // 2
    cands = np.arange(nq, M + 1)
    kl = np.full(cands.size, np.inf)
    for n, i in enumerate(cands):
        P = m[:i].copy()
        P[i - 1] += m[i:].sum()  # outliers beyond the threshold count in the last bin
        nz = P != 0
        g = i // nq
        # Quantize m[:i] (without the outliers, as MXNet does) into nq bins of g, the last taking the rest.
        Qm = m[:nq * g].reshape(nq, g).sum(axis=1)
        Qm[nq - 1] += m[nq * g:i].sum()
        norm = nz[:nq * g].reshape(nq, g).sum(axis=1)
        norm[nq - 1] += nz[nq * g:i].sum()
        # Expand back over i bins: each quantized bin spread evenly over its nonzero source bins.
        per = np.where(norm != 0, Qm / np.maximum(norm, 1), 0.0)
        Q = np.repeat(per, g)
        Q = np.concatenate([Q, np.full(i - nq * g, per[nq - 1])])
        Q[~nz] = 0
        Ps, Qs = _smooth(P), _smooth(Q)
        if Ps is None or Qs is None:
            continue
        p, q = Ps / Ps.sum(), Qs / Qs.sum()
        kl[n] = np.sum(p * np.log(p / q))
    return cands, kl


def entropy_range(h, quant_min, quant_max):
    """TensorRT / MXNet entropy calibration: the threshold i*w with the smallest KL (first on ties)."""
    if h.T == 0:
        return clamp_range(h, 0.0, 0.0)  # only zeros (or nothing) observed
    cands, kl = entropy_kl(h, quant_min, quant_max)
    # nq > M (more levels than magnitude bins): no candidate; keep the full range.
    i = int(cands[np.argmin(kl)]) if cands.size else h.B // 2
    thr = F32(i * h.w)
    return clamp_range(h, 0.0 if h.one_sided() else -thr, thr)


def percentile_range(h, percentile, symmetric):
    """ONNX Runtime percentile calibration: lower bin edges where the cdf first reaches the percentile."""
    if not 0 < percentile <= 100:
        raise ValueError("percentile must be in (0, 100]")
    if h.T == 0:
        return clamp_range(h, 0.0, 0.0)
    if symmetric:
        m = h.magnitude()
        cdf = np.cumsum(m / m.sum())  # sequential sums, float64
        idx = min(int(np.searchsorted(cdf, percentile / 100.0, side="left")), cdf.size - 1)
        thr = F32(idx * h.w)
        return clamp_range(h, -thr, thr)
    c = (100.0 - percentile) / 200.0  # cut from each side
    cdf = np.cumsum(h.hist / h.hist.sum())
    il = min(int(np.searchsorted(cdf, c, side="left")), cdf.size - 1)
    ir = min(int(np.searchsorted(cdf, 1.0 - c, side="left")), cdf.size - 1)
    return clamp_range(h, F32(h.edge(il)), F32(h.edge(ir)))


def mse_errors(h, quant_min, quant_max, qparams_fn):
    """(k, (lo, hi), (scale, zp), err[k]) for amax = (k + 0.5) * w, k in [M/8, M)."""
    B, M, w, T = h.B, h.B // 2, h.w, float(h.T)
    c = -T + (np.arange(B) + 0.5) * w  # bin centres stand for the data in each bin
    out = []
    for k in range(M // 8, M):
        amax = (k + 0.5) * w
        lo, hi = clamp_range(h, 0.0 if h.one_sided() else -F32(amax), F32(amax))
        scale, zp = qparams_fn(lo, hi)
        s = float(scale)
        q = np.clip(np.rint(c / s) + zp, quant_min, quant_max)  # rint: round half to even
        fq = (q - zp) * s
        out.append((k, (lo, hi), (scale, zp), float(np.sum(h.hist * (fq - c) ** 2))))
    return out


def mse_range(h, quant_min, quant_max, qparams_fn):
    """pytorch-quantization's mse calibrator: the candidate amax with the least error (first on ties)."""
    if h.T == 0:
        return clamp_range(h, 0.0, 0.0)
    errs = mse_errors(h, quant_min, quant_max, qparams_fn)
    best = int(np.argmin([e[3] for e in errs]))
    return errs[best][1]


def make_qparams_fn(dtype, qscheme, quant_min, quant_max):
    """(lo, hi) -> (float32 scale, int zero_point), computed by PyTorch's MinMaxObserver."""
    ob = MinMaxObserver(dtype=dtype, qscheme=qscheme, quant_min=quant_min, quant_max=quant_max)

    def fn(lo, hi):
        ob.min_val = torch.tensor(float(lo), dtype=torch.float32)
        ob.max_val = torch.tensor(float(hi), dtype=torch.float32)
        s, z = ob.calculate_qparams()
        return F32(s.item()), int(z.item())
    return fn


def per_channel_qparams(lo, hi, dtype, qscheme, quant_min, quant_max):
    """Per-channel (scale float32, zero_point int64) tensors from PyTorch's PerChannelMinMaxObserver."""
    ob = PerChannelMinMaxObserver(dtype=dtype, qscheme=qscheme, quant_min=quant_min, quant_max=quant_max)
    ob.min_val = lo.float().clone()
    ob.max_val = hi.float().clone()
    return ob.calculate_qparams()


def _channels(x, ch_axis):
    """x as [channels, everything else]."""
    return x.transpose(0, ch_axis).reshape(x.shape[ch_axis], -1)


def per_channel_mse_errors(x, ch_axis, candidates, dtype, qscheme, quant_min, quant_max):
    """lo, hi: [N, C] float32 candidate ranges; err: [N, C] float64 squared errors."""
    x = x.detach().float()
    xc = _channels(x, ch_axis)
    mn = torch.clamp(xc.min(dim=1).values, max=0)
    mx = torch.clamp(xc.max(dim=1).values, min=0)
    los, his, errs = [], [], []
    for k in range(1, candidates + 1):
        alpha = k / candidates  # float64; the product is rounded to float32 once
        lo = (mn.double() * alpha).float()
        hi = (mx.double() * alpha).float()
        scale, zp = per_channel_qparams(lo, hi, dtype, qscheme, quant_min, quant_max)
        fq = torch.fake_quantize_per_channel_affine(x, scale, zp.int(), ch_axis, quant_min, quant_max)
        errs.append(((_channels(fq, ch_axis).double() - xc.double()) ** 2).sum(dim=1))
        los.append(lo)
        his.append(hi)
    return torch.stack(los), torch.stack(his), torch.stack(errs)


def per_channel_mse(x, ch_axis, candidates, dtype, qscheme, quant_min, quant_max):
    """Per channel, the candidate range alpha * [min, max] (alpha = k / N) with the least error.
    Returns (lo, hi) float32 [C]; several forward calls combine as elementwise min(lo), max(hi)."""
    lo, hi, err = per_channel_mse_errors(x, ch_axis, candidates, dtype, qscheme, quant_min, quant_max)
    best = first_argmin(err.numpy(), axis=0)
    c = torch.arange(lo.shape[1])
    return lo[best, c], hi[best, c]


def first_argmin(a, axis=0):
    """numpy's argmin already returns the first index on ties; named so the tie rule is visible."""
    return torch.from_numpy(np.argmin(a, axis=axis))


def _sanity():
    torch.manual_seed(0)
    n = 200000
    data = {
        "normal": torch.randn(n),
        "laplace": torch.distributions.Laplace(0.0, 1.0).sample((n,)),
        "normal+10 20-sigma": torch.randn(n),
    }
    out = data["normal+10 20-sigma"]
    out[torch.randperm(n)[:10]] = 20.0 * torch.sign(torch.randn(10)) * (1 + 0.2 * torch.rand(10))
    qmin, qmax = 0, 255
    fn = make_qparams_fn(torch.quint8, torch.per_tensor_affine, qmin, qmax)
    print(f"{'data':24s} {'min/max':>18s} {'entropy':>18s} {'pct 99.99':>18s} {'pct 99.999':>18s} {'mse':>18s}")
    for name, x in data.items():
        h = CalibrationHistogram(2048)
        h.observe(x)
        rows = [(h.min_val, h.max_val), entropy_range(h, qmin, qmax), percentile_range(h, 99.99, False),
                percentile_range(h, 99.999, False), mse_range(h, qmin, qmax, fn)]
        print(f"{name:24s} " + " ".join(f"[{float(a):7.3f},{float(b):7.3f}]" for a, b in rows))


if __name__ == "__main__":
    _sanity()
