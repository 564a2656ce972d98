#pragma once
// tq's quantizable drop-ins for torch::nn modules (see quantizable.h for the modes):
// Linear, Conv2d, BatchNorm2d, ReLU, QuantStub, DeQuantStub, FloatFunctional.
//
//   struct Net : torch::nn::Module {
//     tq::nn::QuantStub quant{tq::nn::QuantStub()};
//     tq::nn::Conv2d conv{tq::nn::Conv2d(torch::nn::Conv2dOptions(1, 8, 3))};
//     tq::nn::ReLU relu{tq::nn::ReLU()};
//     tq::nn::DeQuantStub dequant{tq::nn::DeQuantStub()};
//     Net() { register_module("quant", quant); register_module("conv", conv); ... }
//     at::Tensor forward(at::Tensor x) { return dequant(relu(conv(quant(x)))); }
//   };
#include <torch/nn/options/conv.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include "tq/nn/conv_nd.h"
#include "tq/nn/output_qparams.h"
#include "tq/nn/weighted.h"

namespace tq::nn {

class BatchNorm2dImpl;

class LinearImpl : public WeightedModule {
 public:
  explicit LinearImpl(const torch::nn::LinearOptions& options);
  LinearImpl(int64_t in_features, int64_t out_features) : LinearImpl(torch::nn::LinearOptions(in_features, out_features)) {}
  const torch::nn::LinearOptions& options() const { return options_; }
  // Folds an eval-mode BatchNorm1d that follows this Linear into its weight and bias.
  void fold_batch_norm(const at::Tensor& running_mean, const at::Tensor& running_var, const at::Tensor& gamma,
                       const at::Tensor& beta, double eps);

 protected:
  at::Tensor float_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const override;
  kernels::int8::PackedWeight prepack(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias) const override;
  at::Tensor int8_op(const at::Tensor& x_q, double scale, int64_t zero_point) const override;
  bool has_dynamic_form() const override { return true; }
  std::string describe() const override;

 private:
  torch::nn::LinearOptions options_;
};
TORCH_MODULE(Linear);

class Conv2dImpl : public ConvNdImpl<2> {
 public:
  explicit Conv2dImpl(const torch::nn::Conv2dOptions& options) : ConvNdImpl<2>("Conv2d", options) {}
  // Folds an eval-mode batch norm (running statistics) into this convolution's weight and bias.
  void fold_batch_norm(const at::Tensor& running_mean, const at::Tensor& running_var, const at::Tensor& gamma,
                       const at::Tensor& beta, double eps);
  // QAT fusion (PyTorch's ConvBn2d / ConvBnReLU2d): the batch norm stays live and trains; in QAT
  // mode the weight is scaled by gamma / running_std before fake quantization, and convert folds
  // the running statistics in. freeze_bn_stats switches the batch norm to its running statistics.
  void attach_batch_norm(std::shared_ptr<BatchNorm2dImpl> bn);
  void freeze_bn_stats(bool freeze = true) { freeze_bn_ = freeze; }
  bool has_attached_batch_norm() const { return bn_ != nullptr; }
  void convert(const std::string& qualified_name) override;

 protected:
  at::Tensor float_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const override;
  bool qat_forward_override(const at::Tensor& x, at::Tensor& out) override;

