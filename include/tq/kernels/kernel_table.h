#pragma once
// The raw-buffer kernels behind tq's tensor-level entry points (tensor_kernels.h), listed once.
//
// Every implementation of them -- the scalar reference, one CPU copy per instruction set, and a
// future CUDA or other-device copy -- is one KernelTable of function pointers. Its signatures are
// written here only: TQ_FOR_EACH_KERNEL generates the table's fields, each copy's declarations and
// each copy's table (src/kernels/kernel_copy.h), so a new copy is one set of definitions and one
// registration (register_kernels in tensor_kernels.h). Pointers are to memory of the device the
// table is registered for.
//
// What each kernel computes (formulas in fake_quantize_kernels.h and weight_only_kernels.h):
//   fake_quantize_per_tensor / _per_channel: y and mask (either may be null).
//   quantize_per_tensor: q = clamp(round(x * inv_scale) + zero_point, quant_min, quant_max), the
//       value of a quantized tensor's int_repr(); NaN maps to quant_min (callers reject NaN first).
//   masked_grad: dx = dy * mask (a multiply, so a NaN gradient stays NaN as in ATen).
//   min_max: running min and max in one pass; NaN propagates into both.
//   min_max_per_channel: per-channel min and max over a [outer, channels, inner] view.
//   histogram: torch.histc counts of x over [lo, hi] (lo < hi) into hist[bins]; values outside
//       or NaN are skipped.
//   learnable_backward_per_tensor / _per_channel: LSQ's backward, ATen's formulas, per element
//         q = round_half_even(zero_point + x * inv_scale)
//         dx = dy * (quant_min <= q <= quant_max)
//         inside:  dscale = dy * (xfq - x) * inv_scale * grad_factor,   dzero_point = 0
//         below:   dscale = dy * (quant_min - zero_point) * grad_factor, dzero_point = -dy * scale * grad_factor
//         above:   dscale = dy * (quant_max - zero_point) * grad_factor, likewise
//       with xfq = (clamp(q) - zero_point) * scale; dscale / dzero_point summed per tensor (one
//       value) or per channel. The reference sums in double in index order.
//   linear_weight_only: y[rows, out_features] = x[rows, in_features] times the group-wise weight
//       (transposed), plus bias (may be null).
//   quantize_rows_static, quantize_rows_per_token, scale_int32_sums: the passes around an int8 GEMM with float32 output
//       (gemm_row_kernels.h).
#include <cstdint>

#include "tq/kernels/cpu_capability.h"
#include "tq/kernels/fake_quantize_kernels.h"
#include "tq/kernels/gemm_row_kernels.h"
#include "tq/kernels/weight_only_kernels.h"

// X(name, parameter list): every kernel returns void.
#define TQ_FOR_EACH_KERNEL(X)                                                                                         \
  X(fake_quantize_per_tensor, (const float* x, float* y, bool* mask, int64_t n, const PerTensorQParams& qp))           \
  X(fake_quantize_per_channel,                                                                                        \
    (const float* x, float* y, bool* mask, ChannelLayout layout, const PerChannelQParams& qp))                        \
  X(quantize_per_tensor, (const float* x, int64_t* q, int64_t n, float scale, int64_t zero_point, int64_t quant_min,  \
                          int64_t quant_max))                                                                         \
  X(masked_grad, (const float* dy, const bool* mask, float* dx, int64_t n))                                           \
  X(min_max, (const float* x, int64_t n, float* min_out, float* max_out))                                             \
  X(min_max_per_channel, (const float* x, ChannelLayout layout, float* min_out, float* max_out))                      \
  X(histogram, (const float* x, int64_t n, float lo, float hi, int64_t bins, float* hist))                            \
  X(learnable_backward_per_tensor,                                                                                    \
    (const float* x, const float* dy, float* dx, int64_t n, float scale, float zero_point, float quant_min,           \
     float quant_max, float grad_factor, double* dscale, double* dzero_point))                                        \
  X(learnable_backward_per_channel,                                                                                   \
    (const float* x, const float* dy, float* dx, ChannelLayout layout, const float* scale, const float* zero_point,   \
     float quant_min, float quant_max, float grad_factor, double* dscale, double* dzero_point))                       \
  X(linear_weight_only,                                                                                               \
    (const float* x, int64_t rows, const GroupwiseWeightView& w, const float* bias, float* y))                         \
  X(quantize_rows_static, (const float* x, const float* factors, int64_t rows, int64_t cols,                          \
                           const StaticRowQuantization& p, int8_t* q, float* row_scales))                             \
  X(quantize_rows_per_token, (const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales))                  \
  X(scale_int32_sums, (int32_t* sums, int64_t rows, int64_t cols, const float* row_scales,                            \
                       const float* channel_scales, const float* offsets, const float* bias))

namespace tq::kernels {

struct KernelTable {
  const char* name;  // "reference", "cpu_avx2", ...
#define TQ_KERNEL_TABLE_FIELD(kernel, params) void(*kernel) params;
  TQ_FOR_EACH_KERNEL(TQ_KERNEL_TABLE_FIELD)
#undef TQ_KERNEL_TABLE_FIELD
};

// The scalar definitions: one element at a time, the tests' yardstick for every other copy.
const KernelTable& reference_kernels();
// The CPU copy compiled for `capability` (throws tq::Error if this build has none), and the copy
// in use (cpu_capability.h).
const KernelTable& cpu_kernels(CpuCapability capability);
const KernelTable& cpu_kernels();

}  // namespace tq::kernels
