// Post-training algorithms in graph mode on a small TorchScript model with 4-bit weights.
// AdaRound (tq::graph::adaround): every layer's reconstruction loss falls, the int8 model is closer
// to the float model than nearest rounding's, and the observed model is left as it was.
// Bias correction (tq::graph::correct_bias): the int8 model's mean output error shrinks.
// Mixed precision (tq::graph::search_mixed_precision): sensitive layers move up until the metric
// is within the tolerance; an unmeetable tolerance ends with every layer raised and the best found.
// Cross-layer equalization (GraphQuantizeOptions::equalize): a MobileNet-style block with per-tensor
// weights, where batch norms give channels of very different ranges, quantizes far better.
// Each algorithm runs on the model as scripting writes it (aten::conv2d) and as tracing writes it
// (aten::_convolution): all four must find the same layers in both.
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "golden.h"
#include "tq/graph/adaround.h"
#include "tq/graph/bias_correction.h"
#include "tq/graph/mixed_precision.h"
#include "tq/kernels/int8.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"
#include "tq/quant/qconfig_mapping.h"

namespace {

using tq::testing::expect_error;
namespace obs = tq::observers;

torch::jit::Module layer(const std::string& type, const std::string& forward, at::Tensor w, at::Tensor b) {
  torch::jit::Module m(type);
  m.register_parameter("weight", w, false);
  m.register_parameter("bias", b, false);
  m.define(forward);
  return m;
}

// A Conv2d module's forward as torch.jit.script writes it, or as torch.jit.trace does.
enum class Form { Scripted, Traced };

std::string conv_forward(Form form, int stride, int padding, int groups) {
  const std::string s = std::to_string(stride), p = std::to_string(padding), g = std::to_string(groups);
  const std::string call =
      form == Form::Scripted
          ? "torch.conv2d(x, self.weight, self.bias, [" + s + ", " + s + "], [" + p + ", " + p + "], [1, 1], " + g + ")"
          : "torch._convolution(x, self.weight, self.bias, [" + s + ", " + s + "], [" + p + ", " + p +
                "], [1, 1], False, [0, 0], " + g + ", False, False, True, True)";
  return "def forward(self, x):\n    return " + call + "\n";
}

// conv(1->8) relu, conv(8->8) relu, flatten, linear(8*6*6 -> 10): the linear's input is a flatten,
// no quantization point of its own.
torch::jit::Module small_net(Form form = Form::Scripted) {
  at::manual_seed(2);
  torch::jit::Module net("SmallNet");
  net.register_module("conv1", layer("Conv2d", conv_forward(form, 1, 1, 1), at::randn({8, 1, 3, 3}) * 0.4,
                                     at::randn({8}) * 0.1));
  net.register_module("conv2", layer("StridedConv2d", conv_forward(form, 2, 1, 1), at::randn({8, 8, 3, 3}) * 0.15,
                                     at::randn({8}) * 0.1));
  net.register_module("fc", layer("Linear", R"(
    def forward(self, x):
        return torch.linear(x, self.weight, self.bias)
  )", at::randn({10, 8 * 6 * 6}) * 0.05, at::randn({10}) * 0.1));
  net.define(R"(
    def forward(self, x):
        x = torch.relu(self.conv1.forward(x))
        x = torch.relu(self.conv2.forward(x))
        return self.fc.forward(torch.flatten(x, 1))
  )");
  return net;
}

tq::graph::GraphQuantizeOptions four_bit_weights() {
  auto o = tq::graph::GraphQuantizeOptions::for_backend("qnnpack");
  tq::nn::QConfig q = o.mapping.global().value();
  q.activation = obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions());
  q.weight = obs::with_args<obs::PerChannelMinMaxObserver>(obs::PerChannelMinMaxObserverOptions()
                                                               .dtype(tq::QDType::QInt8)
                                                               .qscheme(tq::QScheme::PerChannelSymmetric)
                                                               .quant_min(-8)
                                                               .quant_max(7));
  o.mapping.set_global(q);
  return o;
}

double sqnr_db(const at::Tensor& ref, const at::Tensor& x) {
  return 10 * std::log10(ref.pow(2).sum().item<double>() / (ref - x).pow(2).sum().item<double>());
}

class GraphPtq : public ::testing::Test {
 protected:
  void SetUp() override { tq::kernels::int8::set_engine("qnnpack"); }
};

class GraphPtqForms : public ::testing::TestWithParam<Form> {
 protected:
  void SetUp() override { tq::kernels::int8::set_engine("qnnpack"); }
};

std::string form_name(const ::testing::TestParamInfo<Form>& info) {
  return info.param == Form::Scripted ? "Scripted" : "Traced";
}

}  // namespace

