#include "tq/nn/activations.h"

#include <ATen/ATen.h>

#include "tq/core/check.h"
#include "tq/fake_quant/default_fake_quants.h"
#include "tq/kernels/int8.h"
#include "tq/observers/default_observers.h"

namespace tq::nn {

ActivationImpl::ActivationImpl(ActivationKind kind, std::string name, double parameter)
    : OutputQuantizedModule(std::move(name)), kind_(kind), parameter_(parameter) {}

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

QuantizerFactory ActivationImpl::output_quantizer(const QConfig& qconfig, bool qat) const {
  if (kind_ != ActivationKind::Sigmoid) return qconfig.activation;
  return qat ? QuantizerFactory(fake_quant::default_fixed_qparams_range_0to1_fake_quant())
             : QuantizerFactory(observers::default_fixed_qparams_range_0to1_observer());
}

void ActivationImpl::pretty_print(std::ostream& s) const {
  s << name() << "(mode=" << to_string(mode_);
  if (out_.converted()) s << ", scale=" << out_.scale() << ", zero_point=" << out_.zero_point();
  s << ")";
}

}  // namespace tq::nn
