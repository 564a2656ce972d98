#pragma once
// Fake quantization with learnable scale and zero point (LSQ, https://openreview.net/pdf?id=rkgO66VKDS),
// equal to torch._fake_quantize_learnable_per_tensor_affine / _per_channel_affine: the forward
// rounds and clamps the zero point, the backward returns gradients for x, scale and zero_point
// (scaled by grad_factor; LSQ uses 1 / sqrt(numel * quant_max)).
#include <ATen/core/Tensor.h>

namespace tq {

// scale, zero_point: float32 [1] (per tensor) or [C] (per channel), usually parameters.
at::Tensor fake_quantize_learnable_per_tensor_affine(const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& zero_point, int64_t quant_min,
                                                     int64_t quant_max, double grad_factor = 1.0);
at::Tensor fake_quantize_learnable_per_channel_affine(const at::Tensor& x, const at::Tensor& scale,
                                                      const at::Tensor& zero_point, int64_t axis, int64_t quant_min,
                                                      int64_t quant_max, double grad_factor = 1.0);

}  // namespace tq
