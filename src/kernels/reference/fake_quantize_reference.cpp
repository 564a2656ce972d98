// Scalar reference implementations: the definition the fast kernels are tested against.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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

void masked_grad(const float* dy, const bool* mask, float* dx, int64_t n) {
  // dY * mask, as ATen: a NaN gradient stays NaN, a negative one masked gives -0.
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (mask[i] ? 1.0f : 0.0f);
}

void min_max(const float* x, int64_t n, float* min_out, float* max_out) {
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) {
      *min_out = *max_out = std::numeric_limits<float>::quiet_NaN();
      return;
    }
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  *min_out = mn;
  *max_out = mx;
}

void min_max_per_channel(const float* x, ChannelLayout l, float* min_out, float* max_out) {
  std::vector<float> row(l.outer * l.inner);
  for (int64_t c = 0; c < l.channels; ++c) {
    for (int64_t o = 0; o < l.outer; ++o) {
      std::copy_n(x + (o * l.channels + c) * l.inner, l.inner, row.data() + o * l.inner);
    }
    min_max(row.data(), static_cast<int64_t>(row.size()), min_out + c, max_out + c);
  }
}

void histogram(const float* x, int64_t n, float lo, float hi, int64_t bins, float* hist) {
  std::fill(hist, hist + bins, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    if (!(x[i] >= lo && x[i] <= hi)) continue;  // outside, or NaN
    // torch.histc: (x - lo) * bins / (hi - lo) in float32, truncated; hi itself goes to the last bin.
    auto b = static_cast<int64_t>((x[i] - lo) * static_cast<float>(bins) / (hi - lo));
    hist[std::min(b, bins - 1)] += 1.0f;
  }
}

namespace {

// One element of the LSQ backward; adds its scale / zero-point terms to the sums.
inline float learnable_one(float x, float dy, float scale, float zp, float qmin, float qmax, float grad_factor,
                           double& dscale, double& dzero_point) {
  const float inv_scale = 1.0f / scale;
  const float q = std::nearbyint(zp + x * inv_scale);
  if (!(q >= qmin && q <= qmax)) {  // outside, or NaN (counted as above the range, as the fast kernel does)
    dscale += (dy * ((q < qmin ? qmin : qmax) - zp)) * grad_factor;
    dzero_point += dy * -1.0f * scale * grad_factor;
    return dy * 0.0f;
  }
  dscale += dy * ((q - zp) * scale - x) * inv_scale * grad_factor;
  return dy;
}

}  // namespace

void learnable_backward_per_tensor(const float* x, const float* dy, float* dx, int64_t n, float scale, float zero_point,
                                   float quant_min, float quant_max, float grad_factor, double* dscale,
                                   double* dzero_point) {
  *dscale = *dzero_point = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    dx[i] = learnable_one(x[i], dy[i], scale, zero_point, quant_min, quant_max, grad_factor, *dscale, *dzero_point);
  }
}

void learnable_backward_per_channel(const float* x, const float* dy, float* dx, ChannelLayout l, const float* scale,
                                    const float* zero_point, float quant_min, float quant_max, float grad_factor,
                                    double* dscale, double* dzero_point) {
  std::fill(dscale, dscale + l.channels, 0.0);
  std::fill(dzero_point, dzero_point + l.channels, 0.0);
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t c = 0; c < l.channels; ++c) {
      for (int64_t j = 0; j < l.inner; ++j) {
        const int64_t i = (o * l.channels + c) * l.inner + j;
        dx[i] = learnable_one(x[i], dy[i], scale[c], zero_point[c], quant_min, quant_max, grad_factor, dscale[c],
                              dzero_point[c]);
      }
    }
  }
}

}  // namespace tq::kernels::reference