TEST_P(GraphPtqForms, AdaRoundFourBitWeightsReconstructBetterThanNearest) {
  auto model = small_net(GetParam());
  at::manual_seed(3);
  std::vector<at::Tensor> data;
  for (int i = 0; i < 8; ++i) data.push_back(at::randn({32, 1, 12, 12}));
  const auto held_out = at::randn({128, 1, 12, 12});

  auto observed = tq::graph::prepare(model, four_bit_weights());
  for (const auto& b : data) observed.calibrate(b);
  auto nearest = observed.convert();
  // Data it has seen already: MinMax observers keep their ranges, the output shows the weights.
  auto om = observed.module();
  const at::Tensor before = om.forward({data[0]}).toTensor();

  const auto report = tq::graph::adaround(observed, data, tq::ptq::AdaRoundOptions().iterations(2000).num_samples(256));
  std::cout << report.to_string();
  ASSERT_EQ(report.layers.size(), 3u) << report.to_string();
  EXPECT_TRUE(report.skipped.empty()) << report.to_string();
  EXPECT_EQ(report.samples, 256);
  EXPECT_EQ(report.layers[0].layer, "conv1");
  EXPECT_EQ(report.layers[0].op, GetParam() == Form::Scripted ? "aten::conv2d" : "aten::_convolution");
  EXPECT_EQ(report.layers[1].layer, "conv2");
  EXPECT_EQ(report.layers[2].layer, "fc");
  EXPECT_EQ(report.layers[2].op, "aten::linear");
  for (const auto& l : report.layers) {
    EXPECT_LT(l.loss_adaround, l.loss_nearest) << l.layer;
    EXPECT_GT(l.changed, 0) << l.layer;
  }
  // The observed model computes as before (weights restored, no capture left on).
  EXPECT_TRUE(at::equal(om.forward({data[0]}).toTensor(), before));

  auto adarounded = observed.convert();
  const at::Tensor ref = model.forward({held_out}).toTensor();
  const double q_nearest = sqnr_db(ref, nearest.forward({held_out}).toTensor());
  const double q_adaround = sqnr_db(ref, adarounded.forward({held_out}).toTensor());
  std::cout << "output SQNR: nearest " << q_nearest << " dB, AdaRound " << q_adaround << " dB\n";
  EXPECT_GT(q_adaround, q_nearest + 1.0) << "nearest " << q_nearest << " dB, AdaRound " << q_adaround << " dB";
}

TEST_F(GraphPtq, AdaRoundBadInputChangesNothing) {
  auto model = small_net();
  auto observed = tq::graph::prepare(model, four_bit_weights());
  const auto x = at::randn({16, 1, 12, 12});
  const auto o = tq::ptq::AdaRoundOptions().iterations(5).batch_size(8);  // num_samples 1024
  expect_error([&] { tq::graph::adaround(observed, {x}, o); }, "calibrate the model first");
  observed.calibrate(x);
  expect_error([&] { tq::graph::adaround(observed, {x}, o); }, "the data holds 16 samples, fewer than the 1024 asked for");
  expect_error([&] { tq::graph::adaround(observed, {x}, tq::ptq::AdaRoundOptions(o).num_samples(16).batch_size(32)); },
               "the data holds 16 samples, fewer than one batch of 32");
  const auto o16 = tq::ptq::AdaRoundOptions(o).num_samples(16);
  expect_error([&] { tq::graph::adaround(observed, {x.to(at::kLong)}, o16); }, "data must be float batches");
  expect_error([&] { tq::graph::adaround(observed, {at::randn({16, 3, 12, 12})}, o16); }, "the model failed on samples of shape [16, 3, 12, 12]");
  // Still converts, with nearest rounding, and the observed model still runs.
  observed.convert().forward({x});
  observed.calibrate(x);
}

// Per-tensor 3-bit weights shift each layer's mean output; correcting the biases on calibration
// data takes most of that shift out of the final output on held-out data.
TEST_P(GraphPtqForms, BiasCorrectionShrinksTheMeanOutputError) {
  auto model = small_net(GetParam());
  at::manual_seed(4);
  std::vector<at::Tensor> data;
  for (int i = 0; i < 8; ++i) data.push_back(at::randn({64, 1, 12, 12}));
  const auto held_out = at::randn({512, 1, 12, 12});
  auto options = four_bit_weights();
  auto q = options.mapping.global().value();
  q.weight = obs::with_args<obs::MinMaxObserver>(
      obs::MinMaxObserverOptions().dtype(tq::QDType::QInt8).qscheme(tq::QScheme::PerTensorSymmetric).quant_min(-4).quant_max(3));
  options.mapping.set_global(q);
  auto observed = tq::graph::prepare(model, options);
  for (const auto& b : data) observed.calibrate(b);
  auto plain = observed.convert();
  const auto report = tq::graph::correct_bias(observed, data, tq::graph::BiasCorrectionOptions().num_samples(512));
  std::cout << report.to_string();
  ASSERT_EQ(report.layers.size(), 3u);
  EXPECT_TRUE(report.skipped.empty()) << report.to_string();
  for (const auto& l : report.layers) EXPECT_GT(l.max_abs_shift, 0.0) << l.layer;
  auto corrected = observed.convert();
  const at::Tensor ref = model.forward({held_out}).toTensor();
  auto mean_error = [&](torch::jit::Module& m) {
    return (m.forward({held_out}).toTensor() - ref).mean(0).abs().mean().item<double>();
  };
  const double before = mean_error(plain), after = mean_error(corrected);
  std::cout << "mean |E[int8 - float]| per output: " << before << " -> " << after << "\n";
  EXPECT_LT(after, before / 2);
}

