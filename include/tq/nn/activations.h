#pragma once
// Quantizable activations: ReLU6, Hardswish, ELU, LeakyReLU, Sigmoid. Float and observed modes
// compute in float; converted, they run the int8 kernels with their own output qparams
// (ReLU6 keeps its input's). Sigmoid always observes with fixed qparams for [0, 1) (scale 1/256,
// zero point 0), as PyTorch does for it.
#include <torch/nn/pimpl.h>

#include "tq/nn/output_qparams.h"
#include "tq/nn/quantizable.h"

namespace tq::nn {

enum class ActivationKind { ReLU6, Hardswish, ELU, LeakyReLU, Sigmoid };

class ActivationImpl : public OutputQuantizedModule {
 public:
  at::Tensor forward(const at::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  ActivationKind kind() const { return kind_; }

 protected:
  ActivationImpl(ActivationKind kind, std::string name, double parameter = 0.0);
  bool has_output_qparams() const override { return kind_ != ActivationKind::ReLU6; }
  bool has_reference_form() const override { return false; }
  QuantizerFactory output_quantizer(const QConfig& qconfig, bool qat) const override;

 private:
  at::Tensor float_forward(const at::Tensor& x) const;
  ActivationKind kind_;
  double parameter_;  // ELU alpha, LeakyReLU negative slope
};

class ReLU6Impl : public ActivationImpl {
 public:
  ReLU6Impl() : ActivationImpl(ActivationKind::ReLU6, "ReLU6") {}
};
TORCH_MODULE(ReLU6);

class HardswishImpl : public ActivationImpl {
 public:
  HardswishImpl() : ActivationImpl(ActivationKind::Hardswish, "Hardswish") {}
};
TORCH_MODULE(Hardswish);

class ELUImpl : public ActivationImpl {
 public:
  explicit ELUImpl(double alpha = 1.0) : ActivationImpl(ActivationKind::ELU, "ELU", alpha) {}
};
TORCH_MODULE(ELU);

class LeakyReLUImpl : public ActivationImpl {
 public:
  explicit LeakyReLUImpl(double negative_slope = 0.01)
      : ActivationImpl(ActivationKind::LeakyReLU, "LeakyReLU", negative_slope) {}
};
TORCH_MODULE(LeakyReLU);

class SigmoidImpl : public ActivationImpl {
 public:
  SigmoidImpl() : ActivationImpl(ActivationKind::Sigmoid, "Sigmoid") {}
};
TORCH_MODULE(Sigmoid);

}  // namespace tq::nn
