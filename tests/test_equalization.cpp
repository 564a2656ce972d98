// tq::ptq::equalize_pair: the two layers compute the same function afterwards, and each channel's
// weight range is the geometric mean of its two ranges before.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "tq/ptq/equalization.h"

using tq::ptq::WeightedLayer;

namespace {

WeightedLayer conv(at::Tensor w, at::Tensor b, int64_t groups = 1) {
  WeightedLayer l;
  l.kind = WeightedLayer::Kind::Conv;
  l.weight = w;
  l.bias = b;
  l.stride = {1, 1};
  l.padding = {1, 1};
  l.dilation = {1, 1};
  l.groups = groups;
  return l;
}

at::Tensor ranges(const at::Tensor& w, int64_t dim) { return w.abs().transpose(0, dim).reshape({w.size(dim), -1}).amax(1); }

}  // namespace

TEST(Equalization, SameFunctionThroughReluAndGeometricMeanRanges) {
  at::manual_seed(5);
  // Output channels of wildly different scales, as after folding a batch norm with small and
  // large gammas.
  auto first = conv(at::randn({8, 3, 3, 3}) * at::logspace(-2, 1, 8).reshape({8, 1, 1, 1}), at::randn({8}));
  auto second = conv(at::randn({5, 8, 3, 3}), at::randn({5}));
  first.relu = true;
  const auto x = at::randn({4, 3, 10, 10});
  const auto before = second.forward(first.forward(x));
  const auto r1 = ranges(first.weight, 0), r2 = ranges(second.weight, 1);
  const auto s = tq::ptq::equalize_pair(first, second);
  EXPECT_TRUE(at::allclose(second.forward(first.forward(x)), before, 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(ranges(first.weight, 0), at::sqrt(r1 * r2), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(ranges(second.weight, 1), at::sqrt(r1 * r2), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(s, at::sqrt(r1 / r2), 1e-5, 1e-6));
}

TEST(Equalization, DepthwiseSecondLayerScalesItsOwnChannels) {
  at::manual_seed(6);
  auto first = conv(at::randn({6, 4, 1, 1}) * at::logspace(-2, 1, 6).reshape({6, 1, 1, 1}), at::randn({6}));
  auto dw = conv(at::randn({6, 1, 3, 3}), at::randn({6}), 6);
  first.relu = true;
  const auto x = at::randn({2, 4, 8, 8});
  const auto before = dw.forward(first.forward(x));
  const auto r1 = ranges(first.weight, 0), r2 = ranges(dw.weight, 0);
  tq::ptq::equalize_pair(first, dw);
  EXPECT_TRUE(at::allclose(dw.forward(first.forward(x)), before, 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(ranges(dw.weight, 0), at::sqrt(r1 * r2), 1e-5, 1e-6));
}

TEST(Equalization, ChannelsThatDoNotChainAreAnError) {
  auto first = conv(at::randn({6, 4, 1, 1}), {});
  auto second = conv(at::randn({5, 7, 3, 3}), {});
  first.name = "a";
  second.name = "b";
  tq::testing::expect_error([&] { tq::ptq::equalize_pair(first, second); }, "a gives 6 channels but b takes 7");
  auto grouped = conv(at::randn({6, 3, 3, 3}), {}, 2);
  tq::testing::expect_error([&] { tq::ptq::equalize_pair(first, grouped); }, "groups 1 or depthwise");
}
