#!/usr/bin/env python3
"""Golden data for tq's graph-mode quantizer, written by PyTorch FX (Debian's 1.13):

  /usr/bin/python3 tools/gen_golden_graph_fx.py --out tests/golden/graph [--models resnet18,...]

For each model (tools/graph_models.py builds it: seeded random weights, non-trivial batch norm),
on the onednn engine: prepare_fx with get_default_qconfig_mapping("onednn") and the evaluation
input as example, calibration on graph_models.calibration(name) (4 batches of 2, 3x64x64,
seed 1), convert_fx, and a run on graph_models.eval_input(name) (seed 2). fx_<name>.json holds

  model, engine, qconfig, size, batches, batch     what was run
  output, float_output                             int8 and float model outputs on the eval input
  points      every value the converted graph holds quantized, in graph order, each
              {node, op, kind, module, index, scale, zero_point [, weight_qscheme,
              weight_channels, weight_scales (the first 4)] [, source]}:
              kind "input"  quantize_per_tensor of a float value (op "quantize"; source is the
                            FX node it quantizes, module that node's module)
                   "output" a quantized module or quantized.* op with its own output qparams
                   "shared" an op that passes its input's qparams on (max_pool2d, flatten, cat
                            with a shared observer, relu6, dropout, ...)
                   "fixed"  an op with fixed output qparams (sigmoid, hardsigmoid)
              op      the quantized module's / op's normalized name (conv, conv_relu, linear,
                      add, add_relu, mul, cat, hardswish, batch_norm_relu, ...)
              module  for module ops their qualified name (conv+bn[+relu] is named after the
                      conv); for functional ops the innermost nn.Module whose forward contains
                      the op (for a fused pattern such as add+relu: the root op, the add)
              index   the ordinal of this (module, op) pair in graph order
              scale, zero_point are read from the quantized tensors of a run on the eval input.
  float_ops   "op@module" for every op left computing in float (between dequantize and quantize)

PyTorch 1.13's FX nodes carry no meta['nn_module_stack']; the module of a functional op comes from
the scope QuantizationTracer records while tracing (prepared._node_name_to_scope: node name ->
(module path, module type)). Lowering replaces functional patterns by new nodes (add + relu ->
quantized.add_relu, named anew), so those are mapped back through convert_to_reference_fx of the
same prepared model: the quantize_per_tensor node there that uses the same output-scale attribute
closes the pattern, and the pattern's first op names the scope. FX cannot trace
shufflenet_v2_x1_0 or vit_b_16 in 1.13 (Proxy iteration in channel_shuffle / _process_input).
"""
import argparse
import collections
import copy
import os
import re
import sys
import time

import torch
from torch.ao.quantization import (MinMaxObserver, QConfig, default_per_channel_weight_observer,
                                   get_default_qconfig_mapping)
from torch.ao.quantization.quantize_fx import convert_fx, convert_to_reference_fx, prepare_fx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graph_models  # noqa: E402
from golden_io import tensor_json, write_json  # noqa: E402

DEFAULT_MODELS = ["resnet18", "mobilenet_v2", "mobilenet_v3_large", "resnet50", "googlenet",
                  "densenet121", "efficientnet_b0", "ops_zoo"]
ENGINE = "onednn"
QCONFIG = "default_qconfig_mapping(onednn)"
BATCHES, BATCH = 4, 2

MODULE_OPS = {"Conv1d": "conv", "Conv2d": "conv", "Conv3d": "conv", "ConvReLU1d": "conv_relu",
              "ConvReLU2d": "conv_relu", "ConvReLU3d": "conv_relu", "Linear": "linear",
              "LinearReLU": "linear_relu", "BatchNorm2d": "batch_norm", "BatchNorm3d": "batch_norm",
              "BNReLU2d": "batch_norm_relu", "BNReLU3d": "batch_norm_relu", "LayerNorm": "layer_norm",
              "ReLU6": "relu6", "MaxPool2d": "max_pool2d", "AvgPool2d": "avg_pool2d",
              "AdaptiveAvgPool2d": "adaptive_avg_pool2d", "SiLU": "silu", "GELU": "gelu",
              "MultiheadAttention": "multihead_attention"}
