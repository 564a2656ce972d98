#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "golden.h"
#include "tq/fake_quant/default_fake_quants.h"
#include "tq/fake_quant/learnable_fake_quantize.h"
#include "tq/observers/default_observers.h"
#include "tq/serialize/state_dict.h"

using namespace tq::fake_quant;
namespace obs = tq::observers;
using tq::QDType;
using tq::QScheme;
using tq::testing::tensors_close;
using tq::testing::expect_error;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;

namespace {

const std::map<std::string, FakeQuantizeFactory>& factories() {
  static const std::map<std::string, FakeQuantizeFactory> f = {
      {"default_fake_quant", default_fake_quant()},
      {"default_weight_fake_quant", default_weight_fake_quant()},
      {"default_dynamic_fake_quant", default_dynamic_fake_quant()},
      {"default_fixed_qparams_range_neg1to1_fake_quant", default_fixed_qparams_range_neg1to1_fake_quant()},
      {"default_fixed_qparams_range_0to1_fake_quant", default_fixed_qparams_range_0to1_fake_quant()},
      {"default_per_channel_weight_fake_quant", default_per_channel_weight_fake_quant()},
      {"default_embedding_fake_quant", default_embedding_fake_quant()},
      {"default_fused_act_fake_quant", default_fused_act_fake_quant()},
      {"default_fused_wt_fake_quant", default_fused_wt_fake_quant()},
      {"default_fused_per_channel_wt_fake_quant", default_fused_per_channel_wt_fake_quant()},
      {"fused_wt_fake_quant_range_neg_127_to_127", fused_wt_fake_quant_range_neg_127_to_127()},
      {"fused_per_channel_wt_fake_quant_range_neg_127_to_127", fused_per_channel_wt_fake_quant_range_neg_127_to_127()},
  };
  return f;
}

std::shared_ptr<LearnableFakeQuantize> golden_lsq() {
  return std::make_shared<LearnableFakeQuantize>(LearnableFakeQuantizeOptions().use_grad_scaling(true));
}

}  // namespace

// Every default fake quantizer over three batches (observer off for the third): output, input
// gradient, scale and zero point bit for bit; the LSQ module through static estimation and
// parameter learning (scale / zero-point gradients are float32 sums in PyTorch: rtol 1e-5).
TEST(FakeQuantizeModulesGolden, DefaultFactoriesMatchPyTorch) {
  int checked = 0;
  for (const auto& c : tq::testing::golden("fake_quant_modules.json").at("cases")) {
    const std::string name = c.at("name");
    std::shared_ptr<FakeQuantizeBase> fq;
    std::shared_ptr<LearnableFakeQuantize> lsq;
    if (name == "learnable_fake_quantize") {
      lsq = golden_lsq();
      fq = lsq;
    } else {
      fq = factories().at(name)();
    }
    for (size_t i = 0; i < c.at("steps").size(); ++i) {
      const auto& s = c.at("steps")[i];
      if (lsq && i == 1) lsq->enable_param_learning();
      if (!lsq && i == 2) disable_observer(*fq);
      auto x = to_tensor(s.at("x")).set_requires_grad(true);
      auto y = fq->forward(x);
      (y * to_tensor(s.at("dy"))).sum().backward();
      const std::string label = name + " step " + std::to_string(i);
      EXPECT_TRUE(tensors_equal(y, to_tensor(s.at("y")))) << label;
      EXPECT_TRUE(tensors_equal(x.grad(), to_tensor(s.at("dx")))) << label;
      const auto sd = tq::serialize::state_dict(*fq);
      auto find = [&](const std::string& key) {
        for (const auto& [k, v] : sd) if (k == key) return v;
        return at::Tensor();
      };
      EXPECT_TRUE(tensors_equal(find("scale").detach(), to_tensor(s.at("scale")))) << label;
      EXPECT_TRUE(tensors_equal(find("zero_point").detach(), to_tensor(s.at("zero_point")))) << label;
      if (lsq && s.contains("dscale")) {
        EXPECT_TRUE(tensors_close(lsq->scale().grad(), to_tensor(s.at("dscale")), 1e-5, 1e-7)) << label;
        EXPECT_TRUE(tensors_close(lsq->zero_point().grad(), to_tensor(s.at("dzero_point")), 1e-5, 1e-7)) << label;
        lsq->scale().mutable_grad().reset();
        lsq->zero_point().mutable_grad().reset();
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 13);
}

TEST(FakeQuantizeModules, PyTorchStatesLoadAndGiveTheSameOutput) {
  const auto& states = tq::testing::golden("fq_state_expected.json").at("states");
  std::map<std::string, std::shared_ptr<FakeQuantizeBase>> modules = {
      {"fake_quant", default_fake_quant()()},
      {"per_channel_weight", default_per_channel_weight_fake_quant()()},
      {"fused_act", default_fused_act_fake_quant()()},
      {"learnable", std::make_shared<LearnableFakeQuantize>()},
  };
  for (auto& [key, fq] : modules) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : tq::serialize::state_dict(*fq)) keys.push_back(k);
    auto want_keys = states.at(key).at("keys").get<std::vector<std::string>>();
    std::sort(keys.begin(), keys.end());
    std::sort(want_keys.begin(), want_keys.end());
    EXPECT_EQ(keys, want_keys) << key;
    tq::serialize::load_state_dict_file(*fq, tq::testing::golden_path("fq_state_" + key + ".pt"));
    fq->disable_observer();
    const auto y = fq->forward(to_tensor(states.at(key).at("x")));
    EXPECT_TRUE(tensors_equal(y.detach(), to_tensor(states.at(key).at("y")))) << key;
  }
}

