// Seed 004 conformance: tq's graph mode with the seed's configuration gives the seed Quantizer's
// qparams at every quantization point and its int8 output (golden: tools/gen_golden_graph_seed.py).
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <fstream>

#include "golden.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"

namespace {

using tq::testing::machine_golden;
using tq::testing::machine_golden_path;
using tq::testing::to_tensor;

class GraphSeed : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { tq::kernels::int8::set_engine("qnnpack"); }
};

// The seed-conformance golden needs seed 004's own code (the project's shared/seeds beside the
// repository, as CI lays it out); tools/gen_golden_graph_seed.py says when it is missing.
#define TQ_SKIP_WITHOUT_SEED_GOLDEN()                                                                    \
  if (!std::ifstream(machine_golden_path("graph/seed.json")).good()) {                                    \
    GTEST_SKIP() << "no seed-004 golden on this machine (seed 004 not found beside the repository): " \
                 << machine_golden_path("graph/seed.json");                                               \
  }

tq::graph::ObservedModel calibrated(const std::string& file) {
  const auto& g = machine_golden("graph/seed.json");
  auto model = tq::graph::load_torchscript(machine_golden_path("graph/" + file));
  auto observed = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::fx_test_reference());
  for (const auto& b : g["calibration"]) observed.calibrate(to_tensor(b));
  return observed;
}

TEST_P(GraphSeed, SameQParamsAtEveryQuantizationPoint) {
  TQ_SKIP_WITHOUT_SEED_GOLDEN();
  const auto& g = machine_golden("graph/seed.json");
  const auto summary = calibrated(GetParam()).summary();
  const auto& expected = g["points"];
  ASSERT_EQ(summary.points.size(), expected.size()) << summary.to_string();
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("point " + std::to_string(i) + " (" + expected[i]["node"].get<std::string>() + ")");
    EXPECT_EQ(summary.points[i].kind, expected[i]["kind"].get<std::string>());
    // Bit-equal doubles: the seed computes in Python floats.
    EXPECT_EQ(summary.points[i].qparams.scale, expected[i]["scale"].get<double>());
    EXPECT_EQ(summary.points[i].qparams.zero_point, expected[i]["zero_point"].get<int64_t>());
  }
}

TEST_P(GraphSeed, SameInt8Output) {
  TQ_SKIP_WITHOUT_SEED_GOLDEN();
  const auto& g = machine_golden("graph/seed.json");
  auto int8 = calibrated(GetParam()).convert();
  const auto out = int8.forward({to_tensor(g["input"])}).toTensor();
  EXPECT_TRUE(tq::testing::tensors_equal(out, to_tensor(g["output"])));
}

TEST_P(GraphSeed, MatchesAsTheSeed) {
  TQ_SKIP_WITHOUT_SEED_GOLDEN();
  // conv1 alone, conv2+relu2, conv3+bn3, add, pool, conv4+bn4+relu4, avgpool, gap; flatten float.
  const auto summary = calibrated(GetParam()).summary();
  std::map<std::string, int> by_handler;
  for (const auto& e : summary.nodes) {
    if (e.quantized) by_handler[e.handler]++;
  }
  EXPECT_EQ(by_handler["ConvNormRelu"], 1 + 2 + 2 + 3);  // nodes of the four conv matches
  EXPECT_EQ(by_handler["Add"], 1);
  EXPECT_EQ(by_handler["CopyNode"], 3);  // max_pool2d, avg_pool2d, adaptive_avg_pool2d
  for (const auto& e : summary.nodes) {
    if (e.op == "aten::flatten") EXPECT_FALSE(e.quantized);
  }
}

INSTANTIATE_TEST_SUITE_P(ScriptedAndTraced, GraphSeed, ::testing::Values("seed_model_script.pt", "seed_model_trace.pt"),
                         [](const auto& info) { return info.param == "seed_model_script.pt" ? "Scripted" : "Traced"; });

}  // namespace