TEST_F(GraphPtq, BiasCorrectionBadInputChangesNothing) {
  auto model = small_net();
  auto observed = tq::graph::prepare(model, four_bit_weights());
  const auto x = at::randn({16, 1, 12, 12});
  expect_error([&] { tq::graph::correct_bias(observed, {x}); }, "calibrate the model first");
  observed.calibrate(x);
  auto before = observed.convert();
  expect_error([&] { tq::graph::correct_bias(observed, {x}); }, "the data holds 16 samples, fewer than the 512");
  expect_error([&] { tq::graph::correct_bias(observed, {at::randn({16, 3, 12, 12})}, tq::graph::BiasCorrectionOptions().num_samples(16)); },
               "the model failed on samples of shape [16, 3, 12, 12]");
  auto after = observed.convert();
  EXPECT_TRUE(at::equal(before.forward({x}).toTensor(), after.forward({x}).toTensor()));
}

namespace {

torch::jit::Module bn_module(int64_t c, at::Tensor gamma) {
  torch::jit::Module m("BatchNorm2d");
  m.register_parameter("weight", gamma, false);
  m.register_parameter("bias", at::randn({c}) * 0.2, false);
  m.register_buffer("running_mean", at::randn({c}) * 0.1);
  m.register_buffer("running_var", at::rand({c}) + 0.5);
  m.define(R"(
    def forward(self, x):
        return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, False, 0.1, 1e-5, False)
  )");
  return m;
}

// expand 1x1 (4 -> 16) + bn + act (relu or relu6), depthwise 3x3 + bn + act, project 1x1 (16 -> 4) + bn: the
// gammas span decades, as in trained depthwise blocks.
torch::jit::Module mobile_block(Form form, const std::string& act, double log_gamma_min, double log_gamma_max) {
  at::manual_seed(7);
  torch::jit::Module net("Block");
  const auto gammas = at::logspace(log_gamma_min, log_gamma_max, 16)
                          .index_select(0, at::randperm(16))
                          .to(at::kFloat);
  net.register_module("expand", layer("Conv2d", conv_forward(form, 1, 0, 1), at::randn({16, 4, 1, 1}) * 0.5,
                                      at::zeros({16})));
  net.register_module("bn1", bn_module(16, gammas));
  net.register_module("dw", layer("DepthwiseConv2d", conv_forward(form, 1, 1, 16), at::randn({16, 1, 3, 3}) * 0.5,
                                  at::zeros({16})));
  net.register_module("bn2", bn_module(16, gammas.flip(0)));
  net.register_module("project", layer("ProjectConv2d", conv_forward(form, 1, 0, 1), at::randn({4, 16, 1, 1}) * 0.3,
                                       at::zeros({4})));
  auto activation = [&](const std::string& e) {
    return act == "relu" ? "torch.relu(" + e + ")" : "torch.hardtanh(" + e + ", 0.0, 6.0)";
  };
  net.define("def forward(self, x):\n"
             "    x = " + activation("self.bn1.forward(self.expand.forward(x))") + "\n"
             "    x = " + activation("self.bn2.forward(self.dw.forward(x))") + "\n"
             "    return self.project.forward(x)\n");
  return net;
}

tq::graph::GraphQuantizeOptions per_tensor_weights(bool equalize) {
  auto o = tq::graph::GraphQuantizeOptions::for_backend("qnnpack");
  auto q = o.mapping.global().value();
  q.activation = obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions());
  q.weight = obs::with_args<obs::MinMaxObserver>(
      obs::MinMaxObserverOptions().dtype(tq::QDType::QInt8).qscheme(tq::QScheme::PerTensorSymmetric));
  o.mapping.set_global(q);
  o.equalize = equalize;
  return o;
}

}  // namespace

