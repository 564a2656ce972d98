// Group-wise weight-only Linear: the qparams and integers GPTQ's quantizer gives, the packed
// layout, every compiled copy of the kernel against the scalar reference, and the operator int8
// graphs call.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "every_cpu_capability.h"
#include "golden.h"
#include "tq/kernels/cpu_capability.h"
#include "tq/kernels/kernel_table.h"
#include "tq/kernels/int8_weight_only.h"
#include "tq/numerics/groupwise_weight.h"

namespace {

using tq::GroupwiseWeight;
using tq::kernels::CpuCapability;

// Row 0 of a 4-bit weight whose values are all on its grid: w[k] = (k % 16 - 3) / 2 over 32
// features gives lo = -1.5, hi = 6, scale = 7.5 / 15 = 0.5, zero point 3 and q[k] = k % 16.
at::Tensor on_grid_4bit() { return ((at::arange(32, at::kFloat).remainder(16) - 3) * 0.5f).reshape({1, 32}); }
// 8 bits: w[k] = k - 5 for k < 31 and w[31] = 250: scale (250 + 5) / 255 = 1, zero point 5, q[k] = k, q[31] = 255.
at::Tensor on_grid_8bit() {
  auto w = at::arange(32, at::kFloat) - 5;
  w[31] = 250.0f;
  return w.reshape({1, 32});
}

TEST(GroupwiseWeight, QParamsAndIntegersAsGptqsQuantizerChooses) {
  at::Tensor scales, zero_points;
  tq::groupwise_qparams(on_grid_4bit(), 4, 32, scales, zero_points);
  EXPECT_EQ(scales.item<float>(), 0.5f);
  EXPECT_EQ(zero_points.item<float>(), 3.0f);
  const auto q = tq::quantize_groupwise(on_grid_4bit(), scales, zero_points, 4, 32);
  EXPECT_TRUE(q.to(at::kLong).equal(at::arange(32, at::kLong).remainder(16).reshape({1, 32})));

  tq::groupwise_qparams(on_grid_8bit(), 8, 32, scales, zero_points);
  EXPECT_EQ(scales.item<float>(), 1.0f);
  EXPECT_EQ(zero_points.item<float>(), 5.0f);
  const auto q8 = tq::quantize_groupwise(on_grid_8bit(), scales, zero_points, 8, 32).to(at::kLong);
  EXPECT_EQ(q8[0][0].item<int64_t>(), 0);
  EXPECT_EQ(q8[0][30].item<int64_t>(), 30);
  EXPECT_EQ(q8[0][31].item<int64_t>(), 255);
}

TEST(GroupwiseWeight, AnAllZeroGroupGetsTheRangeMinusOneToOne) {
  // lo = -1, hi = 1: scale float32(2 / 15) = 0.13333334, zero point round(1 / 0.13333334) =
  // round(7.4999995) = 7 (as PyTorch computes it in float32), every q = 7, w back to 0.
  auto w = at::zeros({2, 64});
  w[1].narrow(0, 32, 32).fill_(0.25f);
  at::Tensor scales, zero_points;
  tq::groupwise_qparams(w, 4, 32, scales, zero_points);
  EXPECT_EQ(scales[0][0].item<float>(), 2.0f / 15.0f);
  EXPECT_EQ(zero_points[0][0].item<float>(), 7.0f);
  EXPECT_EQ(scales[1][1].item<float>(), 0.25f / 15.0f);  // lo widened to 0
  EXPECT_EQ(zero_points[1][1].item<float>(), 0.0f);
  const auto g = tq::quantize_weight_groupwise(w, 4, 32);
  EXPECT_TRUE(tq::dequantize_groupwise(g).equal(w));
}

TEST(GroupwiseWeight, PackedLayoutAndRoundTrip) {
  at::manual_seed(3);
  const auto q = at::randint(0, 16, {3, 64}, at::kByte);
  const auto packed = tq::pack_groupwise(q, 4);
  ASSERT_EQ(packed.sizes(), at::IntArrayRef({3, 32}));
  // Byte i of a block of 32: value i low, value i + 16 high.
  const auto p = packed.accessor<uint8_t, 2>();
  const auto v = q.accessor<uint8_t, 2>();
  for (int64_t n = 0; n < 3; ++n) {
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t i = 0; i < 16; ++i) {
        ASSERT_EQ(p[n][b * 16 + i], v[n][b * 32 + i] | (v[n][b * 32 + 16 + i] << 4));
      }
    }
  }
  EXPECT_TRUE(tq::unpack_groupwise(packed, 4, 64).equal(q));
  EXPECT_TRUE(tq::unpack_groupwise(tq::pack_groupwise(q, 8), 8, 64).equal(q));
}

