// Vectorized, parallel fake quantization. The loops are written so that GCC vectorizes them for
// the instruction set this copy is compiled for; -ffp-contract=off keeps every rounding step
// identical to the scalar reference.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "kernel_namespace.h"
#include "tq/kernels/fake_quantize_kernels.h"

namespace tq::kernels::TQ_KERNEL_NS {
namespace {

constexpr int64_t kGrain = 1 << 15;

// Round half to even without a libm call: for |v| < 2^23, (|v| + 2^23) - 2^23 rounds in the
// current (nearest-even) mode exactly like nearbyint; larger |v| are already integers. NaN
// fails the comparison and passes through. Vectorizes on plain SSE2; with SSE4.1 and later,
// nearbyint itself is one instruction.
inline float round_half_even(float v) {
#if defined(__SSE4_1__)
  return std::nearbyint(v);  // one vroundps
#else
  constexpr float kTwo23 = 8388608.0f;
  const float a = std::fabs(v);
  const float r = std::copysign((a + kTwo23) - kTwo23, v);
  return a < kTwo23 ? r : v;
#endif
}

// Clamp that keeps NaN (std::fmin/fmax would replace it with a bound).
inline float clamp_keep_nan(float q, float lo, float hi) {
  q = q < lo ? lo : q;
  return q > hi ? hi : q;
}

// (q - zp) * scale. A float zero point is subtracted in double, as ATen does (see reference).
template <bool kFloatZp>
inline float dequantize(float q, float zp, float scale) {
  if constexpr (kFloatZp) {
    return static_cast<float>((static_cast<double>(q) - zp) * static_cast<double>(scale));
  } else {
    return (q - zp) * scale;
  }
}

template <bool kFloatZp, bool kWriteY, bool kWriteMask>
inline void per_tensor_span(const float* __restrict x, float* __restrict y, bool* __restrict mask, int64_t n,
                            float scale, float inv_scale, float zp, float qmin, float qmax) {
  for (int64_t i = 0; i < n; ++i) {
    const float q = kFloatZp ? round_half_even(x[i] * inv_scale + zp) : round_half_even(x[i] * inv_scale) + zp;
    if constexpr (kWriteY) y[i] = dequantize<kFloatZp>(clamp_keep_nan(q, qmin, qmax), zp, scale);
    if constexpr (kWriteMask) mask[i] = (q >= qmin) & (q <= qmax);
  }
}

template <bool kFloatZp>
void per_tensor_dispatch(const float* x, float* y, bool* mask, int64_t n, float scale, float inv_scale, float zp,
                         float qmin, float qmax) {
  if (y && mask) {
    per_tensor_span<kFloatZp, true, true>(x, y, mask, n, scale, inv_scale, zp, qmin, qmax);
  } else if (y) {
    per_tensor_span<kFloatZp, true, false>(x, y, mask, n, scale, inv_scale, zp, qmin, qmax);
  } else if (mask) {
    per_tensor_span<kFloatZp, false, true>(x, y, mask, n, scale, inv_scale, zp, qmin, qmax);
  }
}

void per_tensor_any(const float* x, float* y, bool* mask, int64_t n, float scale, float zp, float qmin, float qmax,
                    bool float_zp) {
  const float inv_scale = 1.0f / scale;
  if (float_zp) {
    per_tensor_dispatch<true>(x, y, mask, n, scale, inv_scale, zp, qmin, qmax);
  } else {
    per_tensor_dispatch<false>(x, y, mask, n, scale, inv_scale, zp, qmin, qmax);
  }
}

// Channels along the contiguous axis (inner == 1): per-element qparams, loaded contiguously.
template <bool kFloatZp, bool kWriteY, bool kWriteMask>
void channels_last_row(const float* __restrict x, float* __restrict y, bool* __restrict mask, int64_t channels,
                       const float* __restrict scale, const float* __restrict inv_scale,
                       const float* __restrict zp, float qmin, float qmax) {
  for (int64_t c = 0; c < channels; ++c) {
    const float q = kFloatZp ? round_half_even(x[c] * inv_scale[c] + zp[c]) : round_half_even(x[c] * inv_scale[c]) + zp[c];
    if constexpr (kWriteY) y[c] = dequantize<kFloatZp>(clamp_keep_nan(q, qmin, qmax), zp[c], scale[c]);
    if constexpr (kWriteMask) mask[c] = (q >= qmin) & (q <= qmax);
  }
}

template <bool kFloatZp>
void channels_last_row_any(const float* x, float* y, bool* mask, int64_t channels, const float* scale,
                           const float* inv_scale, const float* zp, float qmin, float qmax) {
  if (y && mask) {
    channels_last_row<kFloatZp, true, true>(x, y, mask, channels, scale, inv_scale, zp, qmin, qmax);
  } else if (y) {
    channels_last_row<kFloatZp, true, false>(x, y, mask, channels, scale, inv_scale, zp, qmin, qmax);
  } else if (mask) {
    channels_last_row<kFloatZp, false, true>(x, y, mask, channels, scale, inv_scale, zp, qmin, qmax);
  }
}

}  // namespace

void fake_quantize_per_tensor(const float* x, float* y, bool* mask, int64_t n, const PerTensorQParams& qp) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    per_tensor_any(x + begin, y ? y + begin : nullptr, mask ? mask + begin : nullptr, end - begin, qp.scale,
                   qp.zero_point, qp.quant_min, qp.quant_max, qp.float_zero_point);
  });
}

