#pragma once
// Fake quantization (quantize then dequantize in float) with the straight-through gradient:
// dL/dx = dL/dy where quant_min <= round(x / scale) + zero_point <= quant_max, else 0.
// Results equal torch.fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine for
// every finite input; NaN stays NaN and +-Inf clamp to the range ends (PyTorch maps both to
// quant_min through an undefined int64 cast). Inputs are float32 tensors on the CPU (or CUDA
// where tq was built with it).
//
//   auto y = tq::fake_quantize_per_tensor_affine(x, /*scale=*/0.1, /*zero_point=*/3, 0, 255);
//   y.sum().backward();  // x.grad() is the clamping mask
#include <ATen/core/Tensor.h>

#include <tuple>

#include "tq/kernels/fake_quantize_kernels.h"

namespace tq {

at::Tensor fake_quantize_per_tensor_affine(const at::Tensor& x, double scale, int64_t zero_point, int64_t quant_min,
                                           int64_t quant_max);
// Tensor qparams ([1] or 0-dim), as FakeQuantize modules hold them.
at::Tensor fake_quantize_per_tensor_affine(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                           int64_t quant_min, int64_t quant_max);
// scale: float [C]; zero_point: int [C], or float [C] for float-qparams schemes.
at::Tensor fake_quantize_per_channel_affine(const at::Tensor& x, const at::Tensor& scale,
                                            const at::Tensor& zero_point, int64_t axis, int64_t quant_min,
                                            int64_t quant_max);

// Forward with the gradient mask, no autograd (ATen's *_cachemask ops): returns (y, mask).
std::tuple<at::Tensor, at::Tensor> fake_quantize_per_tensor_affine_cachemask(const at::Tensor& x, double scale,
                                                                             int64_t zero_point, int64_t quant_min,
                                                                             int64_t quant_max);
std::tuple<at::Tensor, at::Tensor> fake_quantize_per_channel_affine_cachemask(const at::Tensor& x,
                                                                              const at::Tensor& scale,
                                                                              const at::Tensor& zero_point,
                                                                              int64_t axis, int64_t quant_min,
                                                                              int64_t quant_max);

// Output written into an existing tensor (no allocation): y must be float32, contiguous, x's shape.
void fake_quantize_per_tensor_affine_out(const at::Tensor& x, double scale, int64_t zero_point, int64_t quant_min,
                                         int64_t quant_max, at::Tensor& y);

// The [outer, channels, inner] view of a contiguous tensor around `axis` (negative axes allowed).
kernels::ChannelLayout channel_layout(const at::Tensor& x, int64_t axis, const char* op);

}  // namespace tq
