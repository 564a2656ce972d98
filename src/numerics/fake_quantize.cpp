#include "tq/numerics/fake_quantize.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "tq/core/check.h"
#include "tq/kernels/tensor_kernels.h"

namespace tq {
namespace {

void check_input(const at::Tensor& x, const char* op) {
  TQ_CHECK(x.defined(), op, "input is undefined");
  TQ_CHECK(x.scalar_type() == at::kFloat, op, "input must be float32, got ", x.scalar_type());
  kernels::check_kernels_exist(x, op);
}

void check_range(int64_t quant_min, int64_t quant_max, const char* op) {
  TQ_CHECK(quant_min <= quant_max, op, "quant_min (", quant_min, ") must be <= quant_max (", quant_max, ")");
}

void check_scale(float scale, const char* op) {
  TQ_CHECK(std::isfinite(scale) && scale > 0, op, "scale must be positive and finite, got ", scale);
  // The kernels multiply by 1 / scale: a subnormal scale (1e-40) would make that Inf and the
  // output NaN.
  TQ_CHECK(std::isfinite(1.0f / scale), op, "scale ", scale, " is too small: its reciprocal overflows float32");
}

void check_zero_point(double zp, int64_t quant_min, int64_t quant_max, const char* op) {
  TQ_CHECK(zp >= quant_min && zp <= quant_max, op, "zero_point (", zp, ") must be between quant_min (", quant_min,
           ") and quant_max (", quant_max, ")");
}

kernels::PerTensorQParams per_tensor_qparams(double scale, int64_t zero_point, int64_t quant_min, int64_t quant_max,
                                             const char* op) {
  check_range(quant_min, quant_max, op);
  check_scale(static_cast<float>(scale), op);
  check_zero_point(static_cast<double>(zero_point), quant_min, quant_max, op);
  return {static_cast<float>(scale), static_cast<float>(zero_point), static_cast<float>(quant_min),
          static_cast<float>(quant_max), false};
}

// Runs the kernel; mask only when asked.
at::Tensor run_per_tensor(const at::Tensor& x, const kernels::PerTensorQParams& qp, at::Tensor* mask) {
  return kernels::fake_quantize_per_tensor(x, qp, mask);
}

struct ChannelQParams {
  at::Tensor scale;  // float32
  at::Tensor zero_point;  // float32
  float quant_min, quant_max;
  bool float_zero_point;
  kernels::ChannelLayout layout;
};

ChannelQParams per_channel_qparams(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                   int64_t axis, int64_t quant_min, int64_t quant_max, const char* op) {
  check_range(quant_min, quant_max, op);
  ChannelQParams r;
  r.layout = channel_layout(x, axis, op);
  TQ_CHECK(scale.dim() == 1 && scale.numel() == r.layout.channels, op, "scale must have shape [",
           r.layout.channels, "] (the size of axis ", axis, "), got ", scale.sizes());
  TQ_CHECK(zero_point.dim() == 1 && zero_point.numel() == r.layout.channels, op, "zero_point must have shape [",
           r.layout.channels, "], got ", zero_point.sizes());
  const bool float_zp = at::isFloatingType(zero_point.scalar_type());
  // Checked on the host, whatever device they live on.
  r.scale = scale.to(at::kCPU, at::kFloat).contiguous();
  r.zero_point = zero_point.to(at::kCPU, at::kFloat).contiguous();
  const float* s = r.scale.data_ptr<float>();
  const float* z = r.zero_point.data_ptr<float>();
  for (int64_t c = 0; c < r.layout.channels; ++c) {
    check_scale(s[c], op);
    if (!float_zp) check_zero_point(z[c], quant_min, quant_max, op);
  }
  r.quant_min = static_cast<float>(quant_min);
  r.quant_max = static_cast<float>(quant_max);
  r.float_zero_point = float_zp;
  return r;
}

at::Tensor run_per_channel(const at::Tensor& x, const ChannelQParams& cq, at::Tensor* mask) {
  return kernels::fake_quantize_per_channel(x, cq.layout, cq.scale, cq.zero_point, cq.quant_min, cq.quant_max,
                                            cq.float_zero_point, mask);
}

// Autograd: forward keeps the mask, backward is grad * mask (no second kernel over x).
struct FakeQuantizePerTensorFn : public torch::autograd::Function<FakeQuantizePerTensorFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, double scale,
                            int64_t zero_point, int64_t quant_min, int64_t quant_max) {
    const auto qp = per_tensor_qparams(scale, zero_point, quant_min, quant_max, "fake_quantize_per_tensor_affine");
    at::Tensor mask;
    at::Tensor y = run_per_tensor(x, qp, &mask);
    ctx->save_for_backward({mask});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto mask = ctx->get_saved_variables()[0];
    return {kernels::masked_grad(grads[0], mask), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct FakeQuantizePerChannelFn : public torch::autograd::Function<FakeQuantizePerChannelFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& zero_point, int64_t axis, int64_t quant_min, int64_t quant_max) {
    const auto cq =
        per_channel_qparams(x, scale, zero_point, axis, quant_min, quant_max, "fake_quantize_per_channel_affine");
    at::Tensor mask;
    at::Tensor y = run_per_channel(x, cq, &mask);
    ctx->save_for_backward({mask});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto mask = ctx->get_saved_variables()[0];
    return {kernels::masked_grad(grads[0], mask), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool needs_grad(const at::Tensor& x) { return x.requires_grad() && at::GradMode::is_enabled(); }

double scalar_of(const at::Tensor& t, const char* what, const char* op) {
  TQ_CHECK(t.defined() && t.numel() == 1, op, what, " must hold exactly one value, got shape ",
           t.defined() ? t.sizes() : at::IntArrayRef{});
  return t.item<double>();
}

}  // namespace

kernels::ChannelLayout channel_layout(const at::Tensor& x, int64_t axis, const char* op) {
  const int64_t dim = x.dim();
  TQ_CHECK(dim > 0, op, "per-channel quantization needs a tensor with at least one dimension");
  TQ_CHECK(axis >= -dim && axis < dim, op, "axis ", axis, " is out of range for a tensor of ", dim, " dimensions");
  const int64_t ax = axis < 0 ? axis + dim : axis;
  kernels::ChannelLayout l{1, x.size(ax), 1};
  for (int64_t d = 0; d < ax; ++d) l.outer *= x.size(d);
  for (int64_t d = ax + 1; d < dim; ++d) l.inner *= x.size(d);
  return l;
}

at::Tensor fake_quantize_per_tensor_affine(const at::Tensor& x, double scale, int64_t zero_point, int64_t quant_min,
                                           int64_t quant_max) {
  const char* op = "fake_quantize_per_tensor_affine";
  check_input(x, op);
  if (needs_grad(x)) return FakeQuantizePerTensorFn::apply(x, scale, zero_point, quant_min, quant_max);
  return run_per_tensor(x, per_tensor_qparams(scale, zero_point, quant_min, quant_max, op), nullptr);
}

at::Tensor fake_quantize_per_tensor_affine(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                           int64_t quant_min, int64_t quant_max) {
  const char* op = "fake_quantize_per_tensor_affine";
  const double zp = scalar_of(zero_point, "zero_point", op);
  TQ_CHECK(zp == std::nearbyint(zp), op, "zero_point must be an integer, got ", zp);
  return tq::fake_quantize_per_tensor_affine(x, scalar_of(scale, "scale", op), static_cast<int64_t>(zp), quant_min,
                                         quant_max);
}

at::Tensor fake_quantize_per_channel_affine(const at::Tensor& x, const at::Tensor& scale,
                                            const at::Tensor& zero_point, int64_t axis, int64_t quant_min,
                                            int64_t quant_max) {
  const char* op = "fake_quantize_per_channel_affine";
  check_input(x, op);
  TQ_CHECK(scale.defined() && zero_point.defined(), op, "scale and zero_point must be defined");
  if (needs_grad(x)) {
    return FakeQuantizePerChannelFn::apply(x, scale, zero_point, axis, quant_min, quant_max);
  }
  return run_per_channel(x, per_channel_qparams(x, scale, zero_point, axis, quant_min, quant_max, op), nullptr);
}

std::tuple<at::Tensor, at::Tensor> fake_quantize_per_tensor_affine_cachemask(const at::Tensor& x, double scale,
                                                                             int64_t zero_point, int64_t quant_min,
                                                                             int64_t quant_max) {
  const char* op = "fake_quantize_per_tensor_affine_cachemask";
  check_input(x, op);
  at::Tensor mask;
  at::Tensor y = run_per_tensor(x, per_tensor_qparams(scale, zero_point, quant_min, quant_max, op), &mask);
  return {y, mask};
}

std::tuple<at::Tensor, at::Tensor> fake_quantize_per_channel_affine_cachemask(const at::Tensor& x,
                                                                              const at::Tensor& scale,
                                                                              const at::Tensor& zero_point,
                                                                              int64_t axis, int64_t quant_min,
                                                                              int64_t quant_max) {
  const char* op = "fake_quantize_per_channel_affine_cachemask";
  check_input(x, op);
  at::Tensor mask;
  at::Tensor y = run_per_channel(x, per_channel_qparams(x, scale, zero_point, axis, quant_min, quant_max, op), &mask);
  return {y, mask};
}

void fake_quantize_per_tensor_affine_out(const at::Tensor& x, double scale, int64_t zero_point, int64_t quant_min,
                                         int64_t quant_max, at::Tensor& y) {
  const char* op = "fake_quantize_per_tensor_affine_out";
  check_input(x, op);
  TQ_CHECK(y.defined() && y.scalar_type() == at::kFloat && y.is_contiguous() && y.sizes() == x.sizes(), op,
           "output must be a contiguous float32 tensor of shape ", x.sizes());
  const auto qp = per_tensor_qparams(scale, zero_point, quant_min, quant_max, op);
  TQ_CHECK(y.device() == x.device(), op, "output is on ", y.device(), ", the input on ", x.device());
  const auto xc = x.contiguous();
  kernels::kernels_for(x.device(), op).fake_quantize_per_tensor(xc.data_ptr<float>(), y.data_ptr<float>(), nullptr,
                                                                 xc.numel(), qp);
}

}  // namespace tq
