#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adam.h>

#include "golden.h"
#include "tq/fake_quant/learnable_fake_quantize.h"
#include "tq/numerics/fake_quantize_learnable.h"
#include "tq/observers/per_channel_min_max_observer.h"

using namespace tq::fake_quant;
namespace obs = tq::observers;
using tq::testing::tensors_close;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;

// Output and input gradient bit for bit; the scale / zero-point gradients are sums over the
// tensor, which PyTorch accumulates in float32 in its own order (tq in double): rtol 1e-5.
TEST(LearnableGolden, ForwardAndGradientsMatchPyTorch) {
  int checked = 0;
  for (const auto& c : tq::testing::golden("learnable.json").at("cases")) {
    auto x = to_tensor(c.at("x")).set_requires_grad(true);
    auto scale = to_tensor(c.at("scale")).set_requires_grad(true);
    auto zp = to_tensor(c.at("zero_point")).set_requires_grad(true);
    const double gf = c.at("grad_factor");
    at::Tensor y;
    if (c.at("kind") == "per_tensor") {
      y = tq::fake_quantize_learnable_per_tensor_affine(x, scale, zp, c.at("quant_min"), c.at("quant_max"), gf);
    } else {
      y = tq::fake_quantize_learnable_per_channel_affine(x, scale, zp, c.at("axis"), c.at("quant_min"),
                                                         c.at("quant_max"), gf);
    }
    (y * to_tensor(c.at("dy"))).sum().backward();
    const std::string label = c.at("kind").get<std::string>() + " " + c.at("quant_min").dump() + ".." +
                              c.at("quant_max").dump() + " gf " + c.at("grad_factor").dump();
    EXPECT_TRUE(tensors_equal(y, to_tensor(c.at("y")))) << label;
    EXPECT_TRUE(tensors_equal(x.grad(), to_tensor(c.at("dx")))) << label;
    EXPECT_TRUE(tensors_close(scale.grad(), to_tensor(c.at("dscale")), 1e-5, 1e-7)) << label;
    EXPECT_TRUE(tensors_close(zp.grad(), to_tensor(c.at("dzero_point")), 1e-5, 1e-7)) << label;
    ++checked;
  }
  EXPECT_EQ(checked, 22);
}

// A badly initialised scale (15x too small: most values clip) on fixed data: a few Adam steps on
// the reconstruction error must shrink that error by far more than an order of magnitude.
TEST(LearnableFakeQuantize, LearnsAScaleFromABadStart) {
  at::manual_seed(7);
  const auto x = at::randn({4096});
  LearnableFakeQuantize lsq(LearnableFakeQuantizeOptions().scale(0.002).zero_point(128).use_grad_scaling(true));
  lsq.enable_param_learning();
  torch::optim::Adam adam({lsq.scale(), lsq.zero_point()}, torch::optim::AdamOptions(0.005));
  auto error = [&] { return (lsq.forward(x) - x).pow(2).mean(); };
  const double initial = error().item<double>();
  for (int step = 0; step < 150; ++step) {
    adam.zero_grad();
    error().backward();
    adam.step();
  }
  const double final_error = error().item<double>();
  EXPECT_LT(final_error, initial / 50) << "initial " << initial << ", final " << final_error;
  EXPECT_GT(lsq.scale().item<float>(), 0.01f);
}

TEST(LearnableFakeQuantize, ModesSwitchFlagsAndRequiresGrad) {
  LearnableFakeQuantize lsq;
  EXPECT_TRUE(lsq.static_enabled());
  EXPECT_FALSE(lsq.learning_enabled());
  lsq.enable_param_learning();
  EXPECT_TRUE(lsq.learning_enabled() && lsq.scale().requires_grad() && !lsq.static_enabled() && lsq.fake_quant_enabled());
  lsq.enable_static_estimate();
  EXPECT_TRUE(!lsq.learning_enabled() && !lsq.scale().requires_grad() && lsq.static_enabled() && lsq.fake_quant_enabled());
  lsq.enable_static_observation();
  EXPECT_TRUE(lsq.static_enabled() && !lsq.fake_quant_enabled());
  lsq.disable_observer();  // PyTorch's enable_observer drives the static estimate
  EXPECT_FALSE(lsq.static_enabled());
  EXPECT_EQ(lsq.bitwidth(), 8);
}