TEST_P(GraphPtqForms, EqualizationKeepsTheFloatFunctionAndRescuesPerTensorWeights) {
  // With ReLU6 the gammas stay small enough that it rarely clips (equalization computes it as ReLU).
  for (const std::string act : {"relu", "relu6"}) {
    auto model = act == "relu" ? mobile_block(GetParam(), act, -2, 2) : mobile_block(GetParam(), act, -3, 0.5);
    at::manual_seed(8);
    std::vector<at::Tensor> data;
    for (int i = 0; i < 4; ++i) data.push_back(at::randn({16, 4, 10, 10}));
    const auto held_out = at::randn({64, 4, 10, 10});
    const at::Tensor ref = model.forward({held_out}).toTensor();
    double sqnr[2];
    for (bool equalize : {false, true}) {
      auto observed = tq::graph::prepare(model, per_tensor_weights(equalize));
      for (const auto& b : data) observed.calibrate(b);
      if (equalize) {
        EXPECT_EQ(observed.summary().equalized,
                  (std::vector<std::string>{"expand -> dw", "dw -> project"})) << act;
        if (act == "relu") {  // ReLU6 becomes ReLU: only ReLU keeps the float function exactly
          auto om = observed.module();
          EXPECT_TRUE(at::allclose(om.forward({held_out}).toTensor(), ref, 1e-3, 1e-3)) << act;
        }
      }
      auto int8 = observed.convert();
      sqnr[equalize] = sqnr_db(ref, int8.forward({held_out}).toTensor());
    }
    std::cout << act << ": per-tensor int8 SQNR " << sqnr[0] << " dB, equalized " << sqnr[1] << " dB\n";
    EXPECT_GT(sqnr[1], sqnr[0] + 6.0) << act;
  }
}


namespace {

tq::nn::QConfig bits_qconfig(int64_t weight_bits) {
  auto q = four_bit_weights().mapping.global().value();
  const int64_t m = (int64_t{1} << (weight_bits - 1)) - 1;
  q.weight = obs::with_args<obs::PerChannelMinMaxObserver>(obs::PerChannelMinMaxObserverOptions()
                                                               .dtype(tq::QDType::QInt8)
                                                               .qscheme(tq::QScheme::PerChannelSymmetric)
                                                               .quant_min(-m - 1)
                                                               .quant_max(m));
  return q;
}

tq::graph::MixedPrecisionOptions two_bit_then_eight_then_float(double max_drop) {
  tq::graph::MixedPrecisionOptions o;
  o.levels = {{"W2A8", bits_qconfig(2)}, {"W8A8", bits_qconfig(8)}, {"float", std::nullopt}};
  o.max_drop = max_drop;
  return o;
}


// ---- SmoothQuant (GraphQuantizeOptions::smooth_quant) ----

// Two Linears reading one input of 64 channels whose channel 2 is 40x the others (an outlier channel, as in
// transformers' activations), their outputs joined by a float cat.
struct SharedInputNet {
  torch::jit::Module net{"SharedInput"};
  at::Tensor wa, wb, calibration;
  SharedInputNet() {
    at::manual_seed(11);
    wa = at::randn({6, 64}) * 0.3;
    wb = at::randn({5, 64}) * 0.3;
    wb.select(1, 5).mul_(10);  // a weight-heavy input channel
    net.register_module("a", layer("Linear", "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n",
                                   wa, at::randn({6}) * 0.1));
    net.register_module("b", layer("Linear", "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n",
                                   wb, at::randn({5}) * 0.1));
    net.define("def forward(self, x):\n    return torch.cat([self.a.forward(x), self.b.forward(x)], 1)\n");
    calibration = at::randn({256, 64});
    calibration.select(1, 2).mul_(40);
  }
  static tq::graph::GraphQuantizeOptions options(std::optional<double> alpha) {
    auto o = tq::graph::GraphQuantizeOptions::for_backend("onednn");
    tq::nn::QConfig q = o.mapping.global().value();
    q.activation = obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions());
    o.mapping.set_global(q);
    o.mapping.set_object_type_none("cat");
    o.float_linear_outputs = true;
    if (alpha) o.smooth_quant = tq::graph::SmoothQuantOptions{*alpha};
    return o;
  }
};

const torch::jit::Node* find_node(const torch::jit::Module& m, const std::string& kind) {
  for (const auto* n : m.get_method("forward").graph()->nodes()) {
    if (n->kind().toQualString() == kind) return n;
  }
  return nullptr;
}

