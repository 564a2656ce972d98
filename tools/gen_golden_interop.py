#!/usr/bin/env python3
"""Files every PyTorch user has, written by PyTorch (Debian's 1.13), for tq's interop tests:

  /usr/bin/python3 tools/gen_golden_interop.py --out tests/golden/interop

float_state.pt      torch.save(net.state_dict()) of tools/interop_net.py's Net (an OrderedDict with
                    _metadata), batch-norm statistics from a few training steps
converted_state.pt  torch.save(int8_net.state_dict()): fused, per-channel weights, qnnpack
                    (Linear's packed parameters, quantized Conv weights, the stubs' qparams)
histogram_observer.pt, per_channel_fake_quant.pt   observer / fake-quantizer states after data
legacy_format.pt    the same float state in torch.save's pre-1.6 format
pickled_module.pt   torch.save(net): the pickled Python object, not a state_dict
expected.pt         a plain dict: input x, float and int8 outputs, the observer's qparams"""
import argparse
import os
import sys

import torch
import torch.ao.quantization as Q
from torch.ao.quantization.fake_quantize import default_per_channel_weight_fake_quant
from torch.ao.quantization.observer import HistogramObserver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_net import Net, quantized  # noqa: E402


def save(obj, path, **kwargs):
    torch.save(obj, path + ".tmp", **kwargs)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(20261124)
    net = Net()
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 1, 8, 8) * 2 + 0.5)
    net.eval()
    save(net.state_dict(), f"{args.out}/float_state.pt")
    save(net.state_dict(), f"{args.out}/legacy_format.pt", _use_new_zipfile_serialization=False)
    save(net, f"{args.out}/pickled_module.pt")

    calibration = [torch.randn(4, 1, 8, 8) for _ in range(4)]
    int8 = quantized(net, calibration)
    save(int8.state_dict(), f"{args.out}/converted_state.pt")

    obs = HistogramObserver()
    obs(torch.randn(1000) * 3)
    save(obs.state_dict(), f"{args.out}/histogram_observer.pt")
    s, z = obs.calculate_qparams()
    fq = default_per_channel_weight_fake_quant()
    fq(torch.randn(4, 3) * torch.tensor([[1.0], [2.0], [0.5], [4.0]]))
    save(fq.state_dict(), f"{args.out}/per_channel_fake_quant.pt")

    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        save({"x": x, "float_y": net(x), "int8_y": int8(x), "histogram_scale": s, "histogram_zero_point": z,
              "fake_quant_scale": fq.scale, "fake_quant_zero_point": fq.zero_point},
             f"{args.out}/expected.pt")


if __name__ == "__main__":
    main()