TEST(GroupwiseWeight, RoundToNearestIsWithinHalfAStep) {
  at::manual_seed(5);
  const auto w = at::randn({8, 256});
  for (int64_t bits : {4, 8}) {
    for (int64_t group : {32, 64, 256}) {
      const auto g = tq::quantize_weight_groupwise(w, bits, group);
      const auto step = g.scales.repeat_interleave(group, 1);
      const auto err = (tq::dequantize_groupwise(g) - w).abs();
      // Half a step, plus float32 rounding of the quotient and of the product.
      EXPECT_TRUE((err <= step * (0.5f + 1e-5f)).all().item<bool>()) << bits << " bits, group " << group;
      EXPECT_TRUE((err > step * 0.25f).any().item<bool>());  // it does quantize
    }
  }
}

TEST(GroupwiseWeight, SubnormalWeightsKeepAFiniteStep) {
  // hi - lo = 1e-44: divided by 15 it underflows to 0 in float32, which would make the zero point NaN.
  auto w = at::zeros({1, 32});
  w[0][0] = 1e-44f;
  const auto g = tq::quantize_weight_groupwise(w, 4, 32);
  EXPECT_EQ(g.scales.item<float>(), std::numeric_limits<float>::min());
  EXPECT_EQ(g.zero_points.item<float>(), 0.0f);
  EXPECT_TRUE(tq::dequantize_groupwise(g).isfinite().all().item<bool>());
}

TEST(GroupwiseWeight, BadShapesAreRefusedInOneLine) {
  const auto w = at::randn({4, 96});
  tq::testing::expect_error([&] { tq::quantize_weight_groupwise(w, 4, 48); },
                            "[groupwise_weight] the group size must be a positive multiple of 32, got 48");
  tq::testing::expect_error([&] { tq::quantize_weight_groupwise(w, 4, 64); },
                            "[groupwise_weight] the group size 64 does not divide the 96 input features");
  tq::testing::expect_error([&] { tq::quantize_weight_groupwise(w, 3, 32); },
                            "[groupwise_weight] weight-only quantization takes 4 or 8 bits, got 3");
  auto bad = w.clone();
  bad[1][2] = std::numeric_limits<float>::quiet_NaN();
  tq::testing::expect_error([&] { tq::quantize_weight_groupwise(bad, 4, 32); },
                            "[groupwise_weight] the weight holds NaN or infinite values");
}

// Every compiled copy of the kernel, forced one after the other.
class WeightOnlyKernels : public tq::testing::EveryCpuCapability {
 protected:
  void SetUp() override {
    EveryCpuCapability::SetUp();
    at::manual_seed(11);
  }
};

tq::kernels::GroupwiseWeightView view_of(const GroupwiseWeight& w) {
  return {w.packed.data_ptr<uint8_t>(), w.scales.data_ptr<float>(), w.zero_points.data_ptr<float>(),
          w.out_features(),            w.in_features,              w.group_size,
          static_cast<int>(w.bits)};
}