TEST_F(GraphPtq, SmoothQuantSharesOneFactorAcrossTheLinearsOfAnInput) {
  SharedInputNet m;
  auto observed = tq::graph::prepare(m.net, SharedInputNet::options(0.5));
  observed.calibrate(m.calibration);
  const auto smoothed = observed.summary().smoothed;
  ASSERT_EQ(smoothed.size(), 1u);
  EXPECT_EQ(smoothed[0].rfind("a, b (64 channels, s from ", 0), 0u) << smoothed[0];
  auto int8 = observed.convert();

  // s_j = max|X_j|^0.5 / max|W_j|^0.5, max|W_j| over both Linears' weights (the paper's formula).
  const auto act = m.calibration.abs().amax(0);
  const auto weight = at::maximum(m.wa.abs().amax(0), m.wb.abs().amax(0));
  const auto s = (act.to(at::kDouble).sqrt() / weight.to(at::kDouble).sqrt()).to(at::kFloat);
  // No multiply of its own: each float-output Linear takes X and multiplies by 1 / s as it quantizes.
  EXPECT_EQ(find_node(int8, "aten::mul"), nullptr) << *int8.get_method("forward").graph();

  // Both Linears take X / s with the qparams a MinMaxObserver gives on X * (1 / s) itself, and
  // return float32 (float_linear_outputs: only the float cat reads them).
  obs::MinMaxObserver direct{obs::MinMaxObserverOptions()};
  direct.forward(m.calibration * s.reciprocal());
  const auto want = direct.calculate_qparams();
  int linears = 0;
  for (const auto* n : int8.get_method("forward").graph()->nodes()) {
    if (n->kind().toQualString() != std::string("tq::linear_int8_float_output")) continue;
    ++linears;
    EXPECT_EQ(n->input(0), int8.get_method("forward").graph()->inputs()[1]);
    EXPECT_TRUE(tq::testing::tensors_close(torch::jit::toIValue(n->input(8))->toTensor(), s.reciprocal(), 1e-6, 0));
    EXPECT_NEAR(torch::jit::toIValue(n->input(1))->toDouble(), want.scale.item<double>(), 1e-6 * want.scale.item<double>());
    EXPECT_EQ(torch::jit::toIValue(n->input(2))->toInt(), want.zero_point.item<int64_t>());
    // The weight is W * s quantized per channel: within half a step of each channel (the largest
    // value, max / 127.5 steps, clamps to 127: exactly half a step, plus float rounding).
    const auto values = torch::jit::toIValue(n->input(5))->toTensor().to(at::kDouble);
    const auto scales = torch::jit::toIValue(n->input(6))->toTensor().to(at::kDouble).unsqueeze(1);
    const auto& w = values.size(0) == 6 ? m.wa : m.wb;
    const auto error = (values * scales - (w * s).to(at::kDouble)).abs();
    EXPECT_TRUE((error <= scales * (0.5 + 1e-5)).all().item<bool>())
        << "weight rows " << values.size(0) << ": " << (error / scales).max().item<double>() << " steps";
  }
  EXPECT_EQ(linears, 2);

  // The same function, computed far better: the outlier channel no longer sets everyone's step.
  const auto x = at::randn({128, 64});
  x.select(1, 2).mul_(40);
  const auto ref = m.net.forward({x}).toTensor();
  auto plain = tq::graph::prepare(m.net, SharedInputNet::options(std::nullopt));
  plain.calibrate(m.calibration);
  const double with = sqnr_db(ref, int8.forward({x}).toTensor());
  const double without = sqnr_db(ref, plain.convert().forward({x}).toTensor());
  std::cout << "SmoothQuant 0.5: " << with << " dB, without: " << without << " dB\n";
  EXPECT_GT(with, without + 6);
  // The reference form (float ops between quantize / dequantize) computes the same numbers.
  EXPECT_TRUE(tq::testing::tensors_close(observed.convert(true).forward({x}).toTensor(), int8.forward({x}).toTensor(),
                                         1e-4, 1e-4));
}

// A float-output Linear sums exact integer products on every CPU, so its input takes the full
// 8-bit range even where the qconfig reduces it (x86's [0, 127] guards u8 x s8 kernels without
// VNNI); an 8-bit-output Linear keeps the qconfig's range.
TEST_F(GraphPtq, FloatOutputLinearsTakeTheFullRangeWhateverTheQConfigReduces) {
  SharedInputNet m;
  auto options = SharedInputNet::options(std::nullopt);
  tq::nn::QConfig q = options.mapping.global().value();
  q.activation = obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions().reduce_range(true));
  options.mapping.set_global(q);
  auto qparams_of_input = [&](bool float_outputs) {
    options.float_linear_outputs = float_outputs;
    auto observed = tq::graph::prepare(m.net, options);
    observed.calibrate(m.calibration);
    const auto summary = observed.summary();
    EXPECT_TRUE(summary.full_range_layers.empty());  // exact sums, or the reduced range: none saturates
    for (const auto& p : summary.points) {
      if (p.kind == "input" && p.op == "input") return p.qparams;
    }
    ADD_FAILURE() << summary.to_string();
    return summary.points.at(0).qparams;
  };
  obs::MinMaxObserver full{obs::MinMaxObserverOptions()}, reduced{obs::MinMaxObserverOptions().reduce_range(true)};
  full.forward(m.calibration);
  reduced.forward(m.calibration);
  for (auto [float_outputs, want] : {std::make_pair(true, full.calculate_qparams()), std::make_pair(false, reduced.calculate_qparams())}) {
    const auto got = qparams_of_input(float_outputs);
    EXPECT_NEAR(got.scale, want.scale.item<double>(), 1e-7 * want.scale.item<double>()) << float_outputs;
    EXPECT_EQ(got.zero_point, want.zero_point.item<int64_t>()) << float_outputs;
  }
}

// ---- the attention's products in int8 (register_int8_matmul_patterns) ----