TEST(LearnableFakeQuantize, CalculateQParamsClampsScaleAndRoundsZeroPoint) {
  LearnableFakeQuantize lsq(LearnableFakeQuantizeOptions().scale(-1.0).zero_point(300.6));
  const auto qp = lsq.calculate_qparams();
  EXPECT_EQ(qp.scale.item<float>(), 1.1920928955078125e-07f);
  EXPECT_EQ(qp.zero_point.item<int64_t>(), 255);
  EXPECT_EQ(qp.zero_point.scalar_type(), at::kLong);
}

TEST(LearnableFakeQuantize, ChannelCountFromTheFirstTensor) {
  // channel_len 0: the same quantizer as channel_len 5 once it has seen a 5-channel tensor.
  auto make = [](int64_t channels) {
    return LearnableFakeQuantize(LearnableFakeQuantizeOptions()
                                     .observer(obs::with_args<obs::MovingAveragePerChannelMinMaxObserver>(
                                         obs::MovingAveragePerChannelMinMaxObserverOptions()
                                             .ch_axis(1)
                                             .dtype(tq::QDType::QInt8)
                                             .qscheme(tq::QScheme::PerChannelSymmetric)
                                             .quant_min(-8)
                                             .quant_max(7)))
                                     .quant_min(-8)
                                     .quant_max(7)
                                     .channel_len(channels));
  };
  auto lazy = make(0), sized = make(5);
  EXPECT_EQ(lazy.scale().numel(), 1);
  const auto scale_param = lazy.scale();
  const auto x = at::randn({3, 5, 4});
  EXPECT_TRUE(tensors_equal(lazy.forward(x).detach(), sized.forward(x).detach()));
  EXPECT_EQ(lazy.scale().numel(), 5);
  EXPECT_TRUE(scale_param.is_same(lazy.scale()));  // the same parameter, as an optimizer holds it
  EXPECT_TRUE(tensors_equal(lazy.scale().detach(), sized.scale().detach()));
  lazy.set_channel_count(5);
  tq::testing::expect_error([&] { lazy.set_channel_count(6); }, "[LearnableFakeQuantize] has 5 channels, the tensor 6");
  tq::testing::expect_error([&] { LearnableFakeQuantize(LearnableFakeQuantizeOptions().channel_len(-2)); },
                            "[LearnableFakeQuantize] channel_len must be -1, 0 or positive, got -2");
}

TEST(LearnableFakeQuantize, PerChannelAndSymmetricZeroPoint) {
  LearnableFakeQuantize lsq(LearnableFakeQuantizeOptions()
                                .observer(obs::with_args<obs::MovingAveragePerChannelMinMaxObserver>(
                                    obs::MovingAveragePerChannelMinMaxObserverOptions()
                                        .ch_axis(1)
                                        .dtype(tq::QDType::QInt8)
                                        .qscheme(tq::QScheme::PerChannelSymmetric)
                                        .quant_min(-128)
                                        .quant_max(127)))
                                .quant_min(-128)
                                .quant_max(127)
                                .channel_len(5));
  const auto x = at::randn({3, 5, 4});
  const auto y = lsq.forward(x);
  EXPECT_EQ(lsq.scale().numel(), 5);
  EXPECT_TRUE(tensors_equal(lsq.zero_point().detach(), at::zeros({5})));
  const auto expect = at::fake_quantize_per_channel_affine(x, lsq.scale().detach(), at::zeros({5}, at::kInt), 1, -128, 127);
  EXPECT_TRUE(tensors_equal(y.detach(), expect));
  tq::testing::expect_error([&] { LearnableFakeQuantize(LearnableFakeQuantizeOptions().channel_len(4)); }, "[LearnableFakeQuantize] a per-channel observer needs channel_len >= 0, a per-tensor one channel_len -1 (got 4 with per_tensor_affine)");
}