TEST_P(WeightOnlyKernels, HandDerivedValues) {
  // All ones times the on-grid weights: 4 bits, 2 * sum_{j<16} (j - 3) / 2 = 72; 8 bits,
  // sum_{k<31} (k - 5) + 250 = 560. Sums of small integers and halves are exact in float32.
  const auto w4 = tq::quantize_weight_groupwise(on_grid_4bit(), 4, 32);
  const auto w8 = tq::quantize_weight_groupwise(on_grid_8bit(), 8, 32);
  const std::vector<float> ones(3 * 32, 1.0f);
  const float bias = 0.25f;
  for (const auto* w : {&w4, &w8}) {
    std::vector<float> y(3), ref(3);
    tq::kernels::cpu_kernels().linear_weight_only(ones.data(), 3, view_of(*w), &bias, y.data());
    tq::kernels::reference_kernels().linear_weight_only(ones.data(), 3, view_of(*w), &bias, ref.data());
    const float expected = (w->bits == 4 ? 72.0f : 560.0f) + 0.25f;
    for (int m = 0; m < 3; ++m) {
      EXPECT_EQ(y[m], expected) << w->bits << " bits, row " << m;
      EXPECT_EQ(ref[m], expected);
    }
  }
}

// What float32 rounding may change: a relative 1e-5 of the sum of |terms| the kernel adds
// (|x| q and |x| zero_point, times the group's scale), far below one quantization step of one term.
at::Tensor rounding_bound(const at::Tensor& x, const GroupwiseWeight& w) {
  const auto q = tq::unpack_groupwise(w.packed, w.bits, w.in_features).to(at::kDouble);
  const auto scale = w.scales.to(at::kDouble).repeat_interleave(w.group_size, 1);
  const auto zp = w.zero_points.to(at::kDouble).repeat_interleave(w.group_size, 1);
  return 1e-5 * at::matmul(x.abs().to(at::kDouble), ((q + zp) * scale).t()) + 1e-6;
}

TEST_P(WeightOnlyKernels, EqualsTheReferenceWithinRounding) {
  struct Shape {
    int64_t out, in, group;
  };
  for (const Shape s : {Shape{37, 256, 64}, Shape{5, 4096, 128}, Shape{9, 96, 32}}) {
    const auto weight = at::randn({s.out, s.in}) * 0.05f;
    const auto bias = at::randn({s.out});
    for (int64_t bits : {4, 8}) {
      const auto w = tq::quantize_weight_groupwise(weight, bits, s.group);
      for (int64_t rows : {1, 2, 3, 5, 16}) {
        const auto x = at::randn({rows, s.in});
        auto y = at::empty({rows, s.out});
        auto ref = at::empty({rows, s.out});
        tq::kernels::cpu_kernels().linear_weight_only(x.data_ptr<float>(), rows, view_of(w), bias.data_ptr<float>(),
                                              y.data_ptr<float>());
        tq::kernels::reference_kernels().linear_weight_only(x.data_ptr<float>(), rows, view_of(w), bias.data_ptr<float>(),
                                                    ref.data_ptr<float>());
        const auto diff = (y.to(at::kDouble) - ref.to(at::kDouble)).abs();
        EXPECT_TRUE((diff <= rounding_bound(x, w)).all().item<bool>())
            << s.out << "x" << s.in << " g" << s.group << ", " << bits << " bits, " << rows
            << " rows: max difference " << diff.max().item<double>();
      }
    }
  }
}

TQ_INSTANTIATE_FOR_EVERY_CPU_CAPABILITY(WeightOnlyKernels);

TEST(WeightOnlyLinear, BothPathsEqualTheDequantizedWeightsProduct) {
  at::manual_seed(13);
  const auto weight = at::randn({300, 512}) * 0.05f;
  const auto bias = at::randn({300});
  const auto w = tq::quantize_weight_groupwise(weight, 4, 128);
  const auto dequantized = tq::dequantize_groupwise(w).to(at::kDouble);
  // 2 x 3 rows run the kernel, 2 x 20 rows the dequantize-and-multiply path.
  for (int64_t tokens : {3, 20}) {
    // A bias shaped [out, 1] is the same bias on both paths.
    EXPECT_TRUE(tq::kernels::linear_weight_only(at::ones({tokens, 512}), w, bias.reshape({-1, 1}))
                    .equal(tq::kernels::linear_weight_only(at::ones({tokens, 512}), w, bias)));
    const auto x = at::randn({2, tokens, 512});
    const auto y = tq::kernels::linear_weight_only(x, w, bias);
    ASSERT_EQ(y.sizes(), at::IntArrayRef({2, tokens, 300}));
    const auto expected = at::matmul(x.to(at::kDouble), dequantized.t()) + bias.to(at::kDouble);
    const auto bound = rounding_bound(x.reshape({-1, 512}), w).reshape({2, tokens, 300});
    EXPECT_TRUE(((y.to(at::kDouble) - expected).abs() <= bound).all().item<bool>()) << tokens << " tokens";
  }
}

