#include "fashion_cnn.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include <algorithm>

#include "tq/serialize/state_dict.h"

namespace tq::apps {

FashionCnnImpl::FashionCnnImpl() {
  register_module("quant", quant);
  conv1 = register_module("conv1", tq::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 3).padding(1).bias(false)));
  bn1 = register_module("bn1", tq::nn::BatchNorm2d(16));
  register_module("relu1", relu1);
  conv2 = register_module("conv2", tq::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).padding(1).bias(false)));
  bn2 = register_module("bn2", tq::nn::BatchNorm2d(32));
  register_module("relu2", relu2);
  pool = register_module("pool", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
  fc1 = register_module("fc1", tq::nn::Linear(32 * 7 * 7, 128));
  register_module("relu3", relu3);
  fc2 = register_module("fc2", tq::nn::Linear(128, 10));
  register_module("dequant", dequant);
}

at::Tensor FashionCnnImpl::forward(const at::Tensor& input) {
  auto x = quant(input);
  x = pool(relu1(bn1(conv1(x))));
  x = pool(relu2(bn2(conv2(x))));
  x = x.flatten(1);
  x = relu3(fc1(x));
  return dequant(fc2(x));
}

FashionCnn load_fashion_cnn(const std::string& path) {
  FashionCnn m;
  tq::serialize::load_state_dict_file(*m, path);
  m->eval();
  return m;
}

double accuracy(FashionCnn& model, const Dataset& data) {
  at::NoGradGuard no_grad;
  model->eval();
  int64_t correct = 0;
  const int64_t n = data.images.size(0);
  for (int64_t i = 0; i < n; i += 500) {
    const int64_t m = std::min<int64_t>(500, n - i);
    const auto pred = model->forward(data.images.narrow(0, i, m)).argmax(1);
    correct += pred.eq(data.labels.narrow(0, i, m)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / n;
}

std::vector<std::vector<std::string>> FashionCnnImpl::fusion_groups() {
  return {{"conv1", "bn1", "relu1"}, {"conv2", "bn2", "relu2"}, {"fc1", "relu3"}};
}

}  // namespace tq::apps
