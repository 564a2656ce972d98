#include "tq/nn/modules.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <sstream>
#include <variant>

#include "tq/core/check.h"
#include "tq/observers/batch_range_reduction.h"
#include "tq/numerics/batch_norm_folding.h"

namespace tq::nn {

// LibTorch 1.13's options hold c10::variant, 2.x std::variant: unqualified calls find either.

// ---- Linear ----
LinearImpl::LinearImpl(const torch::nn::LinearOptions& options) : WeightedModule("Linear"), options_(options) {
  TQ_CHECK(options.in_features() > 0 && options.out_features() > 0, "Linear", "in_features (",
           options.in_features(), ") and out_features (", options.out_features(), ") must be positive");
  weight_ = register_parameter("weight", at::empty({options.out_features(), options.in_features()}));
  // torch::nn::Linear's initialization: kaiming_uniform(a=sqrt(5)), bias U(-1/sqrt(fan_in), ..).
  torch::nn::init::kaiming_uniform_(weight_, std::sqrt(5));
  if (options.bias()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    bias_ = register_parameter("bias", at::empty({options.out_features()}));
    torch::nn::init::uniform_(bias_, -bound, bound);
  }
}

at::Tensor LinearImpl::float_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const {
  TQ_CHECK(x.size(-1) == options_.in_features(), name(), "input has ", x.size(-1), " features, expected ",
           options_.in_features());
  return at::linear(x, weight, bias);
}

void LinearImpl::fold_batch_norm(const at::Tensor& mean, const at::Tensor& var, const at::Tensor& gamma,
                                 const at::Tensor& beta, double eps) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "fuse before prepare");
  TQ_CHECK(mean.numel() == options_.out_features(), name(), "batch norm has ", mean.numel(), " features, the linear ",
           options_.out_features(), " outputs");
  at::NoGradGuard no_grad;
  const auto folded = fuse_linear_bn_weights(weight_, bias_, mean, var, eps, gamma, beta);
  weight_.copy_(folded.weight);
  const auto& new_bias = folded.bias;
  if (bias_.defined()) {
    bias_.copy_(new_bias);
  } else {
    bias_ = register_parameter("bias", new_bias.clone());
    options_.bias(true);
  }
}

kernels::int8::PackedWeight LinearImpl::prepack(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias) const {
  return kernels::int8::prepack_linear(weight_q, bias);
}

at::Tensor LinearImpl::int8_op(const at::Tensor& x_q, double scale, int64_t zero_point) const {
  TQ_CHECK(x_q.size(-1) == options_.in_features(), name(), "input has ", x_q.size(-1), " features, expected ",
           options_.in_features());
  return kernels::int8::linear(x_q, packed_, scale, zero_point, relu_);
}

std::string LinearImpl::describe() const {
  std::ostringstream s;
  s << "in_features=" << options_.in_features() << ", out_features=" << options_.out_features()
    << ", bias=" << (options_.bias() ? "true" : "false");
  return s.str();
}

// ---- Conv2d ----
at::Tensor Conv2dImpl::float_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const {
  auto y = ConvNdImpl<2>::float_op(x, weight, bias);
  if (bn_) {
    // Fused for QAT (outside QAT mode): conv then the live batch norm.
    const bool train = bn_->is_training() && !freeze_bn_;
    if (train) bn_->num_batches_tracked.add_(1);
    y = at::batch_norm(y, bn_->weight, bn_->bias, bn_->running_mean, bn_->running_var, train, bn_->momentum(),
                       bn_->eps(), true);
  }
  return y;
}

void Conv2dImpl::attach_batch_norm(std::shared_ptr<BatchNorm2dImpl> bn) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "fuse before prepare_qat");
  TQ_CHECK(bn->weight.numel() == options_.out_channels(), name(), "batch norm has ", bn->weight.numel(),
           " features, the conv ", options_.out_channels(), " output channels");
  bn_ = std::move(bn);
}

bool Conv2dImpl::qat_forward_override(const at::Tensor& x, at::Tensor& out) {
  if (!bn_) return false;
  // PyTorch's _ConvBnNd._forward: scale the weight by gamma / running_std, fake-quantize it,
  // convolve without bias, undo the scale, add the bias, then batch norm (batch statistics while
  // training, running ones once frozen).
  const auto running_std = at::sqrt(bn_->running_var + bn_->eps());
  const auto scale_factor = bn_->weight / running_std;
  const auto scaled_weight = observers::same_on_every_rank(
      [&] { return run_quantizer(*weight_fake_quant_, weight_ * scale_factor.reshape({-1, 1, 1, 1})); });
  // A zero bias, as PyTorch passes one: the convolution then runs the same kernel, bit for bit.
  const auto zero_bias = at::zeros({options_.out_channels()}, x.options());
  auto y = at::conv2d(x, scaled_weight, zero_bias, stride(), padding(), dilation(), options_.groups());
  // bias + y / scale_factor in one pass (the same two roundings as PyTorch's divide, then add).
  y = bias_.defined() ? at::addcdiv(bias_.reshape({1, -1, 1, 1}), y, scale_factor.reshape({1, -1, 1, 1}))
                      : y / scale_factor.reshape({1, -1, 1, 1});
  const bool train = bn_->is_training() && !freeze_bn_;
  if (train) bn_->num_batches_tracked.add_(1);  // as the batch norm module's own forward counts
  out = at::batch_norm(y, bn_->weight, bn_->bias, bn_->running_mean, bn_->running_var, train, bn_->momentum(),
                       bn_->eps(), true);
  return true;
}

