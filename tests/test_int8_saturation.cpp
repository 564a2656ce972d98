// Int8 that never saturates silently (tq/kernels/int8_saturation.h). x86 int8 kernels without
// VNNI add pairs of uint8 x int8 products in int16: full-range activations can overflow there.
// These tests hold on every CPU: what they expect follows from the ISA the engine reports, and CI
// runs them both on the machine's own ISA and with oneDNN capped at AVX2 (make test-avx2).
#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdlib>
#include <string>

#include "golden.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/graph/qat.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/nn/activations.h"
#include "tq/nn/modules.h"
#include "tq/quant/qconfig_mapping.h"
#include "tq/quant/qconfig_spec.h"
#include "tq/quant/quantize.h"

using tq::kernels::int8::choose_activation_range;
using tq::kernels::int8::int8_isa;
using tq::testing::capture_warnings;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool contains(const std::vector<std::string>& messages, const std::string& needle) {
  for (const auto& m : messages) {
    if (m.find(needle) != std::string::npos) return true;
  }
  return false;
}

// The engine the tool and the demos use where LibTorch has it.
std::string x86_engine() {
  const auto engines = tq::kernels::int8::available_engines();
  return std::find(engines.begin(), engines.end(), "onednn") != engines.end() ? "onednn" : engines.at(0);
}

tq::nn::QConfig qconfig_with_range(const std::string& engine, bool reduce_range) {
  tq::quant::QConfigSpec spec;
  spec.activation = "minmax";
  spec.reduce_range = reduce_range;
  return tq::quant::make_qconfig(engine, spec);
}

// The share of outputs within one output quantization step of the reference.
double share_within_one_step(const at::Tensor& y, const at::Tensor& reference, double step) {
  return (y - reference).abs().le(step * 1.001).to(at::kDouble).mean().item<double>();
}

torch::jit::Module linear_layer(int64_t in, int64_t out, double std) {
  torch::jit::Module m("Linear");
  m.register_parameter("weight", at::randn({out, in}) * std, false);
  m.register_parameter("bias", at::randn({out}) * 0.1, false);
  m.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
  return m;
}

// A convolution and three Linears (the shape of model that showed the saturation): 256 inputs of
// full-range activations per output of fc1 make the int16 pair sums overflow without VNNI.
torch::jit::Module conv_and_three_linears() {
  at::manual_seed(7);
  torch::jit::Module conv("Conv2d");
  conv.register_parameter("weight", at::randn({16, 1, 3, 3}) * 0.5, false);
  conv.register_parameter("bias", at::randn({16}) * 0.1, false);
  conv.define("def forward(self, x):\n    return torch.conv2d(x, self.weight, self.bias, [2, 2], [1, 1], [1, 1], 1)\n");
  torch::jit::Module net("ConvThreeLinears");
  net.register_module("conv", conv);
  net.register_module("fc1", linear_layer(16 * 4 * 4, 64, 0.1));
  net.register_module("fc2", linear_layer(64, 64, 0.2));
  net.register_module("fc3", linear_layer(64, 10, 0.2));
  net.define(R"(
    def forward(self, x):
        x = torch.relu(self.conv.forward(x))
        x = torch.relu(self.fc1.forward(torch.flatten(x, 1)))
        x = torch.relu(self.fc2.forward(x))
        return self.fc3.forward(x)
  )");
  return net;
}

// The last quantization point's scale: the model's output step.
double output_step(const tq::graph::Summary& summary) {
  double step = 0;
  for (const auto& p : summary.points) {
    if (p.kind == "output") step = p.qparams.scale;
  }
  return step;
}

class Int8Saturation : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_engine_ = tq::kernels::int8::current_engine();
    engine_ = x86_engine();
    tq::kernels::int8::set_engine(engine_);
  }
  void TearDown() override { tq::kernels::int8::set_engine(saved_engine_); }
  std::string engine_, saved_engine_;
};

}  // namespace

TEST(Int8Isa, QnnpackNeverSaturates) {
  const auto isa = int8_isa("qnnpack");
  EXPECT_FALSE(isa.saturates) << isa.isa;
  EXPECT_EQ(isa.engine, "qnnpack");
}

