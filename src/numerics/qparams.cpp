#include "tq/numerics/qparams.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tq/core/check.h"
#include "tq/kernels/tensor_kernels.h"
#include "tq/numerics/fake_quantize.h"

namespace tq {

bool check_min_max_valid(const at::Tensor& min_val, const at::Tensor& max_val, const char* op) {
  if (min_val.numel() == 0 || max_val.numel() == 0) return false;
  TQ_CHECK(min_val.sizes() == max_val.sizes(), op, "min_val shape ", min_val.sizes(), " differs from max_val shape ",
           max_val.sizes());
  const auto mn = min_val.to(at::kFloat).contiguous();
  const auto mx = max_val.to(at::kFloat).contiguous();
  const float* lo = mn.data_ptr<float>();
  const float* hi = mx.data_ptr<float>();
  if (mn.dim() == 0 && std::isinf(lo[0]) && lo[0] > 0 && std::isinf(hi[0]) && hi[0] < 0) return false;
  for (int64_t i = 0; i < mn.numel(); ++i) {
    TQ_CHECK(lo[i] <= hi[i], op, "min_val (", lo[i], ") must be <= max_val (", hi[i], ")",
             mn.numel() > 1 ? " at channel " + std::to_string(i) : std::string());
  }
  return true;
}

QParams calculate_qparams(const at::Tensor& min_val, const at::Tensor& max_val, const QParamsSpec& spec) {
  const char* op = "calculate_qparams";
  if (!check_min_max_valid(min_val, max_val, op)) {
    return {at::ones({1}, at::kFloat), at::zeros({1}, at::kLong)};
  }
  const auto mn = min_val.to(at::kFloat).contiguous();
  const auto mx = max_val.to(at::kFloat).contiguous();
  const int64_t n = mn.numel();
  const float* lo = mn.data_ptr<float>();
  const float* hi = mx.data_ptr<float>();
  const int64_t qmin = spec.quant_min, qmax = spec.quant_max;
  const float eps = spec.eps;

  at::Tensor scale = at::empty({n}, at::kFloat);
  float* s = scale.data_ptr<float>();
  at::Tensor zero_point;

  // The float32 steps below mirror PyTorch's tensor expressions one by one; Python floats in
  // those expressions are cast to float32 before the operation, as ATen does for scalars.
  if (is_symmetric(spec.qscheme)) {
    zero_point = at::empty({n}, at::kLong);
    int64_t* z = zero_point.data_ptr<int64_t>();
    const float half_range = static_cast<float>(static_cast<double>(qmax - qmin) / 2.0);
    int64_t zp = 0;
    if (spec.dtype == QDType::QUInt8) {
      const int64_t sum = qmin + qmax;
      zp = spec.has_customized_qrange ? (sum >= 0 ? sum / 2 : -((-sum + 1) / 2)) : 128;
    }
    for (int64_t i = 0; i < n; ++i) {
      const float min_neg = std::min(lo[i], 0.0f);
      const float max_pos = std::max(std::max(hi[i], 0.0f), -min_neg);
      s[i] = std::max(max_pos / half_range, eps);
      z[i] = zp;
    }
  } else if (is_float_qparams(spec.qscheme)) {
    zero_point = at::empty({n}, at::kFloat);
    float* z = zero_point.data_ptr<float>();
    const float range = static_cast<float>(qmax - qmin);
    for (int64_t i = 0; i < n; ++i) {
      const float si = (hi[i] - lo[i]) / range;
      s[i] = si > eps ? si : 1.0f;
      z[i] = (-lo[i]) / s[i];
    }
  } else {
    zero_point = at::empty({n}, at::kInt);
    int32_t* z = zero_point.data_ptr<int32_t>();
    const float range = static_cast<float>(qmax - qmin);
    for (int64_t i = 0; i < n; ++i) {
      const float min_neg = std::min(lo[i], 0.0f);
      const float max_pos = std::max(hi[i], 0.0f);
      s[i] = std::max((max_pos - min_neg) / range, eps);
      const int64_t zi = qmin - static_cast<int64_t>(std::nearbyint(min_neg / s[i]));
      z[i] = static_cast<int32_t>(std::clamp(zi, qmin, qmax));
    }
  }
  return {scale, zero_point};
}

ChosenQParams choose_quantization_params(float min, float max, int32_t qmin, int32_t qmax, bool preserve_sparsity,
                                         bool reduce_range) {
  const char* op = "choose_quantization_params";
  TQ_CHECK(!std::isnan(min) && !std::isnan(max), op, "min (", min, ") and max (", max, ") must not be NaN");
  TQ_CHECK(min <= max, op, "min (", min, ") must be <= max (", max, ")");
  if (reduce_range) {
    qmin = qmin / 2;
    qmax = qmax / 2;
  }
  if (min < 0 && max > 0 && preserve_sparsity) {
    const int symmetric_qmin = -((qmax - qmin) / 2 + 1);
    const int symmetric_qmax = (qmax - qmin) / 2;
    const double max_scale = std::max(std::fabs(min / symmetric_qmin), std::fabs(max / symmetric_qmax));
    min = static_cast<float>(max_scale * symmetric_qmin);
    max = static_cast<float>(max_scale * symmetric_qmax);
  }
  // The range must contain 0 so that 0 is exactly representable.
  min = std::min(min, 0.0f);
  max = std::max(max, 0.0f);
  TQ_CHECK(qmin < qmax, op, "quant_min (", qmin, ") must be < quant_max (", qmax, ")");
  double scale = (static_cast<double>(max) - min) / (qmax - qmin);
  if (static_cast<float>(scale) == 0.0f || std::isinf(1.0f / static_cast<float>(scale))) scale = 0.1;
  constexpr float kSmallScale = 6.1e-5f;
  if (scale < kSmallScale) {
    const float org_scale = static_cast<float>(scale);
    scale = kSmallScale;
    if (min == 0.0f) {
      max = kSmallScale * (qmax - qmin);
    } else if (max == 0.0f) {
      min = -kSmallScale * (qmax - qmin);
    } else {
      const float amplifier = kSmallScale / org_scale;
      min *= amplifier;
      max *= amplifier;
    }
  }
  // Of the two affine equations (min -> qmin, max -> qmax), use the one with smaller terms.
  const double zp_from_min = qmin - min / scale;
  const double zp_from_max = qmax - max / scale;
  const double zp_from_min_error = std::abs(qmin) - std::abs(min / scale);
  const double zp_from_max_error = std::abs(qmax) - std::abs(max / scale);
  double initial_zp = zp_from_min_error < zp_from_max_error ? zp_from_min : zp_from_max;
  if (min < 0 && max > 0 && preserve_sparsity) initial_zp = static_cast<double>(qmin + qmax) / 2;
  int32_t zp;
  if (initial_zp < qmin) {
    zp = qmin;
  } else if (initial_zp > qmax) {
    zp = qmax;
  } else {
    zp = static_cast<int32_t>(std::nearbyint(initial_zp));
  }
  return {static_cast<float>(scale), zp};
}

c10::ScalarType storage_type(QDType dtype) {
  switch (dtype) {
    case QDType::QUInt8:
    case QDType::QUInt4x2: return at::kByte;
    case QDType::QInt8: return at::kChar;
    case QDType::QInt32: return at::kInt;
    default: TQ_FAIL("quantize", "dtype ", to_string(dtype), " is not an integer quantized dtype");
  }
}

namespace {

void check_quantize_input(const at::Tensor& x, const char* op) {
  TQ_CHECK(x.defined(), op, "input is undefined");
  TQ_CHECK(x.scalar_type() == at::kFloat, op, "input must be float32, got ", x.scalar_type());
  kernels::check_kernels_exist(x, op);
  TQ_CHECK(!at::isnan(x).any().item<bool>(), op, "input contains NaN, which has no quantized value");
}

void check_scale(double scale, const char* op) {
  TQ_CHECK(std::isfinite(scale) && scale > 0, op, "scale must be positive and finite, got ", scale);
}

QRange storage_range(QDType dtype) {
  if (dtype == QDType::QUInt4x2) return {0, 15};
  return {dtype_min(dtype), dtype_max(dtype)};
}

}  // namespace

at::Tensor quantize_per_tensor(const at::Tensor& x, double scale, int64_t zero_point, QDType dtype) {
  const char* op = "quantize_per_tensor";
  check_quantize_input(x, op);
  check_scale(scale, op);
  const QRange r = storage_range(dtype);
  TQ_CHECK(zero_point >= r.quant_min && zero_point <= r.quant_max, op, "zero_point (", zero_point,
           ") is outside the range of ", to_string(dtype));
  return kernels::quantize_per_tensor(x, static_cast<float>(scale), zero_point, r.quant_min, r.quant_max)
      .to(storage_type(dtype));
}

at::Tensor dequantize_per_tensor(const at::Tensor& q, double scale, int64_t zero_point) {
  check_scale(scale, "dequantize_per_tensor");
  // (q - z) in float, then one float32 multiply: ATen's dequantize order.
  return (q.to(at::kFloat) - static_cast<float>(zero_point)) * static_cast<float>(scale);
}

at::Tensor quantize_per_channel(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                int64_t axis, QDType dtype) {
  const char* op = "quantize_per_channel";
  check_quantize_input(x, op);
  const auto layout = channel_layout(x, axis, op);
  TQ_CHECK(scale.dim() == 1 && scale.numel() == layout.channels, op, "scale must have shape [", layout.channels,
           "], got ", scale.sizes());
  TQ_CHECK(zero_point.dim() == 1 && zero_point.numel() == layout.channels, op, "zero_point must have shape [",
           layout.channels, "], got ", zero_point.sizes());
  const QRange r = storage_range(dtype);
  // Each (outer, channel) row of `inner` values is one per-tensor quantization; the qparams are
  // read on the host, the rows stay on x's device.
  const auto& quantize = kernels::kernels_for(x.device(), op).quantize_per_tensor;
  const auto xc = x.contiguous();
  const auto sc = scale.to(at::kCPU, at::kFloat).contiguous();
  const auto zc = zero_point.to(at::kCPU, at::kLong).contiguous();
  at::Tensor q64 = at::empty(x.sizes(), x.options().dtype(at::kLong));
  const float* xp = xc.data_ptr<float>();
  int64_t* qp = q64.data_ptr<int64_t>();
  for (int64_t c = 0; c < layout.channels; ++c) check_scale(sc.data_ptr<float>()[c], op);
  for (int64_t o = 0; o < layout.outer; ++o) {
    for (int64_t c = 0; c < layout.channels; ++c) {
      const int64_t off = (o * layout.channels + c) * layout.inner;
      quantize(xp + off, qp + off, layout.inner, sc.data_ptr<float>()[c], zc.data_ptr<int64_t>()[c], r.quant_min,
               r.quant_max);
    }
  }
  return q64.to(storage_type(dtype));
}

at::Tensor dequantize_per_channel(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point,
                                  int64_t axis) {
  const auto layout = channel_layout(q, axis, "dequantize_per_channel");
  std::vector<int64_t> shape(q.dim(), 1);
  const int64_t ax = axis < 0 ? axis + q.dim() : axis;
  shape[ax] = layout.channels;
  const auto s = scale.to(at::kFloat).reshape(shape);
  const auto z = zero_point.to(at::kFloat).reshape(shape);
  return (q.to(at::kFloat) - z) * s;
}

}  // namespace tq
