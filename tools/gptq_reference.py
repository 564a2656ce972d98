"""GPTQ (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers"), written from the paper as tq's reference for one Linear layer.

Algorithm 1 of the paper: the weight's columns are quantized one at a time; each column's rounding
error, scaled by the inverse Hessian's diagonal, is spread over the columns not yet quantized
(the optimal-brain-surgeon update), using the upper Cholesky factor of H^-1; the updates to later
blocks of columns are applied once per block ("lazy batch updates"). H = 2/n * sum x x^T over the
layer's n calibration inputs, damped by 1% of its mean diagonal.

Group-wise qparams (as GPTQ's own quantizer: asymmetric, the range widened to hold 0, one scale and
integer zero point per output channel and group) are chosen when quantization reaches a group's
first column, from that group's weights as updated so far. Blocks are 128 columns when 128 and the
group size divide one another, else one group; a group larger than a block starts at a block's
start. (The authors' code takes a group's qparams from the weights at the start of its block: the
same for groups of 128 or more.)

  from gptq_reference import hessian_reference, gptq_reference
"""
import torch


def hessian_reference(batches):
    """2/n * sum x x^T, accumulated batch by batch in float32 as GPTQ does."""
    h, n = None, 0
    for x in batches:
        x = x.reshape(-1, x.shape[-1]).float()
        if h is None:
            h = torch.zeros(x.shape[1], x.shape[1])
        m = x.shape[0]
        h *= n / (n + m)
        n += m
        x = (2.0 / n) ** 0.5 * x
        h += x.t().matmul(x)
    return h, n


def group_qparams(w, maxq, mse=False):
    """Per output channel: scale and integer zero point of w's columns (float32).

    mse: the range shrunk by the factor (1, 0.99, ..., 0.21) whose rounding error |q(w) - w|^2.4
    is least, per channel (the authors' quantizer's mse option; not tq's)."""
    lo = torch.clamp(w.min(1).values, max=0)
    hi = torch.clamp(w.max(1).values, min=0)
    empty = (lo == 0) & (hi == 0)
    lo[empty] = -1
    hi[empty] = 1
    scale = torch.clamp((hi - lo) / maxq, min=torch.finfo(torch.float32).tiny)  # as tq: never 0
    zero = torch.round(-lo / scale)
    if not mse:
        return scale, zero
    best = torch.full([w.shape[0]], float("inf"))
    for i in range(80):
        p = 1 - i / 100
        s = torch.clamp(p * (hi - lo) / maxq, min=torch.finfo(torch.float32).tiny)
        z = torch.round(-p * lo / s)
        q = torch.clamp(torch.round(w / s.unsqueeze(1)) + z.unsqueeze(1), 0, maxq)
        err = ((s.unsqueeze(1) * (q - z.unsqueeze(1)) - w).abs() ** 2.4).sum(1)
        better = err < best
        best[better], scale[better], zero[better] = err[better], s[better], z[better]
    return scale, zero


def block_size_for(group_size, columns):
    if group_size >= columns:
        return 128
    return 128 if 128 % group_size == 0 or group_size % 128 == 0 else group_size


def gptq_reference(weight, hessian, bits=4, group_size=128, damp=0.01, act_order=False, static_groups=True,
                   mse=False, dequantized=None):
    """Returns (q, scales, zero_points): integers [out, in] and per-group qparams [out, in / group_size].

    act_order: columns in decreasing order of H's diagonal (the authors' --act-order), with static
    groups (each group's qparams from the weights before any update, AutoGPTQ's static_groups).
    Experiments beyond tq's algorithm (tools/minilm_gptq_variants.py): static_groups=False with
    act_order forms groups of consecutive columns in act order (AutoGPTQ's desc_act alone: the
    returned scales are then per group of that order, not of the weight's columns); mse chooses
    each group's range as group_qparams does with mse; `dequantized`, a list, receives the
    dequantized weight [out, in]."""
    w = weight.clone().float()
    rows, columns = w.shape
    maxq = 2 ** bits - 1
    h = hessian.clone().float()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(columns)
    q = torch.zeros(rows, columns, dtype=torch.long)
    groups = columns // group_size
    scales = torch.zeros(rows, groups)
    zeros = torch.zeros(rows, groups)
    perm = None
    deq = torch.zeros(rows, columns)
    fixed_groups = act_order and static_groups  # qparams chosen up front, groups of the weight's columns
    if act_order:
        for g in range(groups if fixed_groups else 0):
            scales[:, g], zeros[:, g] = group_qparams(w[:, g * group_size:(g + 1) * group_size], maxq, mse)
        perm = torch.sort(torch.diag(h), descending=True, stable=True).indices
        w = w[:, perm]
        h = h[perm][:, perm]
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    block = 128 if act_order else block_size_for(group_size, columns)
    for i1 in range(0, columns, block):
        i2 = min(i1 + block, columns)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if not fixed_groups and col % group_size == 0:
                g = col // group_size
                # The group's weights as updated so far: inside this block, or this block and later ones.
                if col + group_size <= i2:
                    scale, zero = group_qparams(w1[:, i:i + group_size], maxq, mse)
                else:
                    scale, zero = group_qparams(torch.cat([w1[:, i:], w[:, i2:col + group_size]], 1), maxq, mse)
                scales[:, g], zeros[:, g] = scale, zero
            g = (int(perm[col]) if fixed_groups else col) // group_size
            qc = torch.clamp(torch.round(w1[:, i] / scales[:, g]) + zeros[:, g], 0, maxq)
            q[:, col] = qc.long()
            dq = scales[:, g] * (qc - zeros[:, g])
            deq[:, col] = dq
            err = (w1[:, i] - dq) / hinv1[i, i]
            w1[:, i:] -= err.unsqueeze(1).matmul(hinv1[i, i:].unsqueeze(0))
            err1[:, i] = err
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    if act_order:
        q = q[:, torch.argsort(perm)]
        deq = deq[:, torch.argsort(perm)]
    if dequantized is not None:
        dequantized.append(deq)
    return q, scales, zeros