// Self-attention as transformers write it out: q, k and v projections, two heads, q k^T scaled by
// 1 / sqrt(d), softmax, P V, the output projection; and a matmul by a constant (a weight).
torch::jit::Module attention_net() {
  torch::jit::Module m("Attention");
  at::manual_seed(21);
  for (const char* name : {"wq", "wk", "wv", "wo"}) m.register_parameter(name, at::randn({16, 16}) * 0.25, false);
  m.register_parameter("mix", at::randn({8, 8}) * 0.3, false);
  m.define(R"(
def forward(self, x):
    b = x.size(0)
    t = x.size(1)
    q = torch.linear(x, self.wq).reshape([b, t, 2, 8]).transpose(1, 2)
    k = torch.linear(x, self.wk).reshape([b, t, 2, 8]).transpose(1, 2)
    v = torch.linear(x, self.wv).reshape([b, t, 2, 8]).transpose(1, 2)
    p = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * 0.35355339059327373, -1)
    o = torch.matmul(torch.matmul(p, v), self.mix)
    return torch.linear(o.transpose(1, 2).reshape([b, t, 16]), self.wo)
)");
  m.eval();
  return m;
}

int count_nodes(const torch::jit::Module& m, const std::string& kind) {
  int n = 0;
  for (const auto* node : m.get_method("forward").graph()->nodes()) n += node->kind().toQualString() == kind;
  return n;
}

TEST_F(GraphPtq, AttentionProductsRunInInt8WhereAsked) {
  auto net = attention_net();
  auto options = tq::graph::GraphQuantizeOptions::for_backend("x86");
  // PyTorch FX's default keeps matmul float; so does tq's.
  for (const auto& n : tq::graph::prepare(net, options).summary().nodes) {
    EXPECT_FALSE(n.op == "aten::matmul" && n.quantized) << n.op;
  }
  tq::graph::register_int8_matmul_patterns(options.patterns);
  auto observed = tq::graph::prepare(net, options);
  at::manual_seed(3);
  for (int i = 0; i < 4; ++i) observed.calibrate(at::randn({4, 10, 16}));
  const auto summary = observed.summary();
  int int8_matmuls = 0, weight_matmuls = 0;
  for (const auto& n : summary.nodes) {
    if (n.op == "aten::matmul" && n.quantized) {
      ++int8_matmuls;
      EXPECT_EQ(n.handler, "MatMul");
    }
    weight_matmuls += n.op == "aten::matmul" && n.why_float.find("a constant operand") != std::string::npos;
    if (n.op == "aten::mul") EXPECT_TRUE(n.quantized) << "the 1 / sqrt(d) scaling folds into q k^T";
  }
  EXPECT_EQ(int8_matmuls, 2) << summary.to_string();
  EXPECT_EQ(weight_matmuls, 1) << summary.to_string();
  const auto int8 = observed.convert();
  EXPECT_EQ(count_nodes(int8, "tq::matmul_int8"), 2);
  EXPECT_EQ(count_nodes(int8, "aten::mul"), 0);
  // The reference form (what the ONNX export writes) keeps them as float matmuls between
  // quantize / dequantize pairs. Int8 and reference differ by rounding only (one step per op).
  const auto reference = observed.convert(/*reference=*/true);
  EXPECT_EQ(count_nodes(reference, "tq::matmul_int8"), 0);
  const auto x = at::randn({3, 7, 16});  // another batch and length
  at::NoGradGuard no_grad;
  auto run = [&](const torch::jit::Module& m) { return const_cast<torch::jit::Module&>(m).forward({x}).toTensor(); };
  const auto want = run(net), got = run(int8), ref = run(reference);
  std::cout << "attention: int8 vs reference form " << sqnr_db(ref, got) << " dB, vs float " << sqnr_db(want, got)
            << " dB\n";
  EXPECT_GT(sqnr_db(ref, got), 30.0);
  EXPECT_GT(sqnr_db(want, got), 20.0);
  // Saved and loaded, the model runs tq's operator (registered by tq's library) the same.
  const auto path = (std::filesystem::temp_directory_path() / "tq_int8_attention.pt").string();
  tq::graph::save_torchscript(int8, path);
  auto loaded = tq::graph::load_torchscript(path);
  std::filesystem::remove(path);
  EXPECT_TRUE(tq::testing::tensors_equal(run(loaded), got));
}

