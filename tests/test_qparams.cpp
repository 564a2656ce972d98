#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "tq/numerics/qparams.h"

using tq::QDType;
using tq::QScheme;
using tq::testing::tensors_equal;

namespace {
tq::QParamsSpec spec(QDType d, QScheme q, int64_t qmin, int64_t qmax, bool custom = false) {
  tq::QParamsSpec s;
  s.dtype = d;
  s.qscheme = q;
  s.quant_min = qmin;
  s.quant_max = qmax;
  s.has_customized_qrange = custom;
  return s;
}
at::Tensor scalar(float v) { return at::scalar_tensor(v, at::kFloat); }
}  // namespace

TEST(QParams, AffineHandDerived) {
  // scale = float(2 / 255) = 0.00784313772 (rounded up), so -1 / scale = -127.4999985 and
  // zero_point = 0 - round(-127.4999985) = 127.
  auto qp = tq::calculate_qparams(scalar(-1), scalar(1), spec(QDType::QUInt8, QScheme::PerTensorAffine, 0, 255));
  EXPECT_EQ(qp.scale.sizes(), at::IntArrayRef({1}));
  EXPECT_EQ(qp.scale.item<float>(), 2.0f / 255.0f);
  EXPECT_EQ(qp.zero_point.item<int64_t>(), 127);
  EXPECT_EQ(qp.zero_point.scalar_type(), at::kInt);
}

TEST(QParams, SymmetricZeroPointIs128ForQUInt8AndZeroForQInt8) {
  auto u = tq::calculate_qparams(scalar(-2), scalar(1), spec(QDType::QUInt8, QScheme::PerTensorSymmetric, 0, 255));
  EXPECT_EQ(u.scale.item<float>(), 2.0f / 127.5f);
  EXPECT_EQ(u.zero_point.item<int64_t>(), 128);
  auto s = tq::calculate_qparams(scalar(-2), scalar(1), spec(QDType::QInt8, QScheme::PerTensorSymmetric, -128, 127));
  EXPECT_EQ(s.zero_point.item<int64_t>(), 0);
  EXPECT_EQ(s.zero_point.scalar_type(), at::kLong);
  // Restricted range [-127, 127]: scale = max|x| / 127.
  auto r = tq::calculate_qparams(scalar(-2), scalar(1), spec(QDType::QInt8, QScheme::PerTensorSymmetric, -127, 127, true));
  EXPECT_EQ(r.scale.item<float>(), 2.0f / 127.0f);
  // Custom quint8 range: the rounded-down midpoint.
  auto c = tq::calculate_qparams(scalar(-2), scalar(1), spec(QDType::QUInt8, QScheme::PerTensorSymmetric, 0, 15, true));
  EXPECT_EQ(c.zero_point.item<int64_t>(), 7);
}

TEST(QParams, ConstantRangeFallsBackToEps) {
  auto qp = tq::calculate_qparams(scalar(0), scalar(0), spec(QDType::QUInt8, QScheme::PerTensorAffine, 0, 255));
  EXPECT_EQ(qp.scale.item<float>(), 1.1920928955078125e-07f);
  EXPECT_EQ(qp.zero_point.item<int64_t>(), 0);
}

TEST(QParams, FloatQParamsPerChannel) {
  auto qp = tq::calculate_qparams(at::tensor({-1.0f, 2.0f}), at::tensor({3.0f, 2.0f}),
                                  spec(QDType::QUInt8, QScheme::PerChannelAffineFloatQParams, 0, 255));
  EXPECT_EQ(qp.scale[0].item<float>(), 4.0f / 255.0f);
  EXPECT_EQ(qp.scale[1].item<float>(), 1.0f);  // zero width -> 1.0
  EXPECT_EQ(qp.zero_point.scalar_type(), at::kFloat);
  EXPECT_EQ(qp.zero_point[0].item<float>(), 1.0f / (4.0f / 255.0f));
  EXPECT_EQ(qp.zero_point[1].item<float>(), -2.0f);
}

