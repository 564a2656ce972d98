// The AdaRound algorithm (tq::ptq::adaround_layer) against tools/adaround_reference.py: the same
// layer, cached inputs, targets, options and seed must give the same rounding.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "tq/observers/default_observers.h"
#include "tq/ptq/adaround.h"

using tq::testing::expect_error;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;
namespace obs = tq::observers;

namespace {

tq::ptq::WeightedLayer layer_of(const nlohmann::json& c) {
  tq::ptq::WeightedLayer layer;
  layer.name = c.at("name");
  layer.kind = c.at("kind") == "linear" ? tq::ptq::WeightedLayer::Kind::Linear : tq::ptq::WeightedLayer::Kind::Conv;
  layer.weight = to_tensor(c.at("weight"));
  layer.bias = to_tensor(c.at("bias"));
  layer.relu = c.at("relu");
  if (layer.kind == tq::ptq::WeightedLayer::Kind::Conv) {
    layer.stride = c.at("stride").get<std::vector<int64_t>>();
    layer.padding = c.at("padding").get<std::vector<int64_t>>();
    layer.dilation = c.at("dilation").get<std::vector<int64_t>>();
    layer.groups = c.at("groups");
  }
  return layer;
}

obs::ObserverFactory weight_observer(bool per_channel, int64_t qmin, int64_t qmax) {
  if (per_channel) {
    return obs::with_args<obs::PerChannelMinMaxObserver>(obs::PerChannelMinMaxObserverOptions()
                                                             .dtype(tq::QDType::QInt8)
                                                             .qscheme(tq::QScheme::PerChannelSymmetric)
                                                             .quant_min(qmin)
                                                             .quant_max(qmax));
  }
  return obs::with_args<obs::MinMaxObserver>(
      obs::MinMaxObserverOptions().dtype(tq::QDType::QInt8).qscheme(tq::QScheme::PerTensorSymmetric).quant_min(qmin).quant_max(qmax));
}

tq::ptq::AdaRoundOptions options_of(const nlohmann::json& o) {
  return tq::ptq::AdaRoundOptions()
      .iterations(o.at("iterations"))
      .batch_size(o.at("batch_size"))
      .seed(o.at("seed").get<uint64_t>())
      .reg_lambda(o.at("reg_lambda"))
      .beta_start(o.at("beta_start"))
      .beta_end(o.at("beta_end"))
      .warm_start(o.at("warm_start"))
      .learning_rate(o.at("lr"));
}

}  // namespace

TEST(AdaRoundGolden, SameRoundingAsThePythonReference) {
  const auto& g = tq::testing::machine_golden("adaround_layer.json");
  int cases = 0;
  for (const auto& c : g.at("cases")) {
    const auto layer = layer_of(c);
    const auto r = tq::ptq::adaround_layer(layer, weight_observer(c.at("per_channel"), c.at("quant_min"), c.at("quant_max")),
                                           to_tensor(c.at("inputs")), to_tensor(c.at("targets")), options_of(c.at("options")));
    const std::string name = c.at("name");
    EXPECT_TRUE(tensors_equal(r.scale, to_tensor(c.at("scale")))) << name;
    EXPECT_TRUE(tensors_equal(r.rounded_weight, to_tensor(c.at("rounded")))) << name;
    EXPECT_EQ(r.changed, c.at("changed").get<int64_t>()) << name;
    EXPECT_GT(r.changed, 0) << name << ": AdaRound should move some weights off nearest rounding";
    EXPECT_NEAR(r.loss_nearest, c.at("loss_nearest").get<double>(), 1e-6 * c.at("loss_nearest").get<double>()) << name;
    EXPECT_NEAR(r.loss_adaround, c.at("loss_adaround").get<double>(), 1e-6 * c.at("loss_adaround").get<double>())
        << name;
    EXPECT_LT(r.loss_adaround, r.loss_nearest) << name;
    // The int8 weight holds exactly the rounded values.
    EXPECT_TRUE(tensors_equal(r.weight_q.dequantize(), r.rounded_weight)) << name;
    ++cases;
  }
  EXPECT_EQ(cases, 3);
}

TEST(AdaRound, WithNoGradientTheRoundingStaysNearest) {
  // Inputs of zeros: the output is the bias whatever the rounding, so no gradient reaches V and the
  // hard rounding stays nearest (V starts on the nearest side).
  tq::ptq::WeightedLayer layer;
  layer.weight = at::randn({6, 5});
  layer.bias = at::randn({6});
  const auto x = at::zeros({40, 5});
  const auto r = tq::ptq::adaround_layer(layer, weight_observer(true, -128, 127), x, layer.forward(x),
                                         tq::ptq::AdaRoundOptions().iterations(50).warm_start(0.99));
  EXPECT_EQ(r.changed, 0);
  EXPECT_EQ(r.loss_nearest, r.loss_adaround);
}

TEST(AdaRound, BadInputIsAClearError) {
  tq::ptq::WeightedLayer layer;
  layer.name = "fc";
  layer.weight = at::randn({6, 5});
  const auto x = at::randn({10, 5});
  const auto y = layer.forward(x);
  const auto o = tq::ptq::AdaRoundOptions().iterations(5);
  const auto w8 = weight_observer(true, -128, 127);
  expect_error([&] { tq::ptq::adaround_layer(layer, w8, at::randn({10, 4}), y, o); }, "fc: a Linear with 5 input features");
  expect_error([&] { tq::ptq::adaround_layer(layer, w8, x, y.slice(0, 0, 9), o); }, "same number of samples");
  expect_error([&] { tq::ptq::adaround_layer(layer, w8, x, at::randn({10, 7}), o); }, "targets have shape");
  expect_error([&] { tq::ptq::adaround_layer(layer, w8, x, y, tq::ptq::AdaRoundOptions().iterations(0)); }, "iterations must be at least 1");
  expect_error([&] { tq::ptq::adaround_layer(layer, w8, x, y, tq::ptq::AdaRoundOptions().beta_start(1).beta_end(2)); },
               "beta must fall");
  expect_error([&] { tq::ptq::adaround_layer(layer, w8, x, y, tq::ptq::AdaRoundOptions().warm_start(1.0)); },
               "warm_start must be in [0, 1)");
  // Affine weights have a zero point AdaRound's quantizer does not take.
  const auto affine = obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions().dtype(tq::QDType::QInt8));
  expect_error([&] { tq::ptq::adaround_layer(layer, affine, x, y, o); }, "only symmetric quantization");
}

TEST(AdaRound, BetaFollowsTheCosineAfterTheWarmStart) {
  const auto o = tq::ptq::AdaRoundOptions().iterations(100).warm_start(0.2).beta_start(20).beta_end(2);
  EXPECT_DOUBLE_EQ(tq::ptq::adaround_beta(o, 20), 20.0);
  EXPECT_DOUBLE_EQ(tq::ptq::adaround_beta(o, 60), 11.0);  // halfway: the mean of the two
  EXPECT_NEAR(tq::ptq::adaround_beta(o, 100), 2.0, 1e-12);
}
