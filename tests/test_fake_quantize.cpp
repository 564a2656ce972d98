#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>
#include <limits>

#include "golden.h"
#include "tq/kernels/fake_quantize_kernels.h"
#include "tq/numerics/fake_quantize.h"

using tq::testing::expect_error;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;

TEST(FakeQuantize, PerTensorAndPerChannelMatchPyTorchGolden) {
  int checked = 0;
  for (const auto& c : tq::testing::golden("fake_quantize.json").at("cases")) {
    const auto x = to_tensor(c.at("x")).set_requires_grad(true);
    const auto dy = to_tensor(c.at("dy"));
    at::Tensor y;
    if (c.at("kind") == "per_tensor") {
      y = tq::fake_quantize_per_tensor_affine(x, c.at("scale").get<double>(), c.at("zero_point").get<int64_t>(),
                                              c.at("quant_min"), c.at("quant_max"));
    } else {
      y = tq::fake_quantize_per_channel_affine(x, to_tensor(c.at("scale")), to_tensor(c.at("zero_point")),
                                               c.at("axis"), c.at("quant_min"), c.at("quant_max"));
    }
    (y * dy).sum().backward();
    const std::string label = c.at("kind").get<std::string>() + " qmin " + c.at("quant_min").dump() + " qmax " +
                              c.at("quant_max").dump() + " scale " + c.at("scale").dump().substr(0, 40) +
                              " zp " + c.at("zero_point").dump().substr(0, 80);
    EXPECT_TRUE(tensors_equal(y, to_tensor(c.at("y")))) << label;
    EXPECT_TRUE(tensors_equal(x.grad(), to_tensor(c.at("dx")))) << label;
    ++checked;
  }
  EXPECT_EQ(checked, 52);
}

TEST(FakeQuantize, NonFiniteInputsAreDocumentedPolicy) {
  const float inf = std::numeric_limits<float>::infinity();
  auto x = at::tensor({NAN, inf, -inf, 1e30f, -1e30f, 2.5f}).set_requires_grad(true);
  auto y = tq::fake_quantize_per_tensor_affine(x, 1.0, 3, 0, 255);
  EXPECT_TRUE(std::isnan(y[0].item<float>()));
  EXPECT_EQ(y[1].item<float>(), 252.0f);   // (255 - 3) * 1: +Inf clamps to quant_max
  EXPECT_EQ(y[2].item<float>(), -3.0f);    // (0 - 3) * 1
  EXPECT_EQ(y[3].item<float>(), 252.0f);   // PyTorch gives -3 here (undefined int64 cast); tq clamps
  EXPECT_EQ(y[4].item<float>(), -3.0f);
  EXPECT_EQ(y[5].item<float>(), 2.0f);     // round(2.5) = 2 (half to even), + 3 - 3
  y.sum().backward();
  EXPECT_TRUE(tensors_equal(x.grad(), at::tensor({0.f, 0.f, 0.f, 0.f, 0.f, 1.f})));
}

TEST(FakeQuantize, GradientIsTheMaskAndNoGradPathSkipsIt) {
  auto x = at::tensor({-1.0f, 0.0f, 0.5f, 30.0f}).set_requires_grad(true);
  auto y = tq::fake_quantize_per_tensor_affine(x, 0.1, 0, 0, 255);  // range [0, 25.5]
  y.backward(at::ones_like(y) * 2);
  EXPECT_TRUE(tensors_equal(x.grad(), at::tensor({0.f, 2.f, 2.f, 0.f})));
  auto [y2, mask] = tq::fake_quantize_per_tensor_affine_cachemask(x.detach(), 0.1, 0, 0, 255);
  EXPECT_TRUE(tensors_equal(mask.to(at::kInt), at::tensor({0, 1, 1, 0})));
  EXPECT_TRUE(tensors_equal(y2, y.detach()));
  auto out = at::empty({4});
  tq::fake_quantize_per_tensor_affine_out(x.detach(), 0.1, 0, 0, 255, out);
  EXPECT_TRUE(tensors_equal(out, y.detach()));
}

TEST(FakeQuantize, NonContiguousAndEmptyInputs) {
  auto x = at::randn({8, 6}).t();
  EXPECT_TRUE(tensors_equal(tq::fake_quantize_per_tensor_affine(x, 0.05, 10, 0, 255),
                            at::fake_quantize_per_tensor_affine(x, 0.05, 10, 0, 255)));
  auto scale = at::rand({8}) * 0.1f + 0.01f;
  auto zp = at::zeros({8}, at::kInt);
  EXPECT_TRUE(tensors_equal(tq::fake_quantize_per_channel_affine(x, scale, zp, 1, -128, 127),
                            at::fake_quantize_per_channel_affine(x, scale, zp, 1, -128, 127)));
  EXPECT_EQ(tq::fake_quantize_per_tensor_affine(at::empty({0, 3}), 0.1, 0, 0, 255).sizes(), at::IntArrayRef({0, 3}));
}

TEST(FakeQuantize, BadArgumentsNameTheProblem) {
  auto x = at::randn({4, 3});
  expect_error([&] { tq::fake_quantize_per_tensor_affine(x, 0.1, 0, 10, 5); }, "quant_min (10) must be <= quant_max (5)");
  expect_error([&] { tq::fake_quantize_per_tensor_affine(x, 0.1, 300, 0, 255); }, "zero_point (300)");
  expect_error([&] { tq::fake_quantize_per_tensor_affine(x, 0.0, 0, 0, 255); }, "scale must be positive");
  expect_error([&] { tq::fake_quantize_per_tensor_affine(x, NAN, 0, 0, 255); }, "scale must be positive");
  // A subnormal scale passes "positive and finite" but its reciprocal is Inf (the output was NaN).
  expect_error([&] { tq::fake_quantize_per_tensor_affine(x, 1e-40, 0, 0, 255); },
               "is too small: its reciprocal overflows float32");
  expect_error([&] { tq::fake_quantize_per_tensor_affine(x.to(at::kInt), 0.1, 0, 0, 255); }, "must be float32");
  expect_error([&] { tq::fake_quantize_per_tensor_affine(at::Tensor(), 0.1, 0, 0, 255); }, "undefined");
  expect_error([&] { tq::fake_quantize_per_channel_affine(x, at::ones({3}), at::zeros({3}, at::kInt), 2, 0, 255); },
               "axis 2 is out of range");
  expect_error([&] { tq::fake_quantize_per_channel_affine(x, at::ones({4}), at::zeros({4}, at::kInt), 1, 0, 255); },
               "scale must have shape [3]");
  expect_error([&] { tq::fake_quantize_per_channel_affine(x, at::ones({3}), at::zeros({2}, at::kInt), 1, 0, 255); },
               "zero_point must have shape [3]");
  expect_error([&] { tq::fake_quantize_per_tensor_affine(x, at::ones({2}), at::zeros({1}), 0, 255); },
               "scale must hold exactly one value");
}
