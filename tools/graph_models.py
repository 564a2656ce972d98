#!/usr/bin/env python3
"""Real torchvision models as TorchScript files for tq's graph-mode quantizer tests, rebuilt at
test time from a seed (no weights live in the repository):

  /usr/bin/python3 tools/graph_models.py --out DIR --models resnet18,mobilenet_v2 --size 64 \
      [--mode script,trace]

For each model NAME this writes
  DIR/NAME_script.pt   torch.jit.script of the eval-mode model          (--mode script)
  DIR/NAME_trace.pt    torch.jit.trace of it on the evaluation input    (--mode trace)
  DIR/NAME_calib.pt    one float32 tensor [batches, batch, 3, size, size]: calibration batches
  DIR/NAME_input.pt    one float32 tensor [batch, 3, size, size]: the evaluation input
The two data files are torch.save of a single contiguous tensor in the default zip format, which
LibTorch reads with torch::jit::pickle_load(bytes) (as tq's serialize/state_dict.cpp does).
Every file is written to a temporary name, then renamed into place.

Weights are random but deterministic (torch.manual_seed(0) before construction), and every
BatchNorm gets non-trivial statistics (running_mean ~ 0.1 randn, running_var ~ U(0.5, 1.5),
weight ~ 1 + 0.1 randn, bias ~ 0.1 randn, from a generator seeded with 0) so that folding
batch norm into convolutions is really exercised. vit_b_16's head, which torchvision initialises
to zeros, gets nn.Linear's default initialisation instead (otherwise every output is 0). tools/gen_golden_graph_fx.py imports build(),
calibration() and eval_input() so that its FX golden data describe the very same models.
Note: googlenet's scripted forward returns GoogLeNetOutputs(logits, None, None) (a named tuple);
its traced forward returns the logits tensor.
"""
import argparse
import os
import sys
import time

import torch
import torchvision

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2_x1_0",
          "googlenet", "densenet121", "efficientnet_b0", "vit_b_16"]
DEFAULT_SIZE = 64


class OpsZoo(torch.nn.Module):
    """Not torchvision: one small net with every op family of tq's default patterns that the
    torchvision set lacks (ELU, LeakyReLU, GroupNorm, InstanceNorm, LayerNorm, Hardsigmoid,
    Sigmoid, Tanh, Softmax, a broadcasting mul, a depthwise-grouped conv, cat)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.elu = torch.nn.ELU()
        self.gn = torch.nn.GroupNorm(4, 16)
        self.lrelu = torch.nn.LeakyReLU(0.1)
        self.inorm = torch.nn.InstanceNorm2d(16, affine=True)
        self.hswish = torch.nn.Hardswish()
        self.hsig = torch.nn.Hardsigmoid()
        self.ln = torch.nn.LayerNorm(32)
        self.fc1 = torch.nn.Linear(32, 32)
        self.fc2 = torch.nn.Linear(32, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        y = self.lrelu(self.gn(self.elu(self.conv2(x))))
        z = self.inorm(x)
        x = self.hswish(torch.cat([y, z], 1))
        x = x * self.hsig(torch.nn.functional.adaptive_avg_pool2d(x, 1))
        x = torch.nn.functional.max_pool2d(x, 2).mean([2, 3])
        x = self.fc1(self.ln(x))
        x = torch.sigmoid(x) + torch.tanh(x)
        return torch.softmax(self.fc2(x), 1)


EXTRA_MODELS = ["ops_zoo"]


def _construct(name, size):
    if name == "ops_zoo":
        return OpsZoo()
    m = torchvision.models
    if name == "googlenet":
        return m.googlenet(weights=None, aux_logits=False, init_weights=False)
    if name == "vit_b_16":
        return m.vit_b_16(weights=None, image_size=size)
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}' (known: {', '.join(MODELS)})")
    return getattr(m, name)(weights=None)


def build(name, size=DEFAULT_SIZE):
    """The eval-mode model NAME: seeded random weights, non-trivial batch-norm statistics.
    `size` matters only for vit_b_16 (its image_size; the others take any size)."""
    torch.manual_seed(0)
    model = _construct(name, size)
    if name == "vit_b_16":
        # torchvision zero-initialises the classification head, which would make every output 0.
        model.heads.head.reset_parameters()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                n = mod.num_features
                mod.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(n, generator=g))
                if mod.affine:
                    mod.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=g))
                    mod.bias.copy_(0.1 * torch.randn(n, generator=g))
    return model.eval()


def input_shape(name, size=DEFAULT_SIZE, batch=2):
    """The NCHW input shape of model NAME (every model here takes 3-channel images)."""
    return [batch, 3, size, size]


def calibration(name, batches=4, batch=2, size=DEFAULT_SIZE):
    """`batches` calibration tensors of input_shape(name, size, batch), standard normal, seed 1."""
    torch.manual_seed(1)
    return [torch.randn(input_shape(name, size, batch)) for _ in range(batches)]


def eval_input(name, batch=2, size=DEFAULT_SIZE):
    """The evaluation input: standard normal of input_shape(name, size, batch), seed 2."""
    torch.manual_seed(2)
    return torch.randn(input_shape(name, size, batch))


def _save_atomic(path, save):
    tmp = path + ".tmp"
    save(tmp)
    os.replace(tmp, path)


def write_model(out, name, size=DEFAULT_SIZE, modes=("script", "trace"), batches=4, batch=2):
    """Writes the files listed in the module docstring for one model; returns seconds per step."""
    times = {}
    t0 = time.perf_counter()
    model = build(name, size)
    calib = calibration(name, batches, batch, size)
    x = eval_input(name, batch, size)
    times["build"] = time.perf_counter() - t0
    for mode in modes:
        t0 = time.perf_counter()
        with torch.no_grad():
            if mode == "script":
                sm = torch.jit.script(model)
            elif mode == "trace":
                sm = torch.jit.trace(model, (x,))
            else:
                raise ValueError(f"unknown mode '{mode}' (script, trace)")
        _save_atomic(os.path.join(out, f"{name}_{mode}.pt"), lambda p, sm=sm: torch.jit.save(sm, p))
        times[mode] = time.perf_counter() - t0
    _save_atomic(os.path.join(out, f"{name}_calib.pt"),
                 lambda p: torch.save(torch.stack(calib).contiguous(), p))
    _save_atomic(os.path.join(out, f"{name}_input.pt"), lambda p: torch.save(x.contiguous().clone(), p))
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS + EXTRA_MODELS), help="comma-separated (default: all)")
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE)
    ap.add_argument("--mode", default="script,trace", help="comma-separated subset of script,trace")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 4))
    os.makedirs(args.out, exist_ok=True)
    modes = [m for m in args.mode.split(",") if m]
    for name in [n for n in args.models.split(",") if n]:
        times = write_model(args.out, name, args.size, modes, args.batches, args.batch)
        if not args.quiet:
            print(name, " ".join(f"{k}={v:.2f}s" for k, v in times.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
