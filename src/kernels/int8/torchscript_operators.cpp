// The TorchScript operators tq's quantized graphs call (namespace "tq"), registered when a program
// that links tq starts. tq is a static library: a program that only loads a saved model with
// torch::jit::load references nothing of tq, so tq's CMake target makes the linker keep this file
// through the symbol tq_torchscript_operators (CMakeLists.txt).
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_weight_only.h"
#include "tq/numerics/groupwise_weight.h"

extern "C" void tq_torchscript_operators() {}

namespace tq::kernels {
namespace {

at::Tensor linear_weight_only_op(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales,
                                 const at::Tensor& zero_points, int64_t bits, int64_t group_size,
                                 const c10::optional<at::Tensor>& bias) {
  TQ_CHECK(bits == 4 || bits == 8, "linear_weight_only", "weight-only quantization takes 4 or 8 bits, got ", bits);
  TQ_CHECK(packed.dim() == 2, "linear_weight_only", "the packed weight must be 2-D");
  return linear_weight_only(x, GroupwiseWeight{packed, scales, zero_points, bits, group_size, packed.size(1) * 8 / bits},
                            bias);
}

// The float weight (q - zero_point) * scale of a group-wise weight: the reference form's weight-only
// Linear reads its weight through this, so the integers stay visible in the graph (as int8
// weights stay visible behind aten::dequantize) and the ONNX export writes them as they are.
at::Tensor dequantize_groupwise_op(const at::Tensor& packed, const at::Tensor& scales, const at::Tensor& zero_points,
                                   int64_t bits, int64_t group_size) {
  TQ_CHECK(bits == 4 || bits == 8, "dequantize_groupwise", "weight-only quantization takes 4 or 8 bits, got ", bits);
  TQ_CHECK(packed.dim() == 2, "dequantize_groupwise", "the packed weight must be 2-D");
  return dequantize_groupwise(
      GroupwiseWeight{packed, scales, zero_points, bits, group_size, packed.size(1) * 8 / bits});
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tq, m) {
  m.def("linear_dynamic_per_token(Tensor x, Tensor weight, Tensor weight_scales, Tensor? bias) -> Tensor",
        &int8::linear_dynamic_per_token);
  m.def("linear_int8_float_output(Tensor x, float scale, int zero_point, int quant_min, int quant_max, Tensor weight, "
        "Tensor weight_scales, Tensor? bias, Tensor? input_factors=None) -> Tensor",
        &int8::linear_int8_float_output);
  m.def("matmul_int8(Tensor a, Tensor b, float alpha, float scale, int zero_point) -> Tensor", &int8::matmul);
  m.def("linear_weight_only(Tensor x, Tensor packed, Tensor scales, Tensor zero_points, int bits, int group_size, "
        "Tensor? bias) -> Tensor",
        &linear_weight_only_op);
  m.def("dequantize_groupwise(Tensor packed, Tensor scales, Tensor zero_points, int bits, int group_size) -> Tensor",
        &dequantize_groupwise_op);
}

}  // namespace tq::kernels