TEST(Int8Isa, OnednnFollowsItsEffectiveIsa) {
  const auto isa = int8_isa("onednn");
  std::cout << "oneDNN int8: " << isa.isa << (isa.saturates ? " (saturates full-range activations)" : "") << "\n";
  EXPECT_EQ(isa.saturates, !isa.vnni);
#if defined(__x86_64__)
  const std::string cap = env("ONEDNN_MAX_CPU_ISA").empty() ? env("DNNL_MAX_CPU_ISA") : env("ONEDNN_MAX_CPU_ISA");
  if (cap == "AVX2" || cap == "avx2") {
    EXPECT_TRUE(isa.saturates) << "oneDNN capped at AVX2 has no VNNI: " << isa.isa;
  } else if (cap.empty() && !__builtin_cpu_supports("avx512vnni") && !__builtin_cpu_supports("avxvnni")) {
    EXPECT_TRUE(isa.saturates) << "a CPU without VNNI: " << isa.isa;
  } else if (cap.empty() && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) {
    EXPECT_FALSE(isa.saturates) << "an AVX-512 VNNI CPU: " << isa.isa;
  }
#else
  EXPECT_FALSE(isa.saturates) << "no int16 pair sums off x86: " << isa.isa;
#endif
}

// What int8_isa claims is what each engine computes: where it says an engine does not saturate, a
// depthwise and a dense 3x3 convolution of full-range activations (codes up to 255) with weights at
// int8's ends (-128, 127: pairs of products reach 65280) are within one output step of the exact
// result. FBGEMM's depthwise convolutions, once taken for safe on VNNI CPUs, are 45 steps off here.
TEST(Int8Isa, EnginesThatClaimNoSaturationComputeFullRangeConvolutionsExactly) {
  namespace int8 = tq::kernels::int8;
  const auto saved = int8::current_engine();
  at::manual_seed(5);
  const auto x = at::randint(128, 256, {4, 32, 12, 12}).to(at::kFloat) * 0.01;
  for (const auto& engine : int8::available_engines()) {
    int8::set_engine(engine);
    const auto isa = int8_isa(engine);
    for (const int64_t groups : {int64_t{32}, int64_t{1}}) {
      const auto values = at::where(at::rand({32, 32 / groups, 3, 3}) < 0.5, at::full({}, -128), at::full({}, 127))
                              .to(at::kChar);
      const auto weight_q = int8::make_quantized_weight(values, at::full({32}, 0.001, at::kDouble),
                                                        at::zeros({32}, at::kLong));
      const auto x_q = int8::quantize_activation(x, 0.01, 0);
      const auto exact = at::conv2d(int8::dequantize(x_q), values.to(at::kFloat) * 0.001, {}, 1, 1, 1, groups);
      const double step = exact.abs().max().item<double>() / 126;
      const auto packed = int8::prepack_conv(2, weight_q, c10::nullopt, {1, 1}, {1, 1}, {1, 1}, groups);
      const auto y = int8::dequantize(int8::conv(2, x_q, packed, step, 128, false));
      const double worst = (y - exact).abs().max().item<double>() / step;
      std::cout << engine << (groups == 1 ? " dense" : " depthwise") << ": worst " << worst << " steps ("
                << isa.isa << (isa.saturates ? ", saturates" : "") << ")\n";
      if (!isa.saturates) {
        EXPECT_LE(worst, 1.0) << engine << (groups == 1 ? " dense" : " depthwise") << " convolution: " << isa.isa
                              << " claims no saturation";
      }
    }
  }
  int8::set_engine(saved);
}

TEST(Int8Isa, TheToolsRangeIsReducedUnlessItTargetsVnni) {
  for (const std::string engine : {"onednn", "x86", "fbgemm"}) {
    EXPECT_TRUE(choose_activation_range(engine, false).reduce_range) << engine;
    EXPECT_FALSE(choose_activation_range(engine, true).reduce_range) << engine;
  }
  // qnnpack sums in int32: the full range is right for it on every CPU.
  EXPECT_FALSE(choose_activation_range("qnnpack", false).reduce_range);
  EXPECT_NE(choose_activation_range("onednn", false).why.find("[0, 127]"), std::string::npos);
  // The qconfig the tool builds from the choice: [0, 127] on onednn, unlike PyTorch's onednn default.
  tq::quant::QConfigSpec spec;
  spec.reduce_range = true;
  auto act = tq::quant::make_qconfig("onednn", spec).activation();
  EXPECT_FALSE(tq::nn::quantizer_full_range_uint8(*act));
  spec.reduce_range = std::nullopt;
  act = tq::quant::make_qconfig("onednn", spec).activation();
  EXPECT_TRUE(tq::nn::quantizer_full_range_uint8(*act));
}

