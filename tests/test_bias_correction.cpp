// tq::ptq::bias_correction_shift on hand-derived cases.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "tq/ptq/bias_correction.h"

using tq::ptq::WeightedLayer;
using tq::testing::expect_error;

// Linear: inputs [1, 2] and [3, 4] average [2, 3]; the weight error D = [[0.1, 0], [0, -0.2]]
// shifts the mean output by D [2, 3] = [0.2, -0.6]. Inputs quantized too: an input error e adds
// W e, here W = I and e = [0.5, 0] on the first sample only -> mean [0.25, 0].
TEST(BiasCorrection, LinearShiftIsTheMeanOutputChange) {
  WeightedLayer layer;
  layer.weight = at::eye(2);
  layer.bias = at::tensor({1.0f, -1.0f});
  const auto x = at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({2, 2});
  const auto wq = layer.weight + at::tensor({0.1f, 0.0f, 0.0f, -0.2f}).reshape({2, 2});
  auto shift = tq::ptq::bias_correction_shift(layer, wq, x, x);
  EXPECT_TRUE(at::allclose(shift, at::tensor({0.2f, -0.6f}), 1e-6, 1e-6)) << shift;
  const auto xq = x + at::tensor({0.5f, 0.0f, 0.0f, 0.0f}).reshape({2, 2});
  shift = tq::ptq::bias_correction_shift(layer, layer.weight, x, xq);
  EXPECT_TRUE(at::allclose(shift, at::tensor({0.25f, 0.0f}), 1e-6, 1e-6)) << shift;
}

// A fused ReLU does not change the shift: the bias acts before it. 1x1 convolution, one input
// channel of constant 2, weight error 0.5 on output channel 1 only -> shift [0, 1] everywhere.
TEST(BiasCorrection, ConvShiftIsPerChannelAndBeforeTheActivation) {
  WeightedLayer layer;
  layer.kind = WeightedLayer::Kind::Conv;
  layer.weight = at::tensor({1.0f, -1.0f}).reshape({2, 1, 1, 1});
  layer.bias = at::zeros({2});
  layer.stride = {1, 1};
  layer.padding = {0, 0};
  layer.dilation = {1, 1};
  layer.relu = true;  // channel 1's output is negative: after ReLU it would show no shift
  const auto x = at::full({3, 1, 4, 4}, 2.0f);
  const auto wq = layer.weight + at::tensor({0.0f, 0.5f}).reshape({2, 1, 1, 1});
  const auto shift = tq::ptq::bias_correction_shift(layer, wq, x, x);
  EXPECT_TRUE(at::allclose(shift, at::tensor({0.0f, 1.0f}), 1e-6, 1e-6)) << shift;
}

TEST(BiasCorrection, BadInput) {
  WeightedLayer layer;
  layer.name = "fc";
  layer.weight = at::randn({3, 4});
  const auto x = at::randn({5, 4});
  expect_error([&] { tq::ptq::bias_correction_shift(layer, layer.weight, x, x.slice(0, 0, 4)); }, "differ in shape");
  expect_error([&] { tq::ptq::bias_correction_shift(layer, at::randn({3, 5}), x, x); }, "the quantized weight has shape");
  expect_error([&] { tq::ptq::bias_correction_shift(layer, layer.weight, at::randn({5, 6}), x); }, "4 input features");
}