SCALE_ATTR = re.compile(r"_scale_\d+$")


def snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def op_name(node, modules):
    """A short, normalized name for what `node` computes."""
    if node.op == "call_module":
        cls = type(modules[node.target]).__name__
        return MODULE_OPS.get(cls, snake(cls))
    t = node.target
    if node.op == "call_method":
        return t
    if t is torch.quantize_per_tensor:
        return "quantize"
    if isinstance(t, torch._ops.OpOverloadPacket):  # torch.ops.quantized.add_relu
        return str(t).split(".")[-1]
    return getattr(t, "__name__", str(t)).lstrip("_")


def tensor_args(node):
    out = []
    torch.fx.node.map_arg((node.args, node.kwargs), lambda a: out.append(a))
    return out


class Recorder(torch.fx.Interpreter):
    """Runs a GraphModule and keeps every node's output."""

    def __init__(self, gm):
        super().__init__(gm)
        self.values = {}

    def run_node(self, n):
        v = super().run_node(n)
        self.values[n.name] = v
        return v


def pattern_root(ref_graph, scale_attr):
    """The first op of the pattern that the reference graph's quantize_per_tensor using get_attr
    `scale_attr` closes (the ops between that node and the dequantize nodes feeding it)."""
    order = {n: i for i, n in enumerate(ref_graph.nodes)}
    q = [n for n in ref_graph.nodes if n.op == "call_function" and n.target is torch.quantize_per_tensor
         and isinstance(n.args[1], torch.fx.Node) and n.args[1].target == scale_attr]
    assert len(q) == 1, f"{scale_attr}: {len(q)} quantize nodes in the reference graph"
    seen, stack = set(), [q[0].args[0]]
    while stack:
        n = stack.pop()
        if n in seen or n.op in ("placeholder", "get_attr") or (n.op == "call_method" and n.target == "dequantize"):
            continue
        seen.add(n)
        stack.extend(tensor_args(n))
    return min(seen, key=order.get)


def module_of(node, scope):
    """The qualified name of the module that runs `node` (call_module) or whose forward holds it."""
    if node.op == "call_module":
        return node.target
    return scope[node.name][0] if node.name in scope else ""


def qconfig_mapping(activation):
    """FX's default mapping for the engine; with "minmax", MinMax activation observers replace the
    global Histogram ones (PyTorch 1.13's HistogramObserver differs from 2.x, which tq follows, so
    only MinMax activations give qparams that must be equal bit for bit)."""
    mapping = get_default_qconfig_mapping(ENGINE)
    if activation == "minmax":
        default = mapping.global_qconfig
        minmax = QConfig(activation=MinMaxObserver.with_args(reduce_range=False),
                         weight=default_per_channel_weight_observer)
        mapping.set_global(minmax)
        # The default mapping also names conv / linear types with the global qconfig, and
        # LayerNorm with the global activation observer and float weights.
        for key, qconfig in list(mapping.object_type_qconfigs.items()):
            if qconfig is default:
                mapping.set_object_type(key, minmax)
            elif qconfig.activation is default.activation:
                mapping.set_object_type(key, QConfig(activation=minmax.activation, weight=qconfig.weight))
    return mapping


def quantize_model(name, size, activation):
    torch.backends.quantized.engine = ENGINE
    model = graph_models.build(name, size)
    x = graph_models.eval_input(name, BATCH, size)
    prepared = prepare_fx(model, qconfig_mapping(activation), example_inputs=(x,))
    scope = dict(prepared._node_name_to_scope)
    prepared_targets = {n.name: (n.op, n.target) for n in prepared.graph.nodes}
    with torch.no_grad():
        for b in graph_models.calibration(name, BATCHES, BATCH, size):
            prepared(b)
    reference = convert_to_reference_fx(copy.deepcopy(prepared))
    quantized = convert_fx(prepared)
    return model, x, quantized, reference, scope, prepared_targets