TEST(WeightOnlyLinear, MoreThanOneBlockOfChannelsOnTheBlasPath) {
  at::manual_seed(19);
  const auto w = tq::quantize_weight_groupwise(at::randn({1100, 64}), 4, 32);  // 1024 + 76 channels
  const auto x = at::randn({40, 64});
  const auto expected = at::matmul(x.to(at::kDouble), tq::dequantize_groupwise(w).to(at::kDouble).t());
  EXPECT_TRUE(((tq::kernels::linear_weight_only(x, w, c10::nullopt).to(at::kDouble) - expected).abs() <=
               rounding_bound(x, w))
                  .all()
                  .item<bool>());
}

TEST(WeightOnlyLinear, TheBlasPathDequantizesExactly) {
  // Power-of-two scales and small integer inputs: every product and sum is exact in float32, so the
  // dequantize-and-multiply path (40 rows, two blocks of channels) must equal (q - zero point) * scale
  // times x computed in double, at 4 and 8 bits, whatever the BLAS's summation order.
  at::manual_seed(23);
  for (int64_t bits : {4, 8}) {
    const auto q = at::randint(0, int64_t{1} << bits, {1100, 64}).to(at::kByte);
    const auto scales = at::pow(2.0, at::randint(-3, 2, {1100, 2})).to(at::kFloat);
    const auto zero_points = at::randint(0, int64_t{1} << bits, {1100, 2}).to(at::kFloat);
    const auto w = tq::make_groupwise_weight(q, scales, zero_points, bits, 32);
    const auto x = at::randint(-8, 9, {40, 64}).to(at::kFloat);
    const auto weight = (q.to(at::kDouble) - zero_points.to(at::kDouble).repeat_interleave(32, 1)) *
                        scales.to(at::kDouble).repeat_interleave(32, 1);
    const auto expected = at::matmul(x.to(at::kDouble), weight.t()).to(at::kFloat);
    EXPECT_TRUE(tq::kernels::linear_weight_only(x, w, c10::nullopt).equal(expected)) << bits << " bits";
  }
}

TEST(WeightOnlyLinear, TheTorchScriptOperatorGivesTheSameValues) {
  at::manual_seed(17);
  const auto w = tq::quantize_weight_groupwise(at::randn({64, 256}), 8, 64);
  const auto x = at::randn({4, 256});
  const auto op = c10::Dispatcher::singleton()
                      .findSchemaOrThrow("tq::linear_weight_only", "")
                      .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        int64_t, int64_t, const c10::optional<at::Tensor>&)>();
  const auto y = op.call(x, w.packed, w.scales, w.zero_points, 8, 64, c10::nullopt);
  EXPECT_TRUE(y.equal(tq::kernels::linear_weight_only(x, w, c10::nullopt)));
}

TEST(WeightOnlyLinear, MismatchedInputsAreRefusedInOneLine) {
  const auto w = tq::quantize_weight_groupwise(at::randn({8, 64}), 4, 32);
  tq::testing::expect_error([&] { tq::kernels::linear_weight_only(at::randn({2, 96}), w, c10::nullopt); },
                            "[linear_weight_only] the input has 96 features, the weight takes 64");
  tq::testing::expect_error([&] { tq::kernels::linear_weight_only(at::randn({2, 64}), w, at::randn({7})); },
                            "[linear_weight_only] the bias has 7 values for 8 output features");
  tq::testing::expect_error(
      [&] { tq::kernels::linear_weight_only(at::empty({2, 64}, at::TensorOptions().device(at::kMeta)), w, c10::nullopt); },
      "[linear_weight_only] input is on meta, where tq has no kernels (it has them for: cpu)");
}

}  // namespace
