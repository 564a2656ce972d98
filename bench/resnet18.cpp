#include "resnet18.h"

#include <ATen/ATen.h>

namespace tq::bench {

namespace {
tq::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding) {
  return tq::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(padding).bias(false));
}
}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride) {
  conv1 = register_module("conv1", conv(in_planes, planes, 3, stride, 1));
  bn1 = register_module("bn1", tq::nn::BatchNorm2d(planes));
  relu = register_module("relu", tq::nn::ReLU());
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
  bn2 = register_module("bn2", tq::nn::BatchNorm2d(planes));
  if (stride != 1 || in_planes != planes) {
    downsample = register_module("downsample",
                                 torch::nn::Sequential(conv(in_planes, planes, 1, stride, 0), tq::nn::BatchNorm2d(planes)));
  }
  add_relu = register_module("add_relu", tq::nn::FloatFunctional());
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  auto out = relu(bn1(conv1(x)));
  out = bn2(conv2(out));
  const auto identity = downsample ? downsample->forward(x) : x;
  return add_relu->add_relu(out, identity);
}

ResNet18Impl::ResNet18Impl(int64_t num_classes) {
  quant = register_module("quant", tq::nn::QuantStub());
  conv1 = register_module("conv1", conv(3, 64, 7, 2, 3));
  bn1 = register_module("bn1", tq::nn::BatchNorm2d(64));
  relu = register_module("relu", tq::nn::ReLU());
  maxpool = register_module("maxpool", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  auto layer = [](int64_t in, int64_t out, int64_t stride) {
    return torch::nn::Sequential(BasicBlock(in, out, stride), BasicBlock(out, out, 1));
  };
  layer1 = register_module("layer1", layer(64, 64, 1));
  layer2 = register_module("layer2", layer(64, 128, 2));
  layer3 = register_module("layer3", layer(128, 256, 2));
  layer4 = register_module("layer4", layer(256, 512, 2));
  fc = register_module("fc", tq::nn::Linear(512, num_classes));
  dequant = register_module("dequant", tq::nn::DeQuantStub());
}

at::Tensor ResNet18Impl::forward(const at::Tensor& input) {
  auto x = maxpool(relu(bn1(conv1(quant(input)))));
  x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
  x = at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return dequant(fc(x));
}

std::vector<std::vector<std::string>> ResNet18Impl::fusion_groups() const {
  std::vector<std::vector<std::string>> groups{{"conv1", "bn1", "relu"}};
  for (const std::string layer : {"layer1", "layer2", "layer3", "layer4"}) {
    for (const std::string block : {"0", "1"}) {
      const std::string p = layer + "." + block + ".";
      groups.push_back({p + "conv1", p + "bn1", p + "relu"});
      groups.push_back({p + "conv2", p + "bn2"});
      if (layer != "layer1" && block == "0") groups.push_back({p + "downsample.0", p + "downsample.1"});
    }
  }
  return groups;
}

}  // namespace tq::bench
