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
// The kernels themselves are listed in kernel_table.h: a plain scalar reference and a vectorized,
// parallel CPU copy per instruction set, each copy tested against the reference (cpu_capability.h
// forces a copy). Callers use the tensor-level entry points of tensor_kernels.h.
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

}  // namespace tq::kernels
