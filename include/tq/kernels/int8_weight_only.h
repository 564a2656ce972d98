#pragma once
// Weight-only Linear: float32 activations, group-wise 4- or 8-bit weights
// (tq/numerics/groupwise_weight.h). Int8 graphs call it as the TorchScript operator
//   tq::linear_weight_only(Tensor x, Tensor packed, Tensor scales, Tensor zero_points, int bits,
//                          int group_size, Tensor? bias) -> Tensor
// which tq's library registers: a LibTorch program that links tq runs such a graph with
// torch::jit::load (tq's CMake target keeps the registration in every program that links it).
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "tq/numerics/groupwise_weight.h"

namespace tq::kernels {

// Inputs with this many rows or fewer run tq's kernel, reading the packed weight once per tile of
// rows (memory-bound sizes: decoding, small batches); more rows dequantize the weight a block of
// channels at a time and multiply in float32 (compute-bound sizes, where BLAS wins).
constexpr int64_t kWeightOnlyKernelMaxRows = 16;

// x: float32 [..., in_features]; returns [..., out_features].
at::Tensor linear_weight_only(const at::Tensor& x, const GroupwiseWeight& w, const c10::optional<at::Tensor>& bias);

}  // namespace tq::kernels