// Writes states for tests/check_cpp_states_in_pytorch.py (the PyTorch side loads them).
TEST(FakeQuantizeModules, WritesStatesForPyTorch) {
  nlohmann::json expected;
  auto record = [&](const std::string& key, FakeQuantizeBase& fq, const std::vector<int64_t>& shape) {
    for (int i = 0; i < 3; ++i) fq.forward(at::randn(shape) * 2 + 0.3);
    tq::serialize::save_state_dict_file(fq, std::string(TQ_TEST_OUTPUT_DIR) + "/cpp_fq_state_" + key + ".pt");
    fq.disable_observer();
    const auto x = at::randn(shape);
    const auto y = fq.forward(x).detach().contiguous();
    expected[key] = {{"x", std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel())},
                     {"shape", shape},
                     {"y", std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel())}};
  };
  record("fake_quant", *default_fake_quant()(), {4, 9});
  record("per_channel_weight", *default_per_channel_weight_fake_quant()(), {4, 9});
  record("learnable", *std::make_shared<LearnableFakeQuantize>(), {4, 9});
  std::ofstream(std::string(TQ_TEST_OUTPUT_DIR) + "/cpp_fq_state_expected.json") << expected.dump();
}

TEST(FakeQuantizeModules, FlagsAndWholeModelSwitches) {
  auto parent = std::make_shared<torch::nn::Module>();
  auto a = parent->register_module("a", std::make_shared<FakeQuantize>());
  auto inner = parent->register_module("inner", std::make_shared<torch::nn::Module>());
  auto b = inner->register_module("b", default_fused_wt_fake_quant()());
  disable_fake_quant(*parent);
  disable_observer(*parent);
  EXPECT_FALSE(a->fake_quant_enabled());
  EXPECT_FALSE(b->fake_quant_enabled());
  EXPECT_FALSE(b->observer_enabled());
  const auto x = at::randn({10});
  EXPECT_TRUE(tensors_equal(a->forward(x), x));
  EXPECT_TRUE(tensors_equal(b->forward(x), x));
  EXPECT_EQ(a->observer()->named_buffers()["max_val"].item<float>(), -INFINITY);  // nothing observed
  enable_fake_quant(*parent);
  enable_observer(*parent);
  EXPECT_TRUE(a->fake_quant_enabled() && b->observer_enabled());
}