namespace {

// The reference form: float ops between quantize / dequantize pairs, no int8 kernels, and
// (almost) the int8 model's numbers: the kernels round their int32 accumulators once, the
// reference form computes in float, so an output may differ by one step.
TEST_P(GraphSeed, ReferenceFormIsFloatOpsBetweenQuantizeDequantize) {
  TQ_SKIP_WITHOUT_SEED_GOLDEN();
  const auto& g = machine_golden("graph/seed.json");
  auto observed = calibrated(GetParam());
  auto reference = observed.convert(/*reference=*/true);
  int quantize_ops = 0;
  for (auto* n : reference.get_method("forward").graph()->nodes()) {
    const std::string k = n->kind().toQualString();
    EXPECT_NE(k.rfind("quantized::", 0), 0u) << k;
    if (k == "aten::quantize_per_tensor") ++quantize_ops;
  }
  EXPECT_GE(quantize_ops, 6);
  at::NoGradGuard no_grad;
  const auto x = to_tensor(g["input"]);
  const auto ref = reference.forward({x}).toTensor();
  const auto int8 = to_tensor(g["output"]);
  const double step = observed.summary().points.back().qparams.scale;
  const double within = ((ref - int8).abs() <= step * 1.0001).to(at::kFloat).mean().item<double>();
  EXPECT_GE(within, 0.99) << "max difference " << (ref - int8).abs().max().item<double>() << ", step " << step;
}

}  // namespace

namespace {

// The observed form saves, reloads and goes on calibrating: two batches before saving and two
// after give the seed's qparams and output for all four.
TEST(GraphObservedForm, SavesReloadsAndCalibratesFurther) {
  TQ_SKIP_WITHOUT_SEED_GOLDEN();
  tq::kernels::int8::set_engine("qnnpack");
  const auto& g = machine_golden("graph/seed.json");
  const std::string path = std::string(TQ_TEST_OUTPUT_DIR) + "/seed_observed.pt";
  {
    auto model = tq::graph::load_torchscript(machine_golden_path("graph/seed_model_script.pt"));
    auto observed = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::fx_test_reference());
    observed.calibrate(to_tensor(g["calibration"][0]));
    observed.calibrate(to_tensor(g["calibration"][1]));
    observed.save(path);
  }
  auto observed = tq::graph::load_observed(path, tq::graph::GraphQuantizeOptions::fx_test_reference());
  EXPECT_EQ(observed.batches_seen(), 2);
  observed.calibrate(to_tensor(g["calibration"][2]));
  observed.calibrate(to_tensor(g["calibration"][3]));
  const auto summary = observed.summary();
  ASSERT_EQ(summary.points.size(), g["points"].size());
  for (size_t i = 0; i < summary.points.size(); ++i) {
    EXPECT_EQ(summary.points[i].qparams.scale, g["points"][i]["scale"].get<double>());
  }
  at::NoGradGuard no_grad;
  const auto out = observed.convert().forward({to_tensor(g["input"])}).toTensor();
  EXPECT_TRUE(tq::testing::tensors_equal(out, to_tensor(g["output"])));
}

TEST(GraphObservedForm, RefusesOtherOptionsAndPlainModels) {
  TQ_SKIP_WITHOUT_SEED_GOLDEN();
  const std::string path = std::string(TQ_TEST_OUTPUT_DIR) + "/seed_observed_other.pt";
  auto model = tq::graph::load_torchscript(machine_golden_path("graph/seed_model_script.pt"));
  auto observed = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::fx_test_reference());
  observed.calibrate(to_tensor(machine_golden("graph/seed.json")["calibration"][0]));
  observed.save(path);
  tq::testing::expect_error(
      [&] { tq::graph::load_observed(path, tq::graph::GraphQuantizeOptions::for_backend("qnnpack")); },
      "was observed with other options");
  tq::testing::expect_error(
      [&] { tq::graph::load_observed(machine_golden_path("graph/seed_model_script.pt"), tq::graph::GraphQuantizeOptions::fx_test_reference()); },
      "is not an observed model");
}

}  // namespace