TEST(Int8Isa, DefaultOnednnQConfigWarnsWhereItSaturates) {
  const bool saturates = int8_isa("onednn").saturates;
  const auto warnings = capture_warnings([] { tq::quant::get_default_qconfig("onednn"); });
  EXPECT_EQ(contains(warnings, "full-range activations saturate"), saturates) << warnings.size();
  const auto qat = capture_warnings([] { tq::quant::get_default_qat_qconfig("onednn"); });
  EXPECT_EQ(contains(qat, "get_default_qat_qconfig(\"onednn\")"), saturates);
  // The reduced-range backends never warn.
  EXPECT_TRUE(capture_warnings([] { tq::quant::get_default_qconfig("x86"); }).empty());
  EXPECT_TRUE(capture_warnings([] { tq::quant::get_default_qconfig("qnnpack"); }).empty());
}

TEST_F(Int8Saturation, GraphModeWithTheToolsRangeStaysWithinOneStepOfItsReference) {
  const auto model = conv_and_three_linears();
  at::manual_seed(11);
  std::vector<at::Tensor> calibration;
  for (int i = 0; i < 4; ++i) calibration.push_back(at::randn({16, 1, 8, 8}) * 2);
  const auto x = at::randn({64, 1, 8, 8}) * 2;
  for (const bool full_range : {false, true}) {
    tq::graph::GraphQuantizeOptions options;
    options.mapping.set_global(qconfig_with_range(engine_, choose_activation_range(engine_, full_range).reduce_range));
    auto observed = tq::graph::prepare(model, options);
    for (const auto& b : calibration) observed.calibrate(b);
    const auto summary = observed.summary();
    torch::jit::Module int8;
    const auto warnings = capture_warnings([&] { int8 = observed.convert(); });
    auto reference = observed.convert(/*reference=*/true);
    const auto y = int8.forward({x}).toTensor();
    const auto y_ref = reference.forward({x}).toTensor();
    const double step = output_step(summary);
    ASSERT_GT(step, 0);
    const double within = share_within_one_step(y, y_ref, step);
    if (!full_range) {
      EXPECT_TRUE(summary.full_range_layers.empty());
      EXPECT_TRUE(warnings.empty());
      EXPECT_GE(within, 0.99) << "reduced range, " << int8_isa(engine_).isa;
      continue;
    }
    // conv takes the graph input; fc1..fc3 take ReLU outputs on [0, 255].
    EXPECT_EQ(summary.full_range_layers, (std::vector<std::string>{"conv", "fc1", "fc2", "fc3"}));
    EXPECT_NE(summary.to_string().find("full range [0, 255] into 4 int8"), std::string::npos) << summary.to_string();
    EXPECT_TRUE(int8.hasattr(tq::graph::kFullRangeLayersAttribute));
    if (int8_isa(engine_).saturates) {
      ASSERT_EQ(warnings.size(), 1u);
      EXPECT_NE(warnings[0].find("4 int8 layer(s) take full-range activations [0, 255]"), std::string::npos)
          << warnings[0];
      EXPECT_NE(warnings[0].find("conv, fc1, fc2, fc3"), std::string::npos) << warnings[0];
      // A model saved and loaded again warns where it is loaded.
      const std::string path = std::string(TQ_TEST_OUTPUT_DIR) + "/saturation_full_range_int8.pt";
      tq::graph::save_torchscript(int8, path);
      const auto on_load = capture_warnings([&] { tq::graph::load_torchscript(path); });
      ASSERT_EQ(on_load.size(), 1u);
      EXPECT_NE(on_load[0].find("load_torchscript(" + path + ")"), std::string::npos) << on_load[0];
      std::cout << "full range on " << int8_isa(engine_).isa << ": " << 100 * within
                << "% of outputs within one step of the reference form\n";
    } else {
      EXPECT_TRUE(warnings.empty());
      EXPECT_GE(within, 0.99) << "full range with VNNI, " << int8_isa(engine_).isa;
    }
  }
}

