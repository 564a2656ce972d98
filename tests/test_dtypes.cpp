#include <gtest/gtest.h>

#include "golden.h"
#include "tq/core/dtypes.h"

using tq::QDType;
using tq::QScheme;

TEST(Dtypes, DefaultRangesMatchPyTorch) {
  EXPECT_EQ(tq::calculate_qmin_qmax(nullptr, nullptr, QDType::QUInt8, false).quant_max, 255);
  EXPECT_EQ(tq::calculate_qmin_qmax(nullptr, nullptr, QDType::QUInt8, true).quant_max, 127);
  EXPECT_EQ(tq::calculate_qmin_qmax(nullptr, nullptr, QDType::QInt8, false).quant_min, -128);
  EXPECT_EQ(tq::calculate_qmin_qmax(nullptr, nullptr, QDType::QInt8, true).quant_min, -64);
  EXPECT_EQ(tq::calculate_qmin_qmax(nullptr, nullptr, QDType::QInt8, true).quant_max, 63);
  EXPECT_EQ(tq::calculate_qmin_qmax(nullptr, nullptr, QDType::QInt32, false).quant_min, -2147483648LL);
  EXPECT_EQ(tq::calculate_qmin_qmax(nullptr, nullptr, QDType::QUInt4x2, false).quant_max, 15);
}

TEST(Dtypes, CustomRangeIsHalvedByReduceRangeWithFloorDivision) {
  const int64_t lo = -127, hi = 127;
  const auto r = tq::calculate_qmin_qmax(&lo, &hi, QDType::QInt8, true);
  EXPECT_EQ(r.quant_min, -64);  // Python: -127 // 2 == -64
  EXPECT_EQ(r.quant_max, 63);
}

TEST(Dtypes, CustomRangeLongerThan256IsRejectedForQInt8) {
  const int64_t lo = -200, hi = 200;
  tq::testing::expect_error([&] { tq::calculate_qmin_qmax(&lo, &hi, QDType::QInt8, false); }, "[calculate_qmin_qmax] quantization range should be positive and not exceed the maximum bit range (=256), got [-200, 200]");
}

TEST(Dtypes, ValidateRejectsBadRangesWithTheirValues) {
  try {
    tq::validate_qmin_qmax(5, 3, QDType::QUInt8, "Obs");
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[Obs]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("quant_min=5"), std::string::npos) << e.what();
  }
  tq::testing::expect_error([&] { tq::validate_qmin_qmax(3, 3, QDType::QUInt8, "Obs"); }, "[Obs] user-specified quantization range must include 0, got quant_min=3, quant_max=3");       // empty range... and no 0
  tq::testing::expect_error([&] { tq::validate_qmin_qmax(0, 0, QDType::QUInt8, "Obs"); }, "[Obs] quant_min (0) must be strictly less than quant_max (0)");       // qmin == qmax
  tq::testing::expect_error([&] { tq::validate_qmin_qmax(-1, 255, QDType::QUInt8, "Obs"); }, "[Obs] quantization range [-1, 255] is outside the range of quint8 [0, 255]");    // below quint8
  tq::testing::expect_error([&] { tq::validate_qmin_qmax(-128, 128, QDType::QInt8, "Obs"); }, "[Obs] quantization range [-128, 128] is outside the range of qint8 [-128, 127]");   // above qint8
  tq::testing::expect_error([&] { tq::validate_qmin_qmax(0, 16, QDType::QUInt4x2, "Obs"); }, "[Obs] quantization range [0, 16] is outside the range of quint4x2 [0, 15]");    // above 4 bits
  EXPECT_NO_THROW(tq::validate_qmin_qmax(-127, 127, QDType::QInt8, "Obs"));
}

TEST(Dtypes, NamesRoundTrip) {
  for (auto d : {QDType::QUInt8, QDType::QInt8, QDType::QInt32, QDType::QUInt4x2, QDType::Float16}) {
    EXPECT_EQ(tq::qdtype_from_string(tq::to_string(d)), d);
  }
  for (auto q : {QScheme::PerTensorAffine, QScheme::PerTensorSymmetric, QScheme::PerChannelAffine,
                 QScheme::PerChannelSymmetric, QScheme::PerChannelAffineFloatQParams}) {
    EXPECT_EQ(tq::qscheme_from_string(tq::to_string(q)), q);
  }
  tq::testing::expect_error([&] { tq::qdtype_from_string("qint4"); }, "[dtype] unknown dtype 'qint4'; expected quint8, qint8, qint32, quint4x2, float16 or float32");
  EXPECT_EQ(tq::to_scalar_type(QDType::QInt8), c10::kQInt8);
  EXPECT_EQ(tq::to_c10(QScheme::PerChannelSymmetric), c10::kPerChannelSymmetric);
}
