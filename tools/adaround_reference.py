"""AdaRound's references: the AdaroundFakeQuantizer (adaround_reference) and the layer-wise
algorithm that uses it (adaround_layer_reference).

The quantizer: from the seed's formulas (torch/ao/quantization/experimental/
adaround_fake_quantize.py) in PyTorch tensor ops: PyTorch 1.13 does not ship the class.

One deliberate difference from the seed: the seed re-unsqueezes an already broadcast zero point
on every observed pass after the first (its shape grows); here the zero point simply takes the
scale's broadcast shape, as the seed's first pass does.

The algorithm, from the paper (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training
Quantization", eq. 21-25) with AIMET's schedule: minimise ||f(W~ x) - y||^2 (squared error summed
over channels, mean over samples and positions) + lambda * sum(1 - |2 h(V) - 1|^beta), no
regularisation during the warm start, beta falling from beta_start to beta_end on a cosine, Adam on
V, batches drawn by torch.randperm from a seeded generator; hard rounding (V >= 0) at the end."""
import math

import torch
import torch.nn.functional as F
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


def _soft_quantize(w, scale, zero_point, v, quant_min, quant_max):
    h = torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, min=0, max=1)
    x_floor = torch.floor(w / scale) + zero_point
    return (torch.clamp(x_floor + h, min=quant_min, max=quant_max) - zero_point) * scale


def _hard_quantize(w, scale, zero_point, v, quant_min, quant_max):
    hard = (v >= 0).float()
    return (torch.clamp(torch.floor(w / scale) + zero_point + hard, min=quant_min, max=quant_max)
            - zero_point) * scale


def layer_forward(layer, x, w):
    """y = relu?(linear or conv(x, w, bias)); layer: {"kind", "bias", "stride", "padding", "dilation", "groups",
    "relu"}."""
    if layer["kind"] == "linear":
        y = F.linear(x, w, layer["bias"])
    else:
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[w.dim()]
        y = conv(x, w, layer["bias"], layer["stride"], layer["padding"], layer["dilation"], layer["groups"])
    return F.relu(y) if layer["relu"] else y


def reconstruction_loss(out, target):
    return (out - target).pow(2).sum(1).mean()


def beta_at(it, iterations, warm_start, beta_start, beta_end):
    warm_end = warm_start * iterations
    rel = (it - warm_end) / (iterations - warm_end)
    return beta_end + 0.5 * (beta_start - beta_end) * (1 + math.cos(rel * math.pi))


def adaround_layer_reference(layer, w, inputs, targets, per_channel, quant_min=-128, quant_max=127, iterations=10000,
                             reg_lambda=0.01, beta_start=20.0, beta_end=2.0, warm_start=0.2, batch_size=32, lr=1e-3,
                             seed=0):
    """Returns the hard-rounded weight, nearest rounding, the final V and the reconstruction losses."""
    if per_channel:
        obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                       quant_min=quant_min, quant_max=quant_max)
    else:
        obs = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=quant_min,
                             quant_max=quant_max)
    obs(w)
    scale, _ = obs.calculate_qparams()
    if per_channel:
        scale = scale.reshape([-1] + [1] * (w.dim() - 1))
    zero_point = torch.zeros_like(scale)
    xq = w / scale
    residual = xq - torch.floor(xq)
    v = (-torch.log((ZETA - GAMMA) / (residual - GAMMA) - 1)).contiguous().requires_grad_(True)
    nearest = _hard_quantize(w, scale, zero_point, v.detach(), quant_min, quant_max)
    adam = torch.optim.Adam([v], lr=lr)
    g = torch.Generator().manual_seed(seed)
    n = inputs.shape[0]
    b = min(batch_size, n)
    warm_end = warm_start * iterations
    for it in range(iterations):
        idx = torch.randperm(n, generator=g)[:b]
        x, y = inputs.index_select(0, idx), targets.index_select(0, idx)
        wq = _soft_quantize(w, scale, zero_point, v, quant_min, quant_max)
        loss = reconstruction_loss(layer_forward(layer, x, wq), y)
        if it >= warm_end:
            beta = beta_at(it, iterations, warm_start, beta_start, beta_end)
            h = torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, min=0, max=1)
            loss = loss + (1 - (2 * h - 1).abs().pow(beta)).sum() * reg_lambda
        adam.zero_grad()
        loss.backward()
        adam.step()
    with torch.no_grad():
        rounded = _hard_quantize(w, scale, zero_point, v.detach(), quant_min, quant_max)
        return {"scale": scale.flatten(), "nearest": nearest, "rounded": rounded, "v": v.detach().clone(),
                "loss_nearest": reconstruction_loss(layer_forward(layer, inputs, nearest), targets).item(),
                "loss_adaround": reconstruction_loss(layer_forward(layer, inputs, rounded), targets).item()}
