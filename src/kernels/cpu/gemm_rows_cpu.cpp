// Vectorized, parallel passes around an int8 GEMM with float32 output (gemm_row_kernels.h). The
// loops are written so that GCC vectorizes them for the instruction set this copy is compiled
// for; -ffp-contract=off keeps every rounding step the reference's.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernel_namespace.h"
#include "tq/kernels/gemm_row_kernels.h"

namespace tq::kernels::TQ_KERNEL_NS {
namespace {

// max |x| over a row, and whether it holds a NaN. On the bits: |x| is x's bits without the sign,
// and for those the integer order is the float order, NaNs above infinity (an integer maximum,
// which GCC vectorizes; a float one it does not without -ffast-math).
float row_max_abs(const float* __restrict x, int64_t n, bool& nan) {
  int32_t m = 0;
  for (int64_t k = 0; k < n; ++k) {
    int32_t bits;
    std::memcpy(&bits, x + k, sizeof(bits));
    bits &= 0x7fffffff;
    m = bits > m ? bits : m;
  }
  nan = m > 0x7f800000;
  float out;
  std::memcpy(&out, &m, sizeof(out));
  return out;
}

bool row_has_nan(const float* x, int64_t n) {
  bool nan;
  row_max_abs(x, n, nan);
  return nan;
}

}  // namespace

void quantize_rows_static(const float* x, const float* factors, int64_t rows, int64_t cols,
                          const StaticRowQuantization& p, int8_t* q, float* row_scales) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    // Locals, not captured references: the int8 stores may alias anything, so a captured constant
    // would be reloaded for every element and the loop would not vectorize.
    const float inv = 1.0f / p.scale;
    // Clamped before rounding, one step outside the range, so the magic number rounds exactly; a
    // NaN fails both comparisons and takes the lower bound (the reference's quant_min).
    const float lo = static_cast<float>(p.quant_min - p.zero_point - 1);
    const float hi = static_cast<float>(p.quant_max - p.zero_point + 1);
    const float qmin = static_cast<float>(p.quant_min - p.shift), qmax = static_cast<float>(p.quant_max - p.shift);
    const float offset = static_cast<float>(p.zero_point - p.shift);
    const float scale = p.scale;
    const int64_t n = cols;
    const float* __restrict f = factors;
    constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds half to even
    const auto code = [=](float v) {
      v = v > lo ? v : lo;
      v = v < hi ? v : hi;
      v = (v + kRound) - kRound + offset;
      v = v < qmin ? qmin : v;
      v = v > qmax ? qmax : v;
      return static_cast<int8_t>(static_cast<int>(v));
    };
    for (int64_t i = begin; i < end; ++i) {
      const float* __restrict r = x + i * n;
      int8_t* __restrict out = q + i * n;
      row_scales[i] = row_has_nan(r, n) ? std::numeric_limits<float>::quiet_NaN() : scale;
      if (f != nullptr) {
        for (int64_t k = 0; k < n; ++k) out[k] = code((r[k] * f[k]) * inv);
      } else {
        for (int64_t k = 0; k < n; ++k) out[k] = code(r[k] * inv);
      }
    }
  });
}

void quantize_rows_per_token(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    const int64_t n = cols;
    constexpr float kRound = 12582912.0f;  // 1.5 * 2^23, as quantize_rows_static
    for (int64_t i = begin; i < end; ++i) {
      const float* __restrict r = x + i * n;
      int8_t* __restrict out = q + i * n;
      bool nan;
      const float max_abs = row_max_abs(r, n, nan);
      if (nan) {
        std::memset(out, 0, n);
        scales[i] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      const float scale = std::max(max_abs / 127.0f, 1e-5f);
      const float inv = 1.0f / scale;
      // Clamped before rounding (|x * inv| <= 127 but for rounding, or NaN from an infinite row,
      // which fails both comparisons and takes -127), so the magic number rounds exactly.
      for (int64_t k = 0; k < n; ++k) {
        float v = r[k] * inv;
        v = v > -127.f ? v : -127.f;
        v = v < 127.f ? v : 127.f;
        v = (v + kRound) - kRound;
        out[k] = static_cast<int8_t>(static_cast<int>(v));
      }
      scales[i] = scale;
    }
  });
}

void scale_int32_sums(int32_t* sums, int64_t rows, int64_t cols, const float* row_scales, const float* channel_scales,
                      const float* offsets, const float* bias) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    const int64_t n = cols;
    const float* __restrict cs = channel_scales;
    const float* __restrict off = offsets;
    const float* __restrict b = bias;
    for (int64_t i = begin; i < end; ++i) {
      int32_t* p = sums + i * n;
      const float s = row_scales[i];
      // Byte copies in and out (no type-punned pointers); GCC turns them into vector loads / stores.
      const auto scale_row = [&](auto&& value) {
        for (int64_t j = 0; j < n; ++j) {
          int32_t a;
          std::memcpy(&a, p + j, sizeof(a));
          const float r = value(static_cast<float>(a), j);
          std::memcpy(p + j, &r, sizeof(r));
        }
      };
      if (off != nullptr && b != nullptr) {
        scale_row([&](float a, int64_t j) { return (a + off[j]) * s * cs[j] + b[j]; });
      } else if (off != nullptr) {
        scale_row([&](float a, int64_t j) { return (a + off[j]) * s * cs[j]; });
      } else if (b != nullptr) {
        scale_row([&](float a, int64_t j) { return a * s * cs[j] + b[j]; });
      } else {
        scale_row([&](float a, int64_t j) { return a * s * cs[j]; });
      }
    }
  });
}

}  // namespace tq::kernels::TQ_KERNEL_NS
