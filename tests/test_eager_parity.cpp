#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/container/sequential.h>

#include "golden.h"
#include "tq/kernels/int8.h"
#include "tq/nn/modules.h"
#include "tq/nn/rnn.h"
#include "tq/quant/quantize.h"
#include "tq/serialize/state_dict.h"

using namespace tq;
using tq::testing::to_tensor;

namespace {
// The model of tools/gen_golden_eager.py, with tq's modules and the same names.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    quant = register_module("quant", nn::QuantStub());
    conv = register_module("conv", nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)));
    relu = register_module("relu", nn::ReLU());
    fc = register_module("fc", nn::Linear(4 * 5 * 5, 3));
    dequant = register_module("dequant", nn::DeQuantStub());
  }
  at::Tensor forward(const at::Tensor& x) { return dequant(fc(relu(conv(quant(x))).flatten(1))); }
  nn::QuantStub quant{nullptr};
  nn::Conv2d conv{nullptr};
  nn::ReLU relu{nullptr};
  nn::Linear fc{nullptr};
  nn::DeQuantStub dequant{nullptr};
};
TORCH_MODULE(Net);
}  // namespace

// The same float model quantized by PyTorch's eager API (Python) and by tq (C++): every scale and
// zero point equal, outputs within one output quantization step.
TEST(EagerParity, StaticPtqMatchesPyTorchEager) {
  const auto& g = tq::testing::machine_golden("eager.json");
  const auto engines = kernels::int8::available_engines();
  if (std::find(engines.begin(), engines.end(), "onednn") == engines.end()) GTEST_SKIP() << "no onednn engine";
  kernels::int8::set_engine("onednn");
  Net net;
  serialize::load_state_dict_file(*net, tq::testing::machine_golden_path("eager_float.pt"));
  net->eval();
  const auto x = to_tensor(g.at("x"));
  EXPECT_TRUE(at::allclose(net->forward(x), to_tensor(g.at("float_out")), 1e-5, 1e-6));
  quant::fuse_modules(*net, {{"conv", "relu"}});
  quant::prepare(*net, quant::QConfigMapping().set_global(quant::minmax_qconfig("onednn")));
  for (const auto& b : g.at("batches")) net->forward(to_tensor(b));
  quant::convert(*net);

  const auto qparams = serialize::state_dict(*net);
  auto buffer = [&](const std::string& key) {
    for (const auto& [k, v] : qparams) {
      if (k == key) return v;
    }
    ADD_FAILURE() << "no " << key;
    return at::Tensor();
  };
  EXPECT_EQ(static_cast<float>(buffer("quant.scale").item<double>()), g.at("quant").at("scale").get<float>());
  EXPECT_EQ(buffer("quant.zero_point").item<int64_t>(), g.at("quant").at("zero_point").get<int64_t>());
  for (const std::string m : {"conv", "fc"}) {
    EXPECT_EQ(static_cast<float>(buffer(m + ".scale").item<double>()), g.at(m).at("scale").get<float>()) << m;
    EXPECT_EQ(buffer(m + ".zero_point").item<int64_t>(), g.at(m).at("zero_point").get<int64_t>()) << m;
    EXPECT_TRUE(tq::testing::tensors_equal(buffer(m + ".weight_scale").to(at::kFloat),
                                           to_tensor(g.at(m).at("weight_scales"))))
        << m;
  }
  const auto y = net->forward(x);
  const double step = g.at("fc").at("scale").get<double>();
  EXPECT_LE((y - to_tensor(g.at("int8_out"))).abs().max().item<double>(), step + 1e-7);
}

// Dynamic quantization of Linear layers: PyTorch's quantize_dynamic and tq's give the same output
// (same weight qparams, same int8 kernel).
TEST(EagerParity, DynamicMatchesPyTorchEager) {
  const auto& g = tq::testing::machine_golden("eager.json").at("dynamic");
  torch::nn::Sequential model(nn::Linear(16, 32), nn::ReLU(), nn::Linear(32, 4));
  serialize::load_state_dict_file(*model, tq::testing::machine_golden_path("eager_dynamic_float.pt"));
  model->eval();
  const auto x = to_tensor(g.at("x"));
  EXPECT_TRUE(at::allclose(model->forward(x), to_tensor(g.at("float_y")), 1e-5, 1e-6));
  quant::quantize_dynamic(*model);
  EXPECT_TRUE(tq::testing::tensors_close(model->forward(x), to_tensor(g.at("y")), 0, 1e-6));
}

