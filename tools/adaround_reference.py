"""AdaroundFakeQuantizer's reference, from the seed's formulas (torch/ao/quantization/experimental/
adaround_fake_quantize.py) in PyTorch tensor ops: PyTorch 1.13 does not ship the class.

One deliberate difference from the seed: the seed re-unsqueezes an already broadcast zero point
on every observed pass after the first (its shape grows); here the zero point simply takes the
scale's broadcast shape, as the seed's first pass does."""
import torch
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

ZETA = torch.tensor(1.1)
GAMMA = torch.tensor(-0.1)


def adaround_reference(w, dy, per_channel, ch_axis=0, quant_min=-128, quant_max=127):
    if per_channel:
        obs = PerChannelMinMaxObserver(ch_axis=ch_axis, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                       quant_min=quant_min, quant_max=quant_max)
    else:
        obs = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=quant_min,
                             quant_max=quant_max)
    obs(w)
    scale, zero_point = obs.calculate_qparams()
    if per_channel:
        shape = [1] * w.dim()
        shape[ch_axis] = scale.numel()
        scale = scale.reshape(shape)
    zero_point = torch.zeros_like(scale)  # symmetric
    # V from the rounding residual: h(V) reproduces it.
    xq = w / scale
    residual = xq - torch.floor(xq)
    v = (-torch.log((ZETA - GAMMA) / (residual - GAMMA) - 1)).requires_grad_(True)
    h = torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, min=0, max=1)
    x = w.clone().requires_grad_(True)
    x_floor = torch.floor(x / scale) + zero_point
    out = (torch.clamp(x_floor + h, min=quant_min, max=quant_max) - zero_point) * scale
    (out * dy).sum().backward()
    hard = (v.detach() >= 0).float()
    out_hard = (torch.clamp(torch.floor(w / scale) + zero_point + hard, min=quant_min, max=quant_max)
                - zero_point) * scale
    return {"scale": scale.flatten(), "v": v.detach(), "h": h.detach(), "residual": residual, "y": out.detach(),
            "dv": v.grad, "dx": x.grad, "y_hard": out_hard}
