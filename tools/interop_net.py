"""The model both sides of the state_dict interop tests build: PyTorch here, tq::nn in
tests/test_pytorch_interop.cpp (same module names)."""
import torch
import torch.ao.quantization as Q
from torch.ao.quantization.observer import HistogramObserver, default_per_channel_weight_observer

ENGINE = "qnnpack"  # in every LibTorch build, x86 or not
FUSE = [["conv1", "bn1", "relu1"]]
QCONFIG = Q.QConfig(activation=HistogramObserver.with_args(reduce_range=False),
                    weight=default_per_channel_weight_observer)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = Q.QuantStub()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.relu1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(4, 4, 3, stride=2, bias=False)
        self.fc = torch.nn.Linear(4 * 3 * 3, 5)
        self.dequant = Q.DeQuantStub()

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        x = self.conv2(x)
        return self.dequant(self.fc(x.flatten(1)))


def quantized(float_net, calibration):
    """Fused, prepared, calibrated and converted copy of float_net (eval mode)."""
    import copy
    torch.backends.quantized.engine = ENGINE
    m = Q.fuse_modules(copy.deepcopy(float_net).eval(), FUSE)
    m.qconfig = QCONFIG
    Q.prepare(m, inplace=True)
    with torch.no_grad():
        for x in calibration:
            m(x)
    return Q.convert(m, inplace=True)