// QAT: three SGD steps on fixed data with the default onednn QAT qconfig (fused moving-average
// fake quantizers), then convert: the same losses, scales, zero points and int8 outputs.
TEST(EagerParity, QatMatchesPyTorchEager) {
  const auto& g = tq::testing::machine_golden("eager.json").at("qat");
  const auto engines = kernels::int8::available_engines();
  if (std::find(engines.begin(), engines.end(), "onednn") == engines.end()) GTEST_SKIP() << "no onednn engine";
  kernels::int8::set_engine("onednn");
  struct QatNet : torch::nn::Module {
    QatNet() {
      quant = register_module("quant", nn::QuantStub());
      fc1 = register_module("fc1", nn::Linear(8, 16));
      relu = register_module("relu", nn::ReLU());
      fc2 = register_module("fc2", nn::Linear(16, 2));
      dequant = register_module("dequant", nn::DeQuantStub());
    }
    at::Tensor forward(const at::Tensor& x) { return dequant(fc2(relu(fc1(quant(x))))); }
    nn::QuantStub quant{nullptr};
    nn::Linear fc1{nullptr};
    nn::ReLU relu{nullptr};
    nn::Linear fc2{nullptr};
    nn::DeQuantStub dequant{nullptr};
  } net;
  serialize::load_state_dict_file(net, tq::testing::machine_golden_path("eager_qat_float.pt"));
  net.train();
  quant::fuse_modules(net, {{"fc1", "relu"}});
  quant::prepare_qat(net, quant::QConfigMapping().set_global(quant::get_default_qat_qconfig("onednn")));
  const auto x = to_tensor(g.at("x")), target = to_tensor(g.at("target"));
  std::vector<at::Tensor> params;
  for (const auto& p : net.parameters()) params.push_back(p);
  for (size_t step = 0; step < 3; ++step) {
    auto loss = (net.forward(x) - target).pow(2).mean();
    EXPECT_NEAR(loss.item<double>(), g.at("losses")[step].get<double>(), 1e-6) << "step " << step;
    for (auto& p : params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    loss.backward();
    at::NoGradGuard no_grad;
    for (auto& p : params) {
      if (p.grad().defined()) p.add_(p.grad(), -0.05);  // torch.optim.SGD(lr=0.05)
    }
  }
  net.eval();
  quant::convert(net);
  const auto sd = serialize::state_dict(net);
  auto buffer = [&](const std::string& key) {
    for (const auto& [k, v] : sd) {
      if (k == key) return v;
    }
    return at::Tensor();
  };
  for (const std::string m : {"quant", "fc1", "fc2"}) {
    EXPECT_NEAR(buffer(m + ".scale").item<double>(), g.at(m).at("scale").get<double>(), 1e-7) << m;
    EXPECT_EQ(buffer(m + ".zero_point").item<int64_t>(), g.at(m).at("zero_point").get<int64_t>()) << m;
  }
  const double step = g.at("fc2").at("scale").get<double>();
  EXPECT_LE((net.forward(x) - to_tensor(g.at("y"))).abs().max().item<double>(), step + 1e-7);
}

// Dynamic LSTM / GRU: PyTorch's quantize_dynamic and tq's, same float weights.
TEST(EagerParity, DynamicLstmAndGruMatchPyTorch) {
  const auto& g = tq::testing::machine_golden("eager.json").at("rnn");
  torch::nn::Module parent;
  auto lstm = parent.register_module("lstm", nn::LSTM(6, 8, 2));
  auto gru = parent.register_module("gru", nn::GRU(6, 8, 2));
  serialize::load_state_dict_file(parent, tq::testing::machine_golden_path("eager_rnn_float.pt"));
  const auto x = to_tensor(g.at("x"));
  EXPECT_TRUE(tq::testing::tensors_close(std::get<0>(lstm->forward(x)), to_tensor(g.at("lstm_float")), 1e-5, 1e-6));
  EXPECT_TRUE(tq::testing::tensors_close(std::get<0>(gru->forward(x)), to_tensor(g.at("gru_float")), 1e-5, 1e-6));
  const auto summary = quant::quantize_dynamic(parent);
  EXPECT_EQ(summary.changed.size(), 2u) << summary.to_string();
  EXPECT_TRUE(tq::testing::tensors_close(std::get<0>(lstm->forward(x)), to_tensor(g.at("lstm")), 1e-5, 1e-6));
  EXPECT_TRUE(tq::testing::tensors_close(std::get<0>(gru->forward(x)), to_tensor(g.at("gru")), 1e-5, 1e-6));
}
