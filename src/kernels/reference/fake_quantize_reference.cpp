// Scalar reference implementations: the definition the fast kernels are tested against.
#include <cmath>

#include "tq/kernels/fake_quantize_kernels.h"

namespace tq::kernels::reference {
namespace {

// Returns q before clamping, following ATen's order of operations.
inline float unclamped_q(float x, float inv_scale, float zero_point, bool float_zero_point) {
  return float_zero_point ? std::nearbyint(x * inv_scale + zero_point) : std::nearbyint(x * inv_scale) + zero_point;
}

inline void fake_quantize_one(float x, float scale, float inv_scale, float zp, float qmin, float qmax, bool float_zp,
                              float* y, bool* mask) {
  const float q = unclamped_q(x, inv_scale, zp, float_zp);
  const bool inside = q >= qmin && q <= qmax;
  float clamped = q;
  if (q < qmin) clamped = qmin;
  if (q > qmax) clamped = qmax;
  // ATen subtracts a float zero point in double (its clamp yields an integer type), so the
  // only rounding is the final one; with an integer zero point both forms are exact.
  if (y) *y = float_zp ? static_cast<float>((static_cast<double>(clamped) - zp) * static_cast<double>(scale))
                       : (clamped - zp) * scale;
  if (mask) *mask = inside;
}

}  // namespace

void fake_quantize_per_tensor(const float* x, float* y, bool* mask, int64_t n, const PerTensorQParams& qp) {
  const float inv_scale = 1.0f / qp.scale;
  for (int64_t i = 0; i < n; ++i) {
    fake_quantize_one(x[i], qp.scale, inv_scale, qp.zero_point, qp.quant_min, qp.quant_max, qp.float_zero_point,
                      y ? y + i : nullptr, mask ? mask + i : nullptr);
  }
}

void fake_quantize_per_channel(const float* x, float* y, bool* mask, ChannelLayout l, const PerChannelQParams& qp) {
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t c = 0; c < l.channels; ++c) {
      const float inv_scale = 1.0f / qp.scale[c];
      for (int64_t j = 0; j < l.inner; ++j) {
        const int64_t i = (o * l.channels + c) * l.inner + j;
        fake_quantize_one(x[i], qp.scale[c], inv_scale, qp.zero_point[c], qp.quant_min, qp.quant_max,
                          qp.float_zero_point, y ? y + i : nullptr, mask ? mask + i : nullptr);
      }
    }
  }
}

void quantize_per_tensor(const float* x, int64_t* q, int64_t n, float scale, int64_t zero_point, int64_t quant_min,
                         int64_t quant_max) {
  const float inv_scale = 1.0f / scale;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv_scale) + static_cast<float>(zero_point);
    int64_t qi;
    if (std::isnan(v) || v <= static_cast<float>(quant_min)) {
      qi = quant_min;
    } else if (v >= static_cast<float>(quant_max)) {
      qi = quant_max;
    } else {
      qi = static_cast<int64_t>(v);
    }
    q[i] = qi < quant_min ? quant_min : (qi > quant_max ? quant_max : qi);
  }
}

}  // namespace tq::kernels::reference
