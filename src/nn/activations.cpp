#include "tq/nn/activations.h"

#include <ATen/ATen.h>

#include "tq/core/check.h"
#include "tq/fake_quant/default_fake_quants.h"
#include "tq/kernels/int8.h"
#include "tq/observers/default_observers.h"

namespace tq::nn {

ActivationImpl::ActivationImpl(ActivationKind kind, std::string name, double parameter)
    : torch::nn::Module(std::move(name)), kind_(kind), parameter_(parameter) {}

at::Tensor ActivationImpl::float_forward(const at::Tensor& x) const {
  switch (kind_) {
    case ActivationKind::ReLU6: return at::hardtanh(x, 0.0, 6.0);
    case ActivationKind::Hardswish: return at::hardswish(x);
    case ActivationKind::ELU: return at::elu(x, parameter_);
    case ActivationKind::LeakyReLU: return at::leaky_relu(x, parameter_);
    case ActivationKind::Sigmoid: return at::sigmoid(x);
  }
  return x;
}

at::Tensor ActivationImpl::forward(const at::Tensor& x) {
  switch (mode_) {
    case QuantMode::Observed: {
      auto y = float_forward(x);
      if (activation_post_process_) run_quantizer(*activation_post_process_, y.detach());
      return y;
    }
    case QuantMode::QAT: {
      auto y = float_forward(x);
      return activation_post_process_ ? run_quantizer(*activation_post_process_, y) : y;
    }
    case QuantMode::Quantized: {
      if (!x.is_quantized()) return float_forward(x);
      const double s = scale_.defined() ? scale_.item<double>() : 0.0;
      const int64_t z = zero_point_.defined() ? zero_point_.item<int64_t>() : 0;
      switch (kind_) {
        case ActivationKind::ReLU6: return kernels::int8::relu6(x);
        case ActivationKind::Hardswish: return kernels::int8::hardswish(x, s, z);
        case ActivationKind::ELU: return kernels::int8::elu(x, s, z, parameter_);
        case ActivationKind::LeakyReLU: return kernels::int8::leaky_relu(x, parameter_, s, z);
        case ActivationKind::Sigmoid: return kernels::int8::sigmoid(x, s, z);
      }
      return x;
    }
    default:
      return float_forward(x);
  }
}

QuantizerFactory ActivationImpl::observer_for(const QConfig& qconfig) const {
  return kind_ == ActivationKind::Sigmoid ? QuantizerFactory(observers::default_fixed_qparams_range_0to1_observer())
                                          : qconfig.activation;
}

void ActivationImpl::prepare(const QConfig& qconfig) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "already prepared (", to_string(mode_), ")");
  // ReLU6 keeps its input's qparams: nothing to observe.
  if (kind_ != ActivationKind::ReLU6) {
    activation_post_process_ = register_module("activation_post_process", observer_for(qconfig)());
  }
  mode_ = QuantMode::Observed;
}

bool ActivationImpl::prepare_qat(const QConfig& qconfig) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "already prepared (", to_string(mode_), ")");
  if (kind_ == ActivationKind::Sigmoid) {
    activation_post_process_ =
        register_module("activation_post_process", fake_quant::default_fixed_qparams_range_0to1_fake_quant()());
  } else if (kind_ != ActivationKind::ReLU6) {
    activation_post_process_ = register_module("activation_post_process", qconfig.activation());
  }
  mode_ = QuantMode::QAT;
  return true;
}

void ActivationImpl::convert(const std::string& qualified_name) {
  const std::string& who = qualified_name.empty() ? name() : qualified_name;
  if (activation_post_process_) {
    TQ_CHECK(quantizer_has_observed(*activation_post_process_), who,
             "was prepared but never calibrated: its observer saw no data");
    const auto qp = quantizer_qparams(*activation_post_process_);
    scale_ = register_buffer("scale", at::full({1}, qp.scale.item<double>(), at::kDouble));
    zero_point_ = register_buffer("zero_point", at::full({1}, qp.zero_point.item<int64_t>(), at::kLong));
    unregister_module("activation_post_process");
    activation_post_process_.reset();
  }
  mode_ = QuantMode::Quantized;
}

void ActivationImpl::prepare_quantized_layout(bool /*dynamic*/) {
  if (kind_ != ActivationKind::ReLU6) {
    scale_ = register_buffer("scale", at::ones({1}, at::kDouble));
    zero_point_ = register_buffer("zero_point", at::zeros({1}, at::kLong));
  }
  mode_ = QuantMode::Quantized;
}

void ActivationImpl::pretty_print(std::ostream& s) const {
  s << name() << "(mode=" << to_string(mode_);
  if (scale_.defined()) s << ", scale=" << scale_.item<double>() << ", zero_point=" << zero_point_.item<int64_t>();
  s << ")";
}

}  // namespace tq::nn