TEST_F(Int8Saturation, EagerModeWithTheToolsRangeStaysWithinOneStepOfItsReference) {
  auto make = [] {
    at::manual_seed(3);
    torch::nn::Sequential m(tq::nn::QuantStub(), tq::nn::Linear(256, 64), tq::nn::ReLU(), tq::nn::Linear(64, 64),
                            tq::nn::ReLU(), tq::nn::Linear(64, 10), tq::nn::DeQuantStub());
    m->eval();
    return m;
  };
  at::manual_seed(5);
  const auto calibration = at::randn({128, 256}) * 2;
  const auto x = at::randn({64, 256}) * 2;
  for (const bool full_range : {false, true}) {
    const auto qconfig = qconfig_with_range(engine_, choose_activation_range(engine_, full_range).reduce_range);
    auto int8 = make(), reference = make();
    for (auto* m : {&int8, &reference}) {
      tq::quant::prepare(**m, tq::quant::QConfigMapping().set_global(qconfig));
      (*m)->forward(calibration);
    }
    const auto warnings = capture_warnings([&] { tq::quant::convert(*int8); });
    tq::quant::convert(*reference, /*is_reference=*/true);
    const double step = int8[5]->as<tq::nn::LinearImpl>()->output_scale();
    const double within = share_within_one_step(int8->forward(x), reference->forward(x), step);
    if (!full_range || !int8_isa(engine_).saturates) {
      EXPECT_TRUE(warnings.empty()) << (warnings.empty() ? "" : warnings[0]);
      EXPECT_GE(within, 0.99) << (full_range ? "full" : "reduced") << " range, " << int8_isa(engine_).isa;
    } else {
      ASSERT_EQ(warnings.size(), 1u);
      EXPECT_NE(warnings[0].find("convert: 3 int8 layer(s) take full-range activations"), std::string::npos)
          << warnings[0];
      EXPECT_NE(warnings[0].find("1, 3, 5"), std::string::npos) << warnings[0];
      std::cout << "full range on " << int8_isa(engine_).isa << ": " << 100 * within
                << "% of outputs within one step of the reference form\n";
    }
  }
}

TEST_F(Int8Saturation, GraphQatWithTheToolsRangeStaysWithinOneStepOfItsReference) {
  // Graph-mode QAT with FX's x86 mapping ([0, 127] activations), a few SGD steps, then the int8
  // model against its reference form (float ops between the trained qparams' quantize /
  // dequantize pairs).
  auto qat = tq::graph::prepare_qat(conv_and_three_linears(), tq::graph::GraphQuantizeOptions::for_backend_qat("x86"));
  at::manual_seed(13);
  const auto x = at::randn({32, 1, 8, 8}) * 2;
  const auto target = at::randn({32, 10});
  const auto params = qat.parameters();
  qat.train();
  for (int step = 0; step < 5; ++step) {
    auto loss = (qat.forward(x) - target).pow(2).mean();
    loss.backward();
    at::NoGradGuard no_grad;
    for (auto p : params) {
      if (!p.grad().defined()) continue;
      p.sub_(p.grad() * 0.01);
      p.mutable_grad().zero_();
    }
  }
  qat.eval();
  torch::jit::Module int8;
  const auto warnings = capture_warnings([&] { int8 = qat.convert(); });
  EXPECT_TRUE(warnings.empty()) << (warnings.empty() ? "" : warnings[0]);
  EXPECT_TRUE(qat.summary().full_range_layers.empty());
  auto reference = qat.convert(/*reference=*/true);
  const auto y = int8.forward({x}).toTensor();
  const auto y_ref = reference.forward({x}).toTensor();
  const double step = output_step(qat.summary());
  ASSERT_GT(step, 0);
  EXPECT_GE(share_within_one_step(y, y_ref, step), 0.99) << int8_isa(engine_).isa;
}