void Conv2dImpl::convert(const std::string& qualified_name) {
  if (bn_) {
    // Fold the trained batch norm's running statistics, then quantize as usual.
    auto bn = std::move(bn_);
    const auto saved_mode = mode_;
    mode_ = QuantMode::Float;
    fold_batch_norm(bn->running_mean, bn->running_var, bn->weight, bn->bias, bn->eps());
    bn->mark_folded(/*into_weights=*/true);
    mode_ = saved_mode;
  }
  WeightedModule::convert(qualified_name);
}

void Conv2dImpl::fold_batch_norm(const at::Tensor& mean, const at::Tensor& var, const at::Tensor& gamma,
                                 const at::Tensor& beta, double eps) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "fuse before prepare");
  TQ_CHECK(mean.numel() == options_.out_channels(), name(), "batch norm has ", mean.numel(), " features, the conv ",
           options_.out_channels(), " output channels");
  at::NoGradGuard no_grad;
  const auto folded = fuse_conv_bn_weights(weight_, bias_, mean, var, eps, gamma, beta);
  weight_.copy_(folded.weight);
  const auto& new_bias = folded.bias;
  if (bias_.defined()) {
    bias_.copy_(new_bias);
  } else {
    bias_ = register_parameter("bias", new_bias.clone());
    options_.bias(true);
  }
}

// ---- BatchNorm2d ----
BatchNorm2dImpl::BatchNorm2dImpl(int64_t n, double eps, double momentum)
    : OutputQuantizedModule("BatchNorm2d"), eps_(eps), momentum_(momentum) {
  weight = register_parameter("weight", at::ones({n}));
  bias = register_parameter("bias", at::zeros({n}));
  running_mean = register_buffer("running_mean", at::zeros({n}));
  running_var = register_buffer("running_var", at::ones({n}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor BatchNorm2dImpl::forward(const at::Tensor& x) {
  if (folded_) return x;
  if (mode_ == QuantMode::Quantized) {
    return kernels::int8::batch_norm2d(x, weight, bias, running_mean, running_var, eps_, out_.scale(),
                                       out_.zero_point());
  }
  TQ_CHECK(!x.is_quantized(), name(), "got an int8 input but was not converted: prepare and convert it, or fold "
                                      "it into the preceding Conv2d with fuse_modules");
  if (is_training()) num_batches_tracked.add_(1);
  auto y = at::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum_, eps_, true);
  return mode_ == QuantMode::Observed ? out_.observe(y) : y;
}

// ---- BatchNorm1d ----
BatchNorm1dImpl::BatchNorm1dImpl(int64_t n, double eps, double momentum)
    : torch::nn::Module("BatchNorm1d"), eps_(eps), momentum_(momentum) {
  weight = register_parameter("weight", at::ones({n}));
  bias = register_parameter("bias", at::zeros({n}));
  running_mean = register_buffer("running_mean", at::zeros({n}));
  running_var = register_buffer("running_var", at::ones({n}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor BatchNorm1dImpl::forward(const at::Tensor& x) {
  if (folded_) return x;
  TQ_CHECK(!x.is_quantized(), name(), "got an int8 input: fold it into the preceding Linear with fuse_modules");
  if (is_training()) num_batches_tracked.add_(1);
  return at::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum_, eps_, true);
}

// ---- DeQuantStub ----
at::Tensor DeQuantStubImpl::forward(const at::Tensor& x) { return x.is_quantized() ? kernels::int8::dequantize(x) : x; }

// ---- QuantStub ----
at::Tensor QuantStubImpl::forward(const at::Tensor& x) {
  switch (mode_) {
    case QuantMode::Observed:
    case QuantMode::QAT:
      return out_.observe(x);
    case QuantMode::Reference:
      return out_.fake_quantize(x);
    case QuantMode::Quantized:
      TQ_CHECK(x.scalar_type() == at::kFloat, name(), "expects float32 input, got ", x.scalar_type());
      return kernels::int8::quantize_activation(x, out_.scale(), out_.zero_point());
    default:
      return x;
  }
}

// ---- FloatFunctional ----
at::Tensor FloatFunctionalImpl::finish(const at::Tensor& y) {
  if (mode_ == QuantMode::Reference) return out_.fake_quantize(y);
  return out_.observe(y);
}

at::Tensor FloatFunctionalImpl::add(const at::Tensor& a, const at::Tensor& b) {
  if (mode_ == QuantMode::Quantized) return kernels::int8::add(a, b, out_.scale(), out_.zero_point(), false);
  return finish(a + b);
}

at::Tensor FloatFunctionalImpl::add_relu(const at::Tensor& a, const at::Tensor& b) {
  if (mode_ == QuantMode::Quantized) return kernels::int8::add(a, b, out_.scale(), out_.zero_point(), true);
  return finish(at::relu(a + b));
}

at::Tensor FloatFunctionalImpl::mul(const at::Tensor& a, const at::Tensor& b) {
  if (mode_ == QuantMode::Quantized) return kernels::int8::mul(a, b, out_.scale(), out_.zero_point());
  return finish(a * b);
}

at::Tensor FloatFunctionalImpl::cat(const std::vector<at::Tensor>& xs, int64_t dim) {
  if (mode_ == QuantMode::Quantized) return kernels::int8::cat(xs, dim, out_.scale(), out_.zero_point());
  return finish(at::cat(xs, dim));
}

}  // namespace tq::nn