 private:
  std::shared_ptr<BatchNorm2dImpl> bn_;
  bool freeze_bn_ = false;
};
TORCH_MODULE(Conv2d);

// BatchNorm2d that fuse_modules can fold into the preceding Conv2d (then it passes x through);
// unfused, it is quantizable on its own (int8 batch norm with its own output qparams).
class BatchNorm2dImpl : public OutputQuantizedModule {
 public:
  explicit BatchNorm2dImpl(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  at::Tensor forward(const at::Tensor& x);
  bool participates() const override { return !folded_; }
  // Fused: the convolution before it computes it (then this passes x through). Folded into the
  // weights (post-training) its state is gone from state_dicts; attached for QAT it stays.
  bool folded() const { return folded_; }
  void mark_folded(bool into_weights) {
    folded_ = true;
    folded_into_weights_ = into_weights;
  }
  bool has_state() const override { return !folded_into_weights_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 protected:
  // Under QAT a batch norm trains in float, attached to its convolution or on its own.
  bool has_qat_form() const override { return false; }
  bool has_reference_form() const override { return false; }

 private:
  double eps_, momentum_;
  bool folded_ = false, folded_into_weights_ = false;
};
TORCH_MODULE(BatchNorm2d);

// BatchNorm1d that fuse_modules folds into the preceding Linear (then it passes x through).
class BatchNorm1dImpl : public torch::nn::Module, public StatefulModule {
 public:
  explicit BatchNorm1dImpl(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  at::Tensor forward(const at::Tensor& x);
  bool folded() const { return folded_; }
  void mark_folded() { folded_ = true; }
  bool has_state() const override { return !folded_; }
  double eps() const { return eps_; }
  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  double eps_, momentum_;
  bool folded_ = false;
};
TORCH_MODULE(BatchNorm1d);

// ReLU that fuse_modules can fold into the preceding Conv2d / Linear. Works on quantized
// tensors as they are (ReLU keeps the input's qparams).
class ReLUImpl : public torch::nn::Module {
 public:
  ReLUImpl() : torch::nn::Module("ReLU") {}
  at::Tensor forward(const at::Tensor& x) { return folded_ ? x : at::relu(x); }
  void mark_folded() { folded_ = true; }
  bool folded() const { return folded_; }

 private:
  bool folded_ = false;
};
TORCH_MODULE(ReLU);

// Marks where float input becomes quantized: observes it, then quantizes to quint8 once converted.
class QuantStubImpl : public OutputQuantizedModule {
 public:
  QuantStubImpl() : OutputQuantizedModule("QuantStub") {}
  at::Tensor forward(const at::Tensor& x);
};
TORCH_MODULE(QuantStub);

// Marks where quantized values return to float.
class DeQuantStubImpl : public torch::nn::Module {
 public:
  DeQuantStubImpl() : torch::nn::Module("DeQuantStub") {}
  at::Tensor forward(const at::Tensor& x);
};
TORCH_MODULE(DeQuantStub);

// Wraps a float module between a QuantStub and a DeQuantStub (PyTorch's QuantWrapper).
class QuantWrapperImpl : public torch::nn::Module {
 public:
  template <class ModuleHolder>
  explicit QuantWrapperImpl(ModuleHolder module) : torch::nn::Module("QuantWrapper") {
    quant = register_module("quant", QuantStub());
    register_module("module", module.ptr());
    module_ = torch::nn::AnyModule(module);
    dequant = register_module("dequant", DeQuantStub());
  }
  at::Tensor forward(const at::Tensor& x) { return dequant(module_.forward(quant(x))); }
  QuantStub quant{nullptr};
  DeQuantStub dequant{nullptr};

 private:
  torch::nn::AnyModule module_;
};
TORCH_MODULE(QuantWrapper);

// Arithmetic between activations (residual adds, ...) that needs its own output qparams, as
// PyTorch's FloatFunctional: observed, fake-quantized or run in int8 by mode.
class FloatFunctionalImpl : public OutputQuantizedModule {
 public:
  FloatFunctionalImpl() : OutputQuantizedModule("FloatFunctional") {}
  at::Tensor add(const at::Tensor& a, const at::Tensor& b);
  at::Tensor add_relu(const at::Tensor& a, const at::Tensor& b);
  at::Tensor mul(const at::Tensor& a, const at::Tensor& b);
  at::Tensor cat(const std::vector<at::Tensor>& xs, int64_t dim = 0);

 private:
  at::Tensor finish(const at::Tensor& float_result);
};
TORCH_MODULE(FloatFunctional);

}  // namespace tq::nn
