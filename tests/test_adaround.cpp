#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "tq/fake_quant/adaround_fake_quantizer.h"
#include "tq/observers/per_channel_min_max_observer.h"

using namespace tq::fake_quant;
namespace obs = tq::observers;
using tq::testing::tensors_close;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;

namespace {
AdaroundFakeQuantizerOptions per_channel_options(int64_t axis) {
  return AdaroundFakeQuantizerOptions().observer(obs::with_args<obs::PerChannelMinMaxObserver>(
      obs::PerChannelMinMaxObserverOptions()
          .ch_axis(axis)
          .dtype(tq::QDType::QInt8)
          .qscheme(tq::QScheme::PerChannelSymmetric)
          .quant_min(-128)
          .quant_max(127)));
}
}  // namespace

// Against tools/adaround_reference.py (the seed's formulas in PyTorch ops): scale, V, soft and
// hard outputs and dL/dV bit for bit; h(V) reproduces the rounding residual to float precision
// (sigmoid(logit(r)) is r up to rounding); the weight gets no gradient.
TEST(AdaroundGolden, MatchesTheSeedReference) {
  for (const auto& c : tq::testing::golden("adaround.json").at("cases")) {
    const bool per_channel = c.at("per_channel");
    AdaroundFakeQuantizer fq(per_channel ? per_channel_options(c.at("ch_axis")) : AdaroundFakeQuantizerOptions());
    auto w = to_tensor(c.at("w")).set_requires_grad(true);
    auto y = fq.forward(w);
    const std::string label = per_channel ? "per channel" : "per tensor";
    EXPECT_TRUE(tensors_equal(fq.scale().flatten(), to_tensor(c.at("scale")))) << label;
    EXPECT_TRUE(tensors_equal(fq.V().detach(), to_tensor(c.at("v")))) << label;
    EXPECT_TRUE(tensors_equal(fq.rectified_sigmoid().detach(), to_tensor(c.at("h")))) << label;
    EXPECT_TRUE(tensors_close(fq.rectified_sigmoid().detach(), to_tensor(c.at("residual")), 0, 2e-6)) << label;
    EXPECT_TRUE(tensors_equal(y.detach(), to_tensor(c.at("y")))) << label;
    (y * to_tensor(c.at("dy"))).sum().backward();
    EXPECT_TRUE(tensors_equal(fq.V().grad(), to_tensor(c.at("dv")))) << label;
    EXPECT_TRUE(!w.grad().defined() || at::all(w.grad() == 0).item<bool>()) << "the weight must get no gradient";
    fq.disable_observer();
    fq.use_soft_rounding(false);
    EXPECT_TRUE(tensors_equal(fq.forward(w).detach(), to_tensor(c.at("y_hard")))) << label;
  }
}

TEST(AdaroundFakeQuantizer, SoftRoundingStartsAtTheInput) {
  // h(V) == residual, so the first soft output is the input itself (up to float rounding)
  // wherever it is inside the range.
  AdaroundFakeQuantizer fq;
  const auto w = at::randn({64}) * 0.3;
  const auto y = fq.forward(w).detach();
  const auto inside = (w / fq.scale()).abs() < 127;  // the largest |w| maps to 127.5 and clamps
  EXPECT_GT(inside.sum().item<int64_t>(), 60);
  EXPECT_TRUE(tensors_close(y.masked_select(inside), w.masked_select(inside), 1e-5, 1e-6));
}

TEST(AdaroundFakeQuantizer, RejectsAsymmetricAndUnsignedSchemes) {
  tq::testing::expect_error([&] { AdaroundFakeQuantizer(AdaroundFakeQuantizerOptions().observer(obs::with_args<obs::MinMaxObserver>(
                   obs::MinMaxObserverOptions().dtype(tq::QDType::QInt8)))); }, "[AdaroundFakeQuantizer] only symmetric quantization is supported, got per_tensor_affine");
  tq::testing::expect_error([&] { AdaroundFakeQuantizer(AdaroundFakeQuantizerOptions().observer(obs::with_args<obs::MinMaxObserver>(
                   obs::MinMaxObserverOptions().qscheme(tq::QScheme::PerTensorSymmetric)))); }, "[AdaroundFakeQuantizer] needs a signed dtype (zero point 0), got quint8");
  AdaroundFakeQuantizer fq;
  fq.disable_observer();
  tq::testing::expect_error([&] { fq.forward(at::randn({3})); }, "[AdaroundFakeQuantizer] no scale yet: run the observer once before fake quantizing");  // no scale yet
}
