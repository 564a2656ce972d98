#pragma once
// Fake-quantization kernels on raw float32 buffers.
//
//   q    = round_half_even(x * inv_scale) + zero_point      (integer zero point)
//   q    = round_half_even(x * inv_scale + zero_point)      (float zero point, float-qparams schemes)
//   y    = (clamp(q, quant_min, quant_max) - zero_point) * scale
//   mask = quant_min <= q <= quant_max                      (straight-through gradient mask)
//
// inv_scale = 1.0f / scale in float32, exactly as ATen computes it, so finite inputs give
// bit-identical results to torch.fake_quantize_per_{tensor,channel}_affine.
// Non-finite inputs (where PyTorch's int64 cast is undefined and maps +Inf and NaN to quant_min):
// NaN stays NaN, +-Inf clamp to the range ends, and the mask is false for all three.
//
// Each kernel has a plain scalar reference (namespace reference) and a vectorized, parallel CPU
// version (namespace cpu), compiled once per instruction set, each copy tested against the
// reference (cpu_capability.h forces a copy).
#include <cstdint>

namespace tq::kernels {

struct PerTensorQParams {
  float scale;
  float zero_point;  // integer-valued unless float_zero_point
  float quant_min;
  float quant_max;
  bool float_zero_point = false;
};

// Per-channel views a contiguous tensor as [outer, channels, inner]; scale, inv_scale and
// zero_point hold one value per channel.
struct PerChannelQParams {
  const float* scale;
  const float* zero_point;
  float quant_min;
  float quant_max;
  bool float_zero_point = false;
};

struct ChannelLayout {
  int64_t outer;
  int64_t channels;
  int64_t inner;
};

namespace reference {
// y and mask may be null (mask only, or output only).
void fake_quantize_per_tensor(const float* x, float* y, bool* mask, int64_t n, const PerTensorQParams& qp);
void fake_quantize_per_channel(const float* x, float* y, bool* mask, ChannelLayout layout,
                               const PerChannelQParams& qp);
// q = clamp(round(x * inv_scale) + zero_point, quant_min, quant_max), the value of a quantized
// tensor's int_repr(); NaN maps to quant_min (callers reject NaN before quantizing).
void quantize_per_tensor(const float* x, int64_t* q, int64_t n, float scale, int64_t zero_point, int64_t quant_min,
                         int64_t quant_max);
// The scalar definitions of the cpu:: kernels below, same contracts, one element at a time;
// gradient sums are accumulated in double in index order.
void masked_grad(const float* dy, const bool* mask, float* dx, int64_t n);
void min_max(const float* x, int64_t n, float* min_out, float* max_out);
void min_max_per_channel(const float* x, ChannelLayout layout, float* min_out, float* max_out);
void histogram(const float* x, int64_t n, float lo, float hi, int64_t bins, float* hist);
void learnable_backward_per_tensor(const float* x, const float* dy, float* dx, int64_t n, float scale, float zero_point,
                                   float quant_min, float quant_max, float grad_factor, double* dscale,
                                   double* dzero_point);
void learnable_backward_per_channel(const float* x, const float* dy, float* dx, ChannelLayout layout,
                                    const float* scale, const float* zero_point, float quant_min, float quant_max,
                                    float grad_factor, double* dscale, double* dzero_point);
}  // namespace reference

namespace cpu {
void fake_quantize_per_tensor(const float* x, float* y, bool* mask, int64_t n, const PerTensorQParams& qp);
void fake_quantize_per_channel(const float* x, float* y, bool* mask, ChannelLayout layout,
                               const PerChannelQParams& qp);
// dx = dy * mask
void masked_grad(const float* dy, const bool* mask, float* dx, int64_t n);
// Running min and max in one pass; NaN propagates into both.
void min_max(const float* x, int64_t n, float* min_out, float* max_out);
// Per-channel min and max over a [outer, channels, inner] view, one pass.
void min_max_per_channel(const float* x, ChannelLayout layout, float* min_out, float* max_out);
// torch.histc counts of x over [lo, hi] (lo < hi) into hist[bins]; values outside or NaN are skipped.
void histogram(const float* x, int64_t n, float lo, float hi, int64_t bins, float* hist);
// Learnable (LSQ) backward, ATen's formulas, per element:
//   q = round_half_even(zero_point + x * inv_scale)
//   dx = dy * (quant_min <= q <= quant_max)
//   inside:  dscale = dy * (xfq - x) * inv_scale * grad_factor,   dzero_point = 0
//   below:   dscale = dy * (quant_min - zero_point) * grad_factor, dzero_point = -dy * scale * grad_factor
//   above:   dscale = dy * (quant_max - zero_point) * grad_factor, likewise
// with xfq = (clamp(q) - zero_point) * scale. dscale / dzero_point are summed per tensor (one
// value) or per channel (one value per channel).
void learnable_backward_per_tensor(const float* x, const float* dy, float* dx, int64_t n, float scale, float zero_point,
                                   float quant_min, float quant_max, float grad_factor, double* dscale,
                                   double* dzero_point);
void learnable_backward_per_channel(const float* x, const float* dy, float* dx, ChannelLayout layout,
                                    const float* scale, const float* zero_point, float quant_min, float quant_max,
                                    float grad_factor, double* dscale, double* dzero_point);
}  // namespace cpu

}  // namespace tq::kernels