TEST_F(GraphPtq, FloatOutputLinearsReadTheirInputThroughFloatShapeOps) {
  // With float outputs every Linear here quantizes its own float32 input: the output projection's
  // input (the context, transposed and reshaped) is never quantized, moved in int8 and dequantized
  // on its way there.
  auto net = attention_net();
  auto options = tq::graph::GraphQuantizeOptions::for_backend("onednn");
  options.float_linear_outputs = true;
  options.mapping.set_object_type_none("softmax");
  auto observed = tq::graph::prepare(net, options);
  at::manual_seed(3);
  for (int i = 0; i < 4; ++i) observed.calibrate(at::randn({4, 10, 16}));
  const auto int8 = observed.convert();
  EXPECT_EQ(count_nodes(int8, "tq::linear_int8_float_output"), 4) << *int8.get_method("forward").graph();
  EXPECT_EQ(count_nodes(int8, "aten::quantize_per_tensor"), 0) << *int8.get_method("forward").graph();
  EXPECT_EQ(count_nodes(int8, "aten::dequantize"), 0) << *int8.get_method("forward").graph();
  // The output projection's input is observed where it enters the Linear, with the context's range.
  const auto summary = observed.summary();
  int inputs = 0;
  for (const auto& p : summary.points) inputs += p.kind == "input";
  EXPECT_EQ(inputs, 2) << summary.to_string();  // x (shared by q, k, v) and the context
  // The int8 model computes what its reference form does, to float rounding.
  const auto reference = observed.convert(/*reference=*/true);
  const auto x = at::randn({3, 7, 16});
  at::NoGradGuard no_grad;
  auto run = [&](const torch::jit::Module& m) { return const_cast<torch::jit::Module&>(m).forward({x}).toTensor(); };
  EXPECT_GT(sqnr_db(run(reference), run(int8)), 60.0);
}

// compare_layers (what --max-accuracy-drop ranks layers by) on a model whose quantization points
// include zero-dimensional values, as a traced transformer's size arithmetic gives (it refused
// them: "zero-dimensional tensor cannot be concatenated").
TEST_F(GraphPtq, CompareLayersTakesZeroDimensionalValues) {
  torch::jit::Module m("Scaled");
  at::manual_seed(4);
  const std::string linear = "def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n";
  m.register_module("fc1", layer("Linear", linear, at::randn({16, 8}) * 0.3, at::randn({16}) * 0.1));
  m.register_module("fc2", layer("Linear", linear, at::randn({4, 16}) * 0.3, at::randn({4}) * 0.1));
  m.define(R"(
def forward(self, x):
    scale = torch.mul(torch.tensor(x.size(0)), torch.tensor(0.5))
    return self.fc2.forward(torch.relu(self.fc1.forward(x))) * scale
)");
  m.eval();
  const auto options = tq::graph::GraphQuantizeOptions::for_backend("x86");
  auto observed = tq::graph::prepare(m, options);
  std::vector<at::Tensor> inputs;
  for (int i = 0; i < 4; ++i) inputs.push_back(at::randn({6, 8}));
  for (const auto& x : inputs) observed.calibrate(x);
  const auto layers = tq::graph::compare_layers(m, observed.convert(), options, inputs);
  ASSERT_GE(layers.size(), 2u);
  for (const auto& l : layers) {
    std::cout << "  " << l.layer << ": " << l.sqnr_db << " dB\n";
    EXPECT_GT(l.sqnr_db, 20.0) << l.layer;  // 7-bit activations through two layers
  }
}

TEST_F(GraphPtq, SmoothQuantRangesSurviveSavingTheObservedModel) {
  SharedInputNet m;
  auto observed = tq::graph::prepare(m.net, SharedInputNet::options(0.75));
  observed.calibrate(m.calibration);
  const auto path = (std::filesystem::temp_directory_path() / "tq_smooth_quant_observed.pt").string();
  observed.save(path);
  auto loaded = tq::graph::load_observed(path, SharedInputNet::options(0.75));
  std::filesystem::remove(path);
  const auto x = m.calibration.narrow(0, 0, 16);
  EXPECT_TRUE(tq::testing::tensors_equal(loaded.convert().forward({x}).toTensor(), observed.convert().forward({x}).toTensor()));
  // Options that smooth nothing there do not load it.
  expect_error([&] {
    observed.save(path);
    tq::graph::load_observed(path, SharedInputNet::options(std::nullopt));
  }, "was observed with other options");
  std::filesystem::remove(path);
}

TEST_F(GraphPtq, SmoothQuantBadInput) {
  SharedInputNet m;
  expect_error([&] { tq::graph::prepare(m.net, SharedInputNet::options(1.5)); },
               "SmoothQuant's alpha must be in [0, 1], got 1.5");
  auto observed = tq::graph::prepare(m.net, SharedInputNet::options(0.5));
  expect_error([&] { observed.convert(); }, "no calibration batch was run");
  observed.calibrate(m.calibration);
  expect_error([&] { tq::graph::adaround(observed, {m.calibration}, tq::ptq::AdaRoundOptions().iterations(10)); },
               "does not run on a SmoothQuant model");
}

}  // namespace

