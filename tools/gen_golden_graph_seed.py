#!/usr/bin/env python3
"""Golden data for tq's graph-mode quantizer with the seed configuration, written by the seed
itself (PyTorch's experimental test/fx/quantization.py, loaded from the seed file, not copied)
running on Debian's PyTorch 1.13:

  /usr/bin/python3 tools/gen_golden_graph_seed.py --out tests/golden/graph

Two adjustments make the seed run on 1.13: the qnnpack engine (1.13 here has no fbgemm), and
torch.ao.nn.intrinsic.quantized, which 1.13 lacks, made to refer to torch.nn.intrinsic.quantized.

A small float model (SeedNet) exercises every seed pattern: Conv2d, Conv2d+ReLU, Conv2d+BatchNorm2d,
Conv2d+BatchNorm2d+ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and a tensor + tensor add. It is
saved scripted (seed_model_script.pt) and traced on the eval input (seed_model_trace.pt). A deep
copy is symbolically traced, observed on 4 calibration batches (manual_seed(1)), quantized, and run
on the eval input (manual_seed(2)). seed.json holds:
  "engine", "calibration": [tensor], "input": tensor, "output": tensor (the quantized model's
  output; float, the graph ends in a float flatten), "float_output": tensor,
  "matches": [{"node", "root", "handler"}] every matched FX node in graph order,
  "points": [...] every quantization point in FX graph order (see below),
  "quantized_graph": qm.code, for humans.
A point is {"kind", "node", "module", "scale", "zero_point", "min", "max"}:
  kind "output": a matched root's output qparams (ConvNormRelu, Add); "node" is the root node
    (the bn or relu node when the pattern has one); "module" the Conv2d's qualified name, plus
    "weight_scale", "weight_zero_point", "weight_min", "weight_max" (of the conv weight, folded
    with the BatchNorm when there is one), "relu" and "bn" (bools). For Add, "module" is "" and
    "op" is "add".
  kind "input": a DefaultQuant that quantize() used (a quantize_per_tensor node was emitted);
    "node" the FX node it quantizes, "module" that node's module when it is a call_module.
  "min"/"max" are the observed range (doubles) before it is widened to include 0.

How the seed computes qparams (_minmax_scale_zeropoint), all in Python floats (double precision):
  observed min/max: float(t.min()), float(t.max()) of the float32 tensor, min/max over batches;
  min = min(0.0, min); max = max(0.0, max); if max == min: (1.0, 0);
  scale = (max - min) / float(qmax - qmin); scale = max(scale, eps), eps = float32 eps (2**-23);
  zero_point = qmin - round(min / scale), round() being Python's round-half-to-even on a double;
  zero_point clamped to [qmin, qmax], then int().
  Activations (outputs and inputs): qmin=0, qmax=255, quint8.
  Weights: the defaults qmin=-127, qmax=128 (sic, not -128..127), qint8, per tensor, from the
  folded weight's float(min) / float(max); fuse_conv_bn_weights folds in float32.
The double scale is passed unchanged to quantize_per_tensor, quantized.add and the quantized conv.

Matching, as the seed does it: nodes are visited in reverse; for a node not yet matched, every
pattern is tried in registration order (add, AdaptiveAvgPool2d, MaxPool2d, AvgPool2d, ReLU,
(ReLU, (BN, Conv)), (BN, Conv), (ReLU, Conv), Conv) with no break, so the last one that matches
wins: a ReLU after a conv first matches CopyNode, then a conv pattern overrides it (ConvReLU2d).
A pattern's inner nodes (the conv, the bn) must have a single user; the root may have many.
Quirks of the seed (1.13): a DefaultQuant observer is made for every argument of every matched
node (inner nodes included) and observed on every batch, but only those quantize() needs emit a
quantize_per_tensor (here only "x"); Add judges "all tensors" by its output, so tensor + scalar is
not left in float: it emits quantized.add(q, 1.0, scale=, zero_point=), which fails when run; the
weight range -127..128 can give zero_point 128, which qint8 quantize_per_tensor rejects (all
weights <= 0)."""
import argparse
import copy
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import tensor_json, write_json  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SEED = os.path.join(REPO, "..", "shared", "seeds", "004_5347a93ffe0af415.txt")

tj = tensor_json


