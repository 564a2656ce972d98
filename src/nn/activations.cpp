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
    case QuantMode::Observed:
    case QuantMode::QAT:
      return out_.observe(float_forward(x));
    case QuantMode::Quantized: {
      if (!x.is_quantized()) return float_forward(x);
      const double s = out_.converted() ? out_.scale() : 0.0;
      const int64_t z = out_.converted() ? out_.zero_point() : 0;
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
  if (kind_ != ActivationKind::ReLU6) out_.attach(*this, observer_for(qconfig));
  mode_ = QuantMode::Observed;
}

bool ActivationImpl::prepare_qat(const QConfig& qconfig) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "already prepared (", to_string(mode_), ")");
  if (kind_ == ActivationKind::Sigmoid) {
    out_.attach(*this, fake_quant::default_fixed_qparams_range_0to1_fake_quant());
  } else if (kind_ != ActivationKind::ReLU6) {
    out_.attach(*this, qconfig.activation);
  }
  mode_ = QuantMode::QAT;
  return true;
}

void ActivationImpl::convert(const std::string& qualified_name) {
  if (out_.attached()) out_.convert(*this, qualified_name.empty() ? name() : qualified_name);
  mode_ = QuantMode::Quantized;
}

void ActivationImpl::unprepare() {
  if (mode_ != QuantMode::Observed && mode_ != QuantMode::QAT) return;
  out_.detach(*this);
  mode_ = QuantMode::Float;
}

void ActivationImpl::prepare_quantized_layout(bool /*dynamic*/) {
  if (kind_ != ActivationKind::ReLU6) out_.layout(*this);
  mode_ = QuantMode::Quantized;
}

void ActivationImpl::pretty_print(std::ostream& s) const {
  s << name() << "(mode=" << to_string(mode_);
  if (out_.converted()) s << ", scale=" << out_.scale() << ", zero_point=" << out_.zero_point();
  s << ")";
}

}  // namespace tq::nn