def describe(name, size, activation):
    model, x, quantized, reference, scope, prepared_targets = quantize_model(name, size, activation)
    with torch.no_grad():
        float_out = model(x)
        rec = Recorder(quantized)
        int8_out = rec.run(x)
    modules = dict(quantized.named_modules())
    points, float_ops, counts = [], [], collections.Counter()
    for n in quantized.graph.nodes:
        if n.op not in ("call_module", "call_function", "call_method"):
            continue
        v = rec.values[n.name]
        if not isinstance(v, torch.Tensor):
            continue
        op = op_name(n, modules)
        if not v.is_quantized:
            if v.is_floating_point() and op != "dequantize":
                float_ops.append(f"{op}@{module_of(n, scope)}")
            continue
        assert v.qscheme() == torch.per_tensor_affine, f"{n.name}: {v.qscheme()}"
        point = {"node": n.name, "op": op}
        mod = modules.get(n.target) if n.op == "call_module" else None
        scale_args = [a for a in tensor_args(n) if a.op == "get_attr" and SCALE_ATTR.search(a.target)]
        if op == "quantize":
            src = n.args[0]
            point.update(kind="input", module=module_of(src, scope), source=src.name)
        else:
            original = prepared_targets.get(n.name) == (n.op, n.target)
            if n.op == "call_module":
                module = n.target
            elif original:
                module = module_of(n, scope)
            else:  # a node made by lowering (quantized.add_relu, ...): find its pattern
                assert len(scale_args) == 1, f"{n.name}: no output scale argument"
                module = module_of(pattern_root(reference.graph, scale_args[0].target), scope)
            if (mod is not None and hasattr(mod, "scale")) or scale_args:
                kind = "output"
            else:
                ins = [rec.values[a.name] for a in tensor_args(n)
                       if isinstance(rec.values.get(a.name), torch.Tensor) and rec.values[a.name].is_quantized]
                same = ins and (ins[0].q_scale(), ins[0].q_zero_point()) == (v.q_scale(), v.q_zero_point())
                kind = "shared" if same else "fixed"
            point.update(kind=kind, module=module)
        point["index"] = counts[(point["module"], op)]
        counts[(point["module"], op)] += 1
        point.update(scale=v.q_scale(), zero_point=v.q_zero_point())
        if mod is not None and hasattr(mod, "scale"):
            assert (float(mod.scale), int(mod.zero_point)) == (v.q_scale(), v.q_zero_point()), n.name
        if mod is not None and callable(getattr(mod, "weight", None)):
            w = mod.weight()
            if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                ws = w.q_per_channel_scales()
            else:
                ws = torch.tensor([w.q_scale()], dtype=torch.float64)
            point.update(weight_qscheme=str(w.qscheme()).replace("torch.", ""),
                         weight_channels=int(ws.numel()), weight_scales=ws[:4].tolist())
        points.append(point)
    return {
        "model": name, "engine": ENGINE, "activation": activation,
        "qconfig": QCONFIG + ("" if activation == "histogram" else ", global activation MinMaxObserver"), "size": size, "batches": BATCHES,
        "batch": BATCH, "output": tensor_json(int8_out), "float_output": tensor_json(float_out),
        "points": points, "float_ops": float_ops,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory for fx_<name>.json")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    ap.add_argument("--size", type=int, default=graph_models.DEFAULT_SIZE)
    ap.add_argument("--activation", choices=["histogram", "minmax"], default="histogram",
                    help="histogram: FX's defaults (fx_<name>.json); minmax: fx_<name>_minmax.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # float reductions in a fixed order: the same files on any machine
    os.makedirs(args.out, exist_ok=True)
    for name in [m for m in args.models.split(",") if m]:
        t0 = time.perf_counter()
        suffix = "" if args.activation == "histogram" else "_" + args.activation
        path = os.path.join(args.out, f"fx_{name}{suffix}.json")
        write_json(path, describe(name, args.size, args.activation))
        print(f"{path}: {os.path.getsize(path)} bytes, {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
