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

class ActivationImpl : public torch::nn::Module, public Quantizable {
 public:
  at::Tensor forward(const at::Tensor& x);
  void prepare(const QConfig& qconfig) override;
  bool prepare_qat(const QConfig& qconfig) override;
  void convert(const std::string& qualified_name) override;
  void prepare_quantized_layout(bool dynamic) override;
  void unprepare() override;
  void pretty_print(std::ostream& stream) const override;
  ActivationKind kind() const { return kind_; }

 protected:
  ActivationImpl(ActivationKind kind, std::string name, double parameter = 0.0);

 private:
  at::Tensor float_forward(const at::Tensor& x) const;
  QuantizerFactory observer_for(const QConfig& qconfig) const;
  ActivationKind kind_;
  double parameter_;  // ELU alpha, LeakyReLU negative slope
  OutputQParams out_;
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
