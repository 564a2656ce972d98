#include "tq/core/dtypes.h"

#include "tq/core/check.h"

namespace tq {

std::string to_string(QDType dtype) {
  switch (dtype) {
    case QDType::QUInt8: return "quint8";
    case QDType::QInt8: return "qint8";
    case QDType::QInt32: return "qint32";
    case QDType::QUInt4x2: return "quint4x2";
    case QDType::Float16: return "float16";
    case QDType::Float32: return "float32";
  }
  return "?";
}

std::string to_string(QScheme qscheme) {
  switch (qscheme) {
    case QScheme::PerTensorAffine: return "per_tensor_affine";
    case QScheme::PerTensorSymmetric: return "per_tensor_symmetric";
    case QScheme::PerChannelAffine: return "per_channel_affine";
    case QScheme::PerChannelSymmetric: return "per_channel_symmetric";
    case QScheme::PerChannelAffineFloatQParams: return "per_channel_affine_float_qparams";
  }
  return "?";
}

QDType qdtype_from_string(const std::string& name) {
  for (QDType d : {QDType::QUInt8, QDType::QInt8, QDType::QInt32, QDType::QUInt4x2, QDType::Float16,
                   QDType::Float32}) {
    if (to_string(d) == name) return d;
  }
  if (name == "float" || name == "half") return name == "float" ? QDType::Float32 : QDType::Float16;
  TQ_FAIL("dtype", "unknown dtype '", name, "'; expected quint8, qint8, qint32, quint4x2, float16 or float32");
}

QScheme qscheme_from_string(const std::string& name) {
  for (QScheme q : {QScheme::PerTensorAffine, QScheme::PerTensorSymmetric, QScheme::PerChannelAffine,
                    QScheme::PerChannelSymmetric, QScheme::PerChannelAffineFloatQParams}) {
    if (to_string(q) == name) return q;
  }
  TQ_FAIL("qscheme", "unknown qscheme '", name, "'");
}

c10::ScalarType to_scalar_type(QDType dtype) {
  switch (dtype) {
    case QDType::QUInt8: return c10::kQUInt8;
    case QDType::QInt8: return c10::kQInt8;
    case QDType::QInt32: return c10::kQInt32;
    case QDType::QUInt4x2: return c10::kQUInt4x2;
    case QDType::Float16: return c10::kHalf;
    case QDType::Float32: return c10::kFloat;
  }
  return c10::kFloat;
}

c10::QScheme to_c10(QScheme qscheme) {
  switch (qscheme) {
    case QScheme::PerTensorAffine: return c10::kPerTensorAffine;
    case QScheme::PerTensorSymmetric: return c10::kPerTensorSymmetric;
    case QScheme::PerChannelAffine: return c10::kPerChannelAffine;
    case QScheme::PerChannelSymmetric: return c10::kPerChannelSymmetric;
    case QScheme::PerChannelAffineFloatQParams: return c10::kPerChannelAffineFloatQParams;
  }
  return c10::kPerTensorAffine;
}

bool is_quantized(QDType dtype) { return dtype != QDType::Float16 && dtype != QDType::Float32; }
bool is_per_tensor(QScheme q) { return q == QScheme::PerTensorAffine || q == QScheme::PerTensorSymmetric; }
bool is_per_channel(QScheme q) { return !is_per_tensor(q); }
bool is_symmetric(QScheme q) { return q == QScheme::PerTensorSymmetric || q == QScheme::PerChannelSymmetric; }
bool is_float_qparams(QScheme q) { return q == QScheme::PerChannelAffineFloatQParams; }

int64_t dtype_min(QDType dtype) {
  switch (dtype) {
    case QDType::QUInt8: return 0;
    case QDType::QInt8: return -128;
    case QDType::QInt32: return INT32_MIN;
    case QDType::QUInt4x2: return 0;
    default: TQ_FAIL("dtype", "dtype ", to_string(dtype), " has no integer range");
  }
}

int64_t dtype_max(QDType dtype) {
  switch (dtype) {
    case QDType::QUInt8: return 255;
    case QDType::QInt8: return 127;
    case QDType::QInt32: return INT32_MAX;
    case QDType::QUInt4x2: return 255;  // torch.iinfo(torch.quint4x2) reports the uint8 storage
    default: TQ_FAIL("dtype", "dtype ", to_string(dtype), " has no integer range");
  }
}

int dtype_bits(QDType dtype) {
  switch (dtype) {
    case QDType::QInt32: return 32;
    case QDType::Float16: return 16;
    case QDType::Float32: return 32;
    default: return 8;
  }
}

QRange calculate_qmin_qmax(const int64_t* quant_min, const int64_t* quant_max, QDType dtype,
                           bool reduce_range) {
  if (quant_min != nullptr && quant_max != nullptr) {
    int64_t qmin = *quant_min, qmax = *quant_max;
    const int64_t len = qmax - qmin + 1;
    if (dtype == QDType::QInt8) {
      TQ_CHECK(len > 0 && len <= 256, "calculate_qmin_qmax",
               "quantization range should be positive and not exceed the maximum bit range (=256), got [",
               qmin, ", ", qmax, "]");
    } else if (dtype == QDType::QInt32) {
      TQ_CHECK(len > 0 && len <= (int64_t{1} << 32), "calculate_qmin_qmax",
               "quantization range should be positive and not exceed 2^32, got [", qmin, ", ", qmax, "]");
    }
    if (reduce_range) {
      // Python's floor division.
      auto floor_half = [](int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
      qmin = floor_half(qmin);
      qmax = floor_half(qmax);
    }
    return {qmin, qmax};
  }
  switch (dtype) {
    case QDType::QInt8: return reduce_range ? QRange{-64, 63} : QRange{-128, 127};
    case QDType::QUInt8: return reduce_range ? QRange{0, 127} : QRange{0, 255};
    case QDType::QInt32: return {INT32_MIN, INT32_MAX};
    default: return {0, 15};
  }
}

void validate_qmin_qmax(int64_t quant_min, int64_t quant_max, QDType dtype, const char* op) {
  TQ_CHECK(quant_min <= 0 && 0 <= quant_max, op, "user-specified quantization range must include 0, got quant_min=",
           quant_min, ", quant_max=", quant_max);
  TQ_CHECK(quant_min < quant_max, op, "quant_min (", quant_min, ") must be strictly less than quant_max (",
           quant_max, ")");
  if (is_quantized(dtype) && dtype != QDType::QUInt4x2) {
    TQ_CHECK(quant_min >= dtype_min(dtype) && quant_max <= dtype_max(dtype), op, "quantization range [",
             quant_min, ", ", quant_max, "] is outside the range of ", to_string(dtype), " [",
             dtype_min(dtype), ", ", dtype_max(dtype), "]");
  } else if (dtype == QDType::QUInt4x2) {
    TQ_CHECK(quant_min >= 0 && quant_max <= 15, op, "quantization range [", quant_min, ", ", quant_max,
             "] is outside the range of quint4x2 [0, 15]");
  }
}

}  // namespace tq