TEST(FakeQuantizeModules, BadConfigurationsAreRejected) {
  expect_error([] { FixedQParamsFakeQuantize(obs::default_observer()); }, "must be a FixedQParamsObserver");
  expect_error([] { FakeQuantize(FakeQuantizeOptions().observer(obs::default_placeholder_observer())); },
               "needs an observer that computes qparams");
  expect_error([] { FusedMovingAvgObsFakeQuantize(FakeQuantizeOptions().observer(obs::default_observer())); },
               "works only with MovingAverageMinMaxObserver");
  expect_error([] { LearnableFakeQuantize(LearnableFakeQuantizeOptions().quant_min(0).quant_max(15)); },
               "differs from quant_min/quant_max");
  auto fused = default_fused_act_fake_quant()();
  expect_error([&] { fused->forward(at::tensor({1.0f, NAN})); }, "input contains NaN");
}

TEST(FakeQuantizeModules, PrintsLikeExtraRepr) {
  auto fq = default_fake_quant()();
  std::ostringstream s;
  s << *fq;
  EXPECT_NE(s.str().find("FakeQuantize(fake_quant_enabled=1, observer_enabled=1, quant_min=0, quant_max=127, "
                         "dtype=quint8, qscheme=per_tensor_affine, ch_axis=-1, scale=[1], zero_point=[0])"),
            std::string::npos)
      << s.str();
  EXPECT_NE(s.str().find("(activation_post_process): MovingAverageMinMaxObserver("), std::string::npos) << s.str();
}

TEST(FakeQuantizeModules, FusedMatchesATenFusedOpInProcess) {
  // at::fused_moving_avg_obs_fake_quant is PyTorch's own op: same running stats, qparams, output.
  for (bool per_channel : {false, true}) {
    auto x = at::randn({8, 33}) * 2 + 0.25;
    auto on = at::ones({1}, at::kLong);
    auto rmin = per_channel ? at::empty({0}) : at::scalar_tensor(INFINITY);
    auto rmax = per_channel ? at::empty({0}) : at::scalar_tensor(-INFINITY);
    auto scale = at::ones({1}), zp = at::zeros({1}, at::kInt);
    auto rmin2 = rmin.clone(), rmax2 = rmax.clone(), scale2 = scale.clone(), zp2 = zp.clone();
    for (int step = 0; step < 3; ++step) {
      auto xs = x * (step + 1);
      auto y = tq::fake_quant::fused_moving_avg_obs_fake_quant(xs, on, on, rmin, rmax, scale, zp, 0.01, -128, 127, 0, per_channel, true);
      auto y2 = at::fused_moving_avg_obs_fake_quant(xs, on, on, rmin2, rmax2, scale2, zp2, 0.01, -128, 127, 0,
                                                    per_channel, true);
      EXPECT_TRUE(tensors_equal(y, y2)) << per_channel << " " << step;
      EXPECT_TRUE(tensors_equal(scale, scale2));
      EXPECT_TRUE(tensors_equal(zp, zp2));
      EXPECT_TRUE(tensors_equal(rmin, rmin2));
    }
  }
}

TEST(ChooseQuantizationParams, MatchesHandDerivedValues) {
  // [-1, 3] over [0, 255]: scale = 4 / 255 (double, then float); zero point from the min side:
  // 0 - (-1) / scale = 63.75 -> 64.
  auto qp = tq::choose_quantization_params(-1.0f, 3.0f, 0, 255);
  EXPECT_EQ(qp.scale, static_cast<float>(4.0 / 255.0));
  EXPECT_EQ(qp.zero_point, 64);
  // Symmetric (preserve_sparsity): zero point in the middle.
  EXPECT_EQ(tq::choose_quantization_params(-1.0f, 3.0f, -128, 127, true).zero_point, 0);
  // Tiny ranges are cut off at scale 6.1e-5.
  EXPECT_EQ(tq::choose_quantization_params(0.0f, 1e-9f, 0, 255).scale, 6.1e-5f);
  tq::testing::expect_error([&] { tq::choose_quantization_params(2.0f, 1.0f, 0, 255); }, "[choose_quantization_params] min (2) must be <= max (1)");
}
