#pragma once
// ResNet-18 (torchvision's architecture and module names) from tq's quantizable modules, for the
// eager-workflow benchmark against torchvision's quantizable resnet18.
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/pooling.h>

#include "tq/nn/modules.h"

namespace tq::bench {

struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride);
  at::Tensor forward(const at::Tensor& x);
  tq::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  tq::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  tq::nn::ReLU relu{nullptr};
  torch::nn::Sequential downsample{nullptr};
  tq::nn::FloatFunctional add_relu{nullptr};
};
TORCH_MODULE(BasicBlock);

struct ResNet18Impl : torch::nn::Module {
  explicit ResNet18Impl(int64_t num_classes = 1000);
  at::Tensor forward(const at::Tensor& x);
  // torchvision's fuse_model groups: conv+bn+relu, conv+bn, downsample conv+bn.
  std::vector<std::vector<std::string>> fusion_groups() const;
  tq::nn::QuantStub quant{nullptr};
  tq::nn::Conv2d conv1{nullptr};
  tq::nn::BatchNorm2d bn1{nullptr};
  tq::nn::ReLU relu{nullptr};
  torch::nn::MaxPool2d maxpool{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  tq::nn::Linear fc{nullptr};
  tq::nn::DeQuantStub dequant{nullptr};
};
TORCH_MODULE(ResNet18);

}  // namespace tq::bench
