#!/usr/bin/env python3
"""Python runs a model that calls tq's TorchScript operators once it loads them from tq's shared
object, as README says: torch.ops.load_library("libtq_torch_ops.so"), then torch.jit.load.

Usage: check_python_loads_tq_ops.py LIBTQ_TORCH_OPS OUTPUT_DIR
OUTPUT_DIR holds graph_weight_only_w4.pt (a 4-bit weight-only Linear: tq::linear_weight_only) and
graph_weight_only_w4_io.pt (its input and tq's output in C++), written by test_graph_dynamic."""
import sys

import torch

lib, d = sys.argv[1], sys.argv[2]
model_path = f"{d}/graph_weight_only_w4.pt"
failures = []

# Without tq's operators PyTorch cannot load the model, and says which operator it lacks.
try:
    torch.jit.load(model_path)
    failures.append("the model loaded without tq's operators")
except RuntimeError as e:
    if "tq::linear_weight_only" not in str(e):
        failures.append(f"unexpected error without tq's operators: {str(e).splitlines()[0]}")

torch.ops.load_library(lib)
model = torch.jit.load(model_path)
io = torch.jit.load(f"{d}/graph_weight_only_w4_io.pt")
with torch.no_grad():
    y = model(io.tokens)
# The same kernel on the same machine; only a different thread split could change a rounding.
diff = (y - io.out).abs().max().item()
print(f"PyTorch {torch.__version__} ran tq's 4-bit model: max |diff| from tq's C++ output {diff:g} "
      f"({'equal' if torch.equal(y, io.out) else 'not bit-equal'}, {y.numel()} values)")
if not torch.allclose(y, io.out, rtol=1e-5, atol=1e-5):
    failures.append(f"the output differs from tq's by {diff:g}")

# The per-token operator from the formula (tests/test_int8_backends.cpp's hand-derived case): row 0
# quantizes to [127, -64, 0] with scale 0.02, row 1 is all zeros; weights [[1, 2, 3], [-1, 0, 4]]
# with scales [0.5, 0.25] and bias [1, -1].
x = torch.tensor([[2.54, -1.27, 0.01], [0.0, 0.0, 0.0]])
w = torch.tensor([[1, 2, 3], [-1, 0, 4]], dtype=torch.int8)
y = torch.ops.tq.linear_dynamic_per_token(x, w, torch.tensor([0.5, 0.25], dtype=torch.float64),
                                          torch.tensor([1.0, -1.0]))
want = torch.tensor([[0.99, -1.635], [1.0, -1.0]])
print(f"tq::linear_dynamic_per_token from Python: {y.tolist()}")
if not torch.allclose(y, want, rtol=1e-6, atol=1e-6):
    failures.append(f"tq::linear_dynamic_per_token gave {y.tolist()}, expected {want.tolist()}")

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
