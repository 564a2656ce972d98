#include "tq/numerics/fake_quantize_learnable.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "tq/core/check.h"
#include "tq/kernels/tensor_kernels.h"
#include "tq/numerics/fake_quantize.h"

namespace tq {
namespace {

void check_args(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point, int64_t quant_min,
                int64_t quant_max, const char* op) {
  TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, op, "input must be a float32 tensor");
  kernels::check_kernels_exist(x, op);
  TQ_CHECK(scale.defined() && scale.scalar_type() == at::kFloat, op, "scale must be a float32 tensor");
  TQ_CHECK(zero_point.defined() && zero_point.scalar_type() == at::kFloat, op, "zero_point must be a float32 tensor");
  TQ_CHECK(quant_min <= 0 && 0 <= quant_max && quant_min < quant_max, op,
           "the quantization range must include 0 and be non-empty, got [", quant_min, ", ", quant_max, "]");
}

// ATen rounds a learnable zero point half to even, then clamps it to the range.
float rounded_zero_point(float zp, int64_t quant_min, int64_t quant_max) {
  return std::min(std::max(std::nearbyint(zp), static_cast<float>(quant_min)), static_cast<float>(quant_max));
}

struct LearnablePerTensorFn : public torch::autograd::Function<LearnablePerTensorFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& zero_point, int64_t quant_min, int64_t quant_max, double grad_factor) {
    const char* op = "fake_quantize_learnable_per_tensor_affine";
    TQ_CHECK(scale.numel() == 1 && zero_point.numel() == 1, op, "scale and zero_point must hold one value, got ",
             scale.sizes(), " and ", zero_point.sizes());
    const float s = scale.item<float>();
    const float z = rounded_zero_point(zero_point.item<float>(), quant_min, quant_max);
    ctx->save_for_backward({x, scale, zero_point});
    ctx->saved_data["quant_min"] = quant_min;
    ctx->saved_data["quant_max"] = quant_max;
    ctx->saved_data["grad_factor"] = grad_factor;
    return tq::fake_quantize_per_tensor_affine(x, s, static_cast<int64_t>(z), quant_min, quant_max);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const int64_t qmin = ctx->saved_data["quant_min"].toInt(), qmax = ctx->saved_data["quant_max"].toInt();
    const float s = saved[1].item<float>();
    const float z = rounded_zero_point(saved[2].item<float>(), qmin, qmax);
    const auto g = kernels::learnable_backward_per_tensor(
        saved[0], grads[0], s, z, static_cast<float>(qmin), static_cast<float>(qmax),
        static_cast<float>(ctx->saved_data["grad_factor"].toDouble()));
    return {g.dx, g.dscale.to(at::kFloat).reshape(saved[1].sizes()),
            g.dzero_point.to(at::kFloat).reshape(saved[2].sizes()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct LearnablePerChannelFn : public torch::autograd::Function<LearnablePerChannelFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& zero_point, int64_t axis, int64_t quant_min, int64_t quant_max,
                            double grad_factor) {
    const auto zp_rounded = zero_point.detach().round().clamp(quant_min, quant_max);
    ctx->save_for_backward({x, scale, zp_rounded});
    ctx->saved_data["axis"] = axis;
    ctx->saved_data["quant_min"] = quant_min;
    ctx->saved_data["quant_max"] = quant_max;
    ctx->saved_data["grad_factor"] = grad_factor;
    return tq::fake_quantize_per_channel_affine(x, scale.detach(), zp_rounded.to(at::kInt), axis, quant_min,
                                                quant_max);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const int64_t qmin = ctx->saved_data["quant_min"].toInt(), qmax = ctx->saved_data["quant_max"].toInt();
    const auto layout =
        channel_layout(saved[0], ctx->saved_data["axis"].toInt(), "fake_quantize_learnable_per_channel_affine");
    const auto g = kernels::learnable_backward_per_channel(
        saved[0], grads[0], layout, saved[1], saved[2], static_cast<float>(qmin), static_cast<float>(qmax),
        static_cast<float>(ctx->saved_data["grad_factor"].toDouble()));
    return {g.dx, g.dscale.to(at::kFloat), g.dzero_point.to(at::kFloat), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor fake_quantize_learnable_per_tensor_affine(const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& zero_point, int64_t quant_min,
                                                     int64_t quant_max, double grad_factor) {
  check_args(x, scale, zero_point, quant_min, quant_max, "fake_quantize_learnable_per_tensor_affine");
  return LearnablePerTensorFn::apply(x, scale, zero_point, quant_min, quant_max, grad_factor);
}

at::Tensor fake_quantize_learnable_per_channel_affine(const at::Tensor& x, const at::Tensor& scale,
                                                      const at::Tensor& zero_point, int64_t axis, int64_t quant_min,
                                                      int64_t quant_max, double grad_factor) {
  const char* op = "fake_quantize_learnable_per_channel_affine";
  check_args(x, scale, zero_point, quant_min, quant_max, op);
  const auto layout = channel_layout(x, axis, op);
  TQ_CHECK(scale.dim() == 1 && scale.numel() == layout.channels && zero_point.sizes() == scale.sizes(), op,
           "scale and zero_point must have shape [", layout.channels, "], got ", scale.sizes(), " and ",
           zero_point.sizes());
  return LearnablePerChannelFn::apply(x, scale, zero_point, axis, quant_min, quant_max, grad_factor);
}

}  // namespace tq