TEST_P(GraphPtqForms, MixedPrecisionRaisesSensitiveLayersUntilTheToleranceIsMet) {
  auto model = small_net(GetParam());
  at::manual_seed(9);
  std::vector<at::Tensor> data{at::randn({64, 1, 12, 12}), at::randn({64, 1, 12, 12})};
  const auto eval_x = at::randn({256, 1, 12, 12});
  const auto float_top1 = model.forward({eval_x}).toTensor().argmax(1);
  // Top-1 agreement with the float model, in percent.
  auto agreement = [&](torch::jit::Module& m) {
    return 100.0 * m.forward({eval_x}).toTensor().argmax(1).eq(float_top1).to(at::kDouble).mean().item<double>();
  };
  const auto r = tq::graph::search_mixed_precision(model, four_bit_weights(), data, agreement,
                                                   two_bit_then_eight_then_float(3.0));
  std::cout << r.to_string();
  EXPECT_EQ(r.float_metric, 100.0);
  // conv1 and conv2 end in the top module's torch.relu: one group.
  EXPECT_EQ(r.layers.size(), 2u);
  EXPECT_EQ(r.layer_levels.size(), 3u);
  EXPECT_TRUE(r.met);
  EXPECT_GE(r.metric, 97.0);
  EXPECT_EQ(r.evaluations, 1 + static_cast<int64_t>(r.steps.size()));
  EXPECT_LT(r.steps.front().metric, 97.0) << "2-bit weights everywhere should miss the tolerance";
  auto chosen = r.model;
  EXPECT_EQ(agreement(chosen), r.metric);  // the returned model is the one measured
}

TEST_F(GraphPtq, MixedPrecisionReportsTheBestWhenTheToleranceCannotBeMet) {
  auto model = small_net();
  std::vector<at::Tensor> data{at::randn({16, 1, 12, 12})};
  int calls = 0;
  // 100 for the float model, then 10, 11, 12, ...: never within 1 point.
  auto metric = [&](torch::jit::Module&) { return calls++ == 0 ? 100.0 : 9.0 + calls; };
  const auto r = tq::graph::search_mixed_precision(model, four_bit_weights(), data, metric,
                                                   two_bit_then_eight_then_float(1.0));
  EXPECT_FALSE(r.met);
  // The float model, the start, then each of the 2 groups (conv1+conv2, fc) up two levels.
  EXPECT_EQ(r.evaluations, 1 + 1 + 2 * 2);
  EXPECT_EQ(r.metric, 9.0 + 6);
  EXPECT_EQ(r.layer_levels.size(), 3u);
  for (const auto& [layer, level] : r.layer_levels) EXPECT_EQ(level, "float") << layer;

  auto boom = [](torch::jit::Module&) -> double { throw std::runtime_error("boom"); };
  expect_error([&] { tq::graph::search_mixed_precision(model, four_bit_weights(), data, boom, two_bit_then_eight_then_float(1)); },
               "the evaluation function failed on the float model: boom");
  expect_error([&] { tq::graph::search_mixed_precision(model, four_bit_weights(), data, metric, tq::graph::MixedPrecisionOptions()); },
               "no precision levels given");
}

// Ranking by the metric: each group alone at the top level, one evaluation each; the group that
// gains most moves first, and a group that meets the tolerance alone ends the search.
TEST_F(GraphPtq, MixedPrecisionRanksByTheMetricEachLayerGainsAlone) {
  auto model = small_net();
  std::vector<at::Tensor> data{at::randn({16, 1, 12, 12})};
  auto scripted = [](std::vector<double> values) {
    return [values, calls = size_t{0}](torch::jit::Module&) mutable { return values.at(calls++); };
  };
  auto o = two_bit_then_eight_then_float(1.0);
  o.ranking = tq::graph::SensitivityRanking::Metric;
  // float 100, start 50, conv1+conv2 alone in float 60, fc alone 90; then fc -> W8A8 gives 99.5.
  auto r = tq::graph::search_mixed_precision(model, four_bit_weights(), data, scripted({100, 50, 60, 90, 99.5}), o);
  std::cout << r.to_string();
  EXPECT_EQ(r.layers, (std::vector<std::string>{"fc", "conv1+conv2"}));
  EXPECT_TRUE(r.met);
  EXPECT_EQ(r.metric, 99.5);
  EXPECT_EQ(r.evaluations, 5);
  ASSERT_EQ(r.steps.size(), 4u);
  EXPECT_EQ(r.steps[1].moved, "conv1+conv2 alone");
  EXPECT_EQ(r.steps[3].moved, "fc");
  EXPECT_EQ(r.steps[3].to, "W8A8");
  EXPECT_EQ(r.layer_levels.at("fc"), "W8A8");
  EXPECT_EQ(r.layer_levels.at("conv1"), "W2A8");

  // fc alone in float already within the tolerance: chosen without a greedy step.
  r = tq::graph::search_mixed_precision(model, four_bit_weights(), data, scripted({100, 50, 60, 99.2}), o);
  EXPECT_TRUE(r.met);
  EXPECT_EQ(r.metric, 99.2);
  EXPECT_EQ(r.evaluations, 4);
  EXPECT_EQ(r.layer_levels.at("fc"), "float");
  EXPECT_EQ(r.layer_levels.at("conv2"), "W2A8");
}

INSTANTIATE_TEST_SUITE_P(ScriptedAndTraced, GraphPtqForms, ::testing::Values(Form::Scripted, Form::Traced), form_name);
