#pragma once
// Tensor-level entry points of tq's float kernels (kernel_table.h), the one place that picks an
// implementation by device, as ATen's DispatchStub does: each entry point checks its tensors once,
// looks up the table registered for the input's device (CPU: the copy for the instruction set in
// use, cpu_capability.h) and runs it. Outputs are allocated on the input's device.
//
// A new device is one KernelTable (src/kernels/kernel_copy.h) and one register_kernels call; an
// input on a device with no table is a tq::Error naming the device and the devices that have one.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <utility>
#include <vector>

#include "tq/kernels/kernel_table.h"

namespace tq::kernels {

using KernelTableGetter = const KernelTable& (*)();
// Registers (or replaces) the kernels for tensors on `device`; CPU is registered by tq itself.
void register_kernels(c10::DeviceType device, KernelTableGetter table);
// Removes a device's kernels (not the CPU's).
void unregister_kernels(c10::DeviceType device);
// The table for `device`; throws tq::Error, prefixed with `op`, when none is registered.
const KernelTable& kernels_for(c10::Device device, const char* op);
// Throws the same error as kernels_for when `x` is on a device with no kernels: for callers that
// check their input before anything else.
void check_kernels_exist(const at::Tensor& x, const char* op);

// All take float32 tensors of any layout (made contiguous here).
// (min, max) of x in one pass; NaN propagates into both.
std::pair<float, float> min_max(const at::Tensor& x);
// Per-channel min and max over x viewed as `layout`, as two float32 [channels] tensors.
std::pair<at::Tensor, at::Tensor> min_max_per_channel(const at::Tensor& x, ChannelLayout layout);
// torch.histc counts of x over [lo, hi] (lo < hi), float32 [bins].
at::Tensor histogram(const at::Tensor& x, float lo, float hi, int64_t bins);
// Fake-quantized x, contiguous; *mask (when mask is not null) receives the bool gradient mask.
at::Tensor fake_quantize_per_tensor(const at::Tensor& x, const PerTensorQParams& qp, at::Tensor* mask = nullptr);
// scale and zero_point: float32 [layout.channels] (zero_point integer-valued unless float_zero_point).
at::Tensor fake_quantize_per_channel(const at::Tensor& x, ChannelLayout layout, const at::Tensor& scale,
                                     const at::Tensor& zero_point, float quant_min, float quant_max,
                                     bool float_zero_point, at::Tensor* mask = nullptr);
// The integers of a per-tensor quantization, int64, clamped to [quant_min, quant_max].
at::Tensor quantize_per_tensor(const at::Tensor& x, float scale, int64_t zero_point, int64_t quant_min,
                               int64_t quant_max);
// dy * mask (mask: bool, dy's shape).
at::Tensor masked_grad(const at::Tensor& dy, const at::Tensor& mask);

// LSQ's backward: dx like x; dscale and dzero_point float64, [1] per tensor or [channels] per channel.
struct LearnableGradients {
  at::Tensor dx;
  at::Tensor dscale;
  at::Tensor dzero_point;
};
LearnableGradients learnable_backward_per_tensor(const at::Tensor& x, const at::Tensor& dy, float scale,
                                                 float zero_point, float quant_min, float quant_max,
                                                 float grad_factor);
// scale and zero_point: float32 [layout.channels].
LearnableGradients learnable_backward_per_channel(const at::Tensor& x, const at::Tensor& dy, ChannelLayout layout,
                                                  const at::Tensor& scale, const at::Tensor& zero_point,
                                                  float quant_min, float quant_max, float grad_factor);

}  // namespace tq::kernels
