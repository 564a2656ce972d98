#pragma once
// Quantizable convolutions of any dimension (zero padding, numeric padding): Conv1d and Conv3d
// here, Conv2d (which adds batch-norm folding) in modules.h; ReLU fuses into all of them.
#include <torch/nn/options/conv.h>
#include <torch/nn/pimpl.h>

#include "tq/nn/weighted.h"

namespace tq::nn {

template <size_t D>
class ConvNdImpl : public WeightedModule {
 public:
  ConvNdImpl(std::string name, const torch::nn::ConvOptions<D>& options);
  const torch::nn::ConvOptions<D>& options() const { return options_; }
  std::vector<int64_t> stride() const;
  std::vector<int64_t> padding() const;
  std::vector<int64_t> dilation() const;

 protected:
  at::Tensor float_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const override;
  kernels::int8::PackedWeight prepack(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias) const override;
  at::Tensor int8_op(const at::Tensor& x_q, double scale, int64_t zero_point) const override;
  std::string describe() const override;

  torch::nn::ConvOptions<D> options_;
};

class Conv1dImpl : public ConvNdImpl<1> {
 public:
  explicit Conv1dImpl(const torch::nn::Conv1dOptions& options) : ConvNdImpl<1>("Conv1d", options) {}
};
TORCH_MODULE(Conv1d);

class Conv3dImpl : public ConvNdImpl<3> {
 public:
  explicit Conv3dImpl(const torch::nn::Conv3dOptions& options) : ConvNdImpl<3>("Conv3d", options) {}
};
TORCH_MODULE(Conv3d);

}  // namespace tq::nn