def load_seed(path):
    """Executes the Python code between the seed file's first pair of ``` fences as a module."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    parts = text.split("```")
    if len(parts) < 3:
        raise SystemExit(f"{path}: no ``` fenced code")
    code = parts[1]
    if code.startswith("python"):
        code = code[len("python"):]
    # 1.13 has torch.nn.intrinsic.quantized but no torch.ao.nn.intrinsic.quantized.
    import torch.ao.nn.intrinsic
    import torch.nn.intrinsic.quantized
    if not hasattr(torch.ao.nn.intrinsic, "quantized"):
        torch.ao.nn.intrinsic.quantized = torch.nn.intrinsic.quantized
    mod = types.ModuleType("seed_fx_quantization")
    mod.__file__ = path
    sys.modules[mod.__name__] = mod
    exec(compile(code, path, "exec"), mod.__dict__)
    return mod


class SeedNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)             # Conv2d
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)             # Conv2d + ReLU
        self.relu2 = torch.nn.ReLU()
        self.conv3 = torch.nn.Conv2d(8, 8, 3, padding=1)             # Conv2d + BatchNorm2d
        self.bn3 = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(2)
        self.conv4 = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)  # Conv2d + BatchNorm2d + ReLU
        self.bn4 = torch.nn.BatchNorm2d(8)
        self.relu4 = torch.nn.ReLU()
        self.avgpool = torch.nn.AvgPool2d(2)
        self.gap = torch.nn.AdaptiveAvgPool2d((2, 2))

    def forward(self, x):
        a = self.conv1(x)
        b = self.relu2(self.conv2(a))
        c = self.bn3(self.conv3(b))
        y = a + c
        y = self.pool(y)
        y = self.relu4(self.bn4(self.conv4(y)))
        y = self.avgpool(y)
        y = self.gap(y)
        return torch.flatten(y, 1)


def make_model():
    torch.manual_seed(20261207)
    model = SeedNet()
    with torch.no_grad():
        for bn in (model.bn3, model.bn4):
            bn.running_mean.copy_(torch.randn(8) * 0.2)
            bn.running_var.copy_(torch.rand(8) * 1.5 + 0.25)
            bn.weight.copy_(torch.rand(8) + 0.5)
            bn.bias.copy_(torch.randn(8) * 0.2)
    return model.eval()


def main():
    # torch.jit.script writes a module's __constants__ in set order, i.e. string-hash order:
    # fix the hash seed so that seed_model_script.pt is byte-identical from run to run.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", default=DEFAULT_SEED)
    args = ap.parse_args()
    torch.backends.quantized.engine = "qnnpack"
    if not os.path.exists(args.seed):
        # ctest counts exit code 77 as skipped; the GraphSeed tests then skip, naming the file.
        print(f"seed 004 not found at {os.path.abspath(args.seed)}: the seed-conformance golden is not written",
              file=sys.stderr)
        sys.exit(77)
    seed = load_seed(os.path.abspath(args.seed))
    os.makedirs(args.out, exist_ok=True)

    model = make_model()
    torch.manual_seed(1)
    calibration = [torch.randn(2, 3, 16, 16) for _ in range(4)]
    torch.manual_seed(2)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        float_out = model(x)

    scripted = torch.jit.script(model)
    traced = torch.jit.trace(model, (x,))
    torch.jit.save(scripted, os.path.join(args.out, "seed_model_script.pt"))
    torch.jit.save(traced, os.path.join(args.out, "seed_model_trace.pt"))

    # The seed's Quantizer.quantize setattr's quantized convs into the traced root: use a copy.
    fx = torch.fx.symbolic_trace(copy.deepcopy(model))
    q = seed.Quantizer(fx)
    with torch.no_grad():
        for b in calibration:
            q.observe((b,))

    used = set()
    for name, dq in q.quants.items():
        def quantize(input, _name=name, _orig=dq.quantize):
            used.add(_name)
            return _orig(input)
        dq.quantize = quantize
    # Weight qparams as the seed computes them, from the float conv/bn before quantize() swaps them.
    weights = {}
    for name, (root, obj) in q.matches.items():
        if root.name == name and isinstance(obj, seed.ConvNormRelu):
            w = obj.conv.weight
            if obj.bn_node is not None:
                w, _ = torch.nn.utils.fuse_conv_bn_weights(
                    w, obj.conv.bias, obj.bn.running_mean, obj.bn.running_var, obj.bn.eps,
                    obj.bn.weight, obj.bn.bias)
            wmin, wmax = float(w.min()), float(w.max())
            weights[name] = (wmin, wmax) + seed._minmax_scale_zeropoint(wmin, wmax)
    qm = q.quantize()
    with torch.no_grad():
        out = qm(x)

    qpt = [n for n in qm.graph.nodes if n.op == "call_function" and n.target is torch.quantize_per_tensor]
    assert sorted(n.args[0].name for n in qpt) == sorted(used), (qpt, used)

    matches, points = [], []
    for node in fx.graph.nodes:
        root, obj = q.matches.get(node.name, (None, None))
        if root is not None:
            matches.append({"node": node.name, "root": root.name, "handler": type(obj).__name__})
        if root is node and isinstance(obj, (seed.ConvNormRelu, seed.Add)):
            scale, zp = obj.scale_zeropoint()
            p = {"kind": "output", "node": node.name, "scale": scale, "zero_point": zp,
                 "min": obj.min, "max": obj.max}
            if isinstance(obj, seed.Add):
                p.update({"module": "", "op": "add"})
            else:
                wmin, wmax, wscale, wzp = weights[node.name]
                qconv = qm.get_submodule(obj.conv_node.target)
                assert qconv.scale == scale and qconv.zero_point == zp
                assert qconv.weight().q_scale() == wscale and qconv.weight().q_zero_point() == wzp
                p.update({"module": obj.conv_node.target, "weight_scale": wscale,
                          "weight_zero_point": wzp, "weight_min": wmin, "weight_max": wmax,
                          "relu": obj.relu_node is not None, "bn": obj.bn_node is not None})
            points.append(p)
        if node.name in used:
            dq = q.quants[node.name]
            scale, zp = dq.scale_zeropoint()
            p = {"kind": "input", "node": node.name, "scale": scale, "zero_point": zp,
                 "min": dq.min, "max": dq.max}
            if node.op == "call_module":
                p["module"] = node.target
            points.append(p)

    write_json(os.path.join(args.out, "seed.json"), {
        "engine": torch.backends.quantized.engine,
        "calibration": [tj(b) for b in calibration], "input": tj(x),
        "output": tj(out), "float_output": tj(float_out),
        "matches": matches, "points": points, "quantized_graph": qm.code,
    })


if __name__ == "__main__":
    main()
