#!/usr/bin/env python3
"""Golden data for the eager workflow, written by PyTorch's eager API (Debian's 1.13):

  /usr/bin/python3 tools/gen_golden_eager.py --out tests/golden

A small model (QuantStub, Conv2d+ReLU fused, Linear, DeQuantStub) with fixed weights
(eager_float.pt, the same names tq's modules use), quantized statically with MinMax activation
observers and per-channel weights on the onednn engine, calibrated on fixed batches. eager.json
holds the batches, a test input, the float and int8 outputs, and every scale / zero point."""
import argparse
import os
import sys

import torch
import torch.ao.quantization as Q
from torch.ao.quantization.observer import MinMaxObserver, default_per_channel_weight_observer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import tensor_json, write_json  # noqa: E402

torch.manual_seed(20261125)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = Q.QuantStub()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(4 * 5 * 5, 3)
        self.dequant = Q.DeQuantStub()

    def forward(self, x):
        x = self.relu(self.conv(self.quant(x)))
        return self.dequant(self.fc(x.flatten(1)))


tj = tensor_json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.backends.quantized.engine = "onednn"
    model = Net().eval()
    torch.save(dict(model.state_dict()), os.path.join(args.out, "eager_float.pt"))
    batches = [torch.randn(8, 3, 5, 5) * s for s in (1.0, 1.5)]
    x = torch.randn(4, 3, 5, 5)
    float_out = model(x)
    model.qconfig = Q.QConfig(activation=MinMaxObserver.with_args(reduce_range=False),
                              weight=default_per_channel_weight_observer)
    Q.fuse_modules(model, [["conv", "relu"]], inplace=True)
    Q.prepare(model, inplace=True)
    for b in batches:
        model(b)
    Q.convert(model, inplace=True)
    int8_out = model(x)
    out = {
        "engine": "onednn", "batches": [tj(b) for b in batches], "x": tj(x),
        "float_out": tj(float_out), "int8_out": tj(int8_out),
        "quant": {"scale": float(model.quant.scale), "zero_point": int(model.quant.zero_point)},
        "conv": {"scale": model.conv.scale, "zero_point": model.conv.zero_point,
                 "weight_scales": tj(model.conv.weight().q_per_channel_scales().float())},
        "fc": {"scale": model.fc.scale, "zero_point": model.fc.zero_point,
               "weight_scales": tj(model.fc.weight().q_per_channel_scales().float())},
    }
    # Dynamic quantization of the Linear layers.
    dyn = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    torch.save(dict(dyn.state_dict()), os.path.join(args.out, "eager_dynamic_float.pt"))
    xd = torch.randn(6, 16)
    dyn_q = Q.quantize_dynamic(dyn, {torch.nn.Linear}, dtype=torch.qint8)
    out["dynamic"] = {"x": tj(xd), "y": tj(dyn_q(xd)), "float_y": tj(dyn(xd))}

    # QAT: three SGD steps with fixed data, then convert.
    class QatNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = Q.QuantStub()
            self.fc1 = torch.nn.Linear(8, 16)
            self.relu = torch.nn.ReLU()
            self.fc2 = torch.nn.Linear(16, 2)
            self.dequant = Q.DeQuantStub()

        def forward(self, x):
            return self.dequant(self.fc2(self.relu(self.fc1(self.quant(x)))))

    qat = QatNet()
    torch.save(dict(qat.state_dict()), os.path.join(args.out, "eager_qat_float.pt"))
    xq, target = torch.randn(32, 8), torch.randn(32, 2)
    qat.train()
    qat.qconfig = Q.get_default_qat_qconfig("onednn")
    Q.fuse_modules_qat(qat, [["fc1", "relu"]], inplace=True)
    Q.prepare_qat(qat, inplace=True)
    sgd = torch.optim.SGD(qat.parameters(), lr=0.05)
    losses = []
    for _ in range(3):
        loss = ((qat(xq) - target) ** 2).mean()
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        losses.append(loss.item())
    qat.eval()
    Q.convert(qat, inplace=True)
    out["qat"] = {"x": tj(xq), "target": tj(target), "losses": losses, "y": tj(qat(xq)),
                  "quant": {"scale": float(qat.quant.scale), "zero_point": int(qat.quant.zero_point)},
                  "fc1": {"scale": qat.fc1.scale, "zero_point": qat.fc1.zero_point},
                  "fc2": {"scale": qat.fc2.scale, "zero_point": qat.fc2.zero_point}}
    # Dynamic LSTM and GRU (two layers).
    rnns = torch.nn.ModuleDict({"lstm": torch.nn.LSTM(6, 8, num_layers=2), "gru": torch.nn.GRU(6, 8, num_layers=2)})
    torch.save(dict(rnns.state_dict()), os.path.join(args.out, "eager_rnn_float.pt"))
    xs = torch.randn(5, 3, 6)
    float_lstm, float_gru = rnns["lstm"](xs)[0], rnns["gru"](xs)[0]
    rnn_q = Q.quantize_dynamic(rnns, {torch.nn.LSTM, torch.nn.GRU}, dtype=torch.qint8)
    out["rnn"] = {"x": tj(xs), "lstm_float": tj(float_lstm), "gru_float": tj(float_gru),
                  "lstm": tj(rnn_q["lstm"](xs)[0]), "gru": tj(rnn_q["gru"](xs)[0])}
    write_json(os.path.join(args.out, "eager.json"), out)


if __name__ == "__main__":
    main()