TEST(QParams, UnobservedGivesPyTorchDefaults) {
  const float inf = std::numeric_limits<float>::infinity();
  auto qp = tq::calculate_qparams(scalar(inf), scalar(-inf), spec(QDType::QUInt8, QScheme::PerTensorAffine, 0, 255));
  EXPECT_EQ(qp.scale.item<float>(), 1.0f);
  EXPECT_EQ(qp.zero_point.item<int64_t>(), 0);
  auto empty = tq::calculate_qparams(at::empty({0}), at::empty({0}), spec(QDType::QInt8, QScheme::PerChannelSymmetric, -128, 127));
  EXPECT_EQ(empty.scale.item<float>(), 1.0f);
}

TEST(QParams, MinAboveMaxIsAnErrorNamingTheValues) {
  try {
    tq::calculate_qparams(scalar(2), scalar(1), spec(QDType::QUInt8, QScheme::PerTensorAffine, 0, 255));
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("min_val (2) must be <= max_val (1)"), std::string::npos) << e.what();
  }
  tq::testing::expect_error([&] { tq::calculate_qparams(at::tensor({0.f, 1.f}), at::tensor({1.f}), spec(QDType::QUInt8, QScheme::PerChannelAffine, 0, 255)); }, "[calculate_qparams] min_val shape [2] differs from max_val shape [1]");
  tq::testing::expect_error([&] { tq::calculate_qparams(scalar(NAN), scalar(1), spec(QDType::QUInt8, QScheme::PerTensorAffine, 0, 255)); }, "[calculate_qparams] min_val (nan) must be <= max_val (1)");
}

TEST(Quantize, MatchesPyTorchGolden) {
  for (const auto& c : tq::testing::golden("quantize.json").at("cases")) {
    const auto x = tq::testing::to_tensor(c.at("x"));
    const auto dtype = tq::qdtype_from_string(c.at("dtype"));
    at::Tensor q, dq;
    if (c.at("kind") == "per_tensor") {
      const double scale = c.at("scale");
      const int64_t zp = c.at("zero_point");
      q = tq::quantize_per_tensor(x, scale, zp, dtype);
      dq = tq::dequantize_per_tensor(q, scale, zp);
    } else {
      const auto s = tq::testing::to_tensor(c.at("scale"));
      const auto z = tq::testing::to_tensor(c.at("zero_point"));
      q = tq::quantize_per_channel(x, s, z, c.at("axis"), dtype);
      dq = tq::dequantize_per_channel(q, s, z, c.at("axis"));
    }
    EXPECT_EQ(q.scalar_type(), tq::storage_type(dtype));
    EXPECT_TRUE(tensors_equal(q, tq::testing::to_tensor(c.at("q")))) << c.at("dtype");
    EXPECT_TRUE(tensors_equal(dq, tq::testing::to_tensor(c.at("dq")))) << c.at("dtype");
  }
}

TEST(Quantize, RejectsNaNAndBadScale) {
  tq::testing::expect_error([&] { tq::quantize_per_tensor(at::tensor({1.0f, NAN}), 0.1, 0, QDType::QUInt8); }, "[quantize_per_tensor] input contains NaN, which has no quantized value");
  tq::testing::expect_error([&] { tq::quantize_per_tensor(at::tensor({1.0f}), 0.0, 0, QDType::QUInt8); }, "[quantize_per_tensor] scale must be positive and finite, got 0");
  tq::testing::expect_error([&] { tq::quantize_per_tensor(at::tensor({1.0f}), 0.1, 300, QDType::QUInt8); }, "[quantize_per_tensor] zero_point (300) is outside the range of quint8");
  tq::testing::expect_error([&] { tq::quantize_per_tensor(at::tensor({1, 2}), 0.1, 0, QDType::QUInt8); }, "[quantize_per_tensor] input must be float32, got Int");
}