void fake_quantize_per_channel(const float* x, float* y, bool* mask, ChannelLayout l, const PerChannelQParams& qp) {
  if (l.inner == 1) {
    std::vector<float> inv(l.channels);
    for (int64_t c = 0; c < l.channels; ++c) inv[c] = 1.0f / qp.scale[c];
    const int64_t rows_per_task = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, l.channels));
    at::parallel_for(0, l.outer, rows_per_task, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        const int64_t off = o * l.channels;
        auto row = qp.float_zero_point ? channels_last_row_any<true> : channels_last_row_any<false>;
        row(x + off, y ? y + off : nullptr, mask ? mask + off : nullptr, l.channels, qp.scale, inv.data(),
            qp.zero_point, qp.quant_min, qp.quant_max);
      }
    });
    return;
  }
  // Each (outer, channel) row of `inner` elements shares one scale: a per-tensor span.
  const int64_t rows = l.outer * l.channels;
  const int64_t rows_per_task = std::max<int64_t>(1, kGrain / l.inner);
  at::parallel_for(0, rows, rows_per_task, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t c = r % l.channels;
      const int64_t off = r * l.inner;
      per_tensor_any(x + off, y ? y + off : nullptr, mask ? mask + off : nullptr, l.inner, qp.scale[c],
                     qp.zero_point[c], qp.quant_min, qp.quant_max, qp.float_zero_point);
    }
  });
}

void quantize_per_tensor(const float* x, int64_t* q, int64_t n, float scale, int64_t zero_point, int64_t quant_min,
                         int64_t quant_max) {
  const float inv_scale = 1.0f / scale, zp = static_cast<float>(zero_point);
  const float lo = static_cast<float>(quant_min), hi = static_cast<float>(quant_max);
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    const float* __restrict in = x + begin;
    int64_t* __restrict out = q + begin;
    for (int64_t i = 0; i < end - begin; ++i) {
      float v = round_half_even(in[i] * inv_scale) + zp;
      v = v > lo ? v : lo;  // NaN fails the comparison and maps to quant_min, as in the reference
      v = v < hi ? v : hi;
      out[i] = static_cast<int64_t>(v);
    }
  });
}

void masked_grad(const float* dy, const bool* mask, float* dx, int64_t n) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    const float* __restrict g = dy + begin;
    const bool* __restrict m = mask + begin;
    float* __restrict out = dx + begin;
    // A multiply, not a select, so a NaN gradient stays NaN as in ATen's dY * mask.
    for (int64_t i = 0; i < end - begin; ++i) out[i] = g[i] * static_cast<float>(m[i]);
  });
}

}  // namespace tq::kernels::TQ_KERNEL_NS
