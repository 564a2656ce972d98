#pragma once
// The demo's CNN, written with tq's quantizable drop-ins: the same object trains in float, is
// calibrated, fine-tuned with fake quantization, and runs in int8.
#include <torch/nn/modules/pooling.h>

#include "idx_reader.h"
#include "tq/nn/modules.h"

namespace tq::apps {

struct FashionCnnImpl : torch::nn::Module {
  FashionCnnImpl();
  at::Tensor forward(const at::Tensor& x);
  // Conv+BN+ReLU and Linear+ReLU groups, for tq::quant::fuse_modules.
  static std::vector<std::vector<std::string>> fusion_groups();

  tq::nn::QuantStub quant;
  tq::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  tq::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  tq::nn::ReLU relu1, relu2, relu3;
  torch::nn::MaxPool2d pool{nullptr};
  tq::nn::Linear fc1{nullptr}, fc2{nullptr};
  tq::nn::DeQuantStub dequant;
};
TORCH_MODULE(FashionCnn);

// A trained float CNN from a state_dict file, in eval mode (a fresh copy each call: the
// quantization workflows change a model in place).
FashionCnn load_fashion_cnn(const std::string& path);

// Top-1 accuracy (0..1) on `data` (eval mode, batches of 500).
double accuracy(FashionCnn& model, const Dataset& data);

}  // namespace tq::apps
