// The scalar definitions of the passes around an int8 GEMM with float32 output
// (gemm_row_kernels.h): one value at a time.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "tq/kernels/gemm_row_kernels.h"

namespace tq::kernels::reference {

void quantize_rows_static(const float* x, const float* factors, int64_t rows, int64_t cols,
                          const StaticRowQuantization& p, int8_t* q, float* row_scales) {
  const float inv = 1.0f / p.scale;
  for (int64_t i = 0; i < rows; ++i) {
    bool nan = false;
    for (int64_t k = 0; k < cols; ++k) {
      float v = x[i * cols + k];
      if (factors != nullptr) v = v * factors[k];
      v = v * inv;
      int64_t code = p.quant_min;  // a NaN's code; its row's outputs are NaN anyway
      if (std::isnan(v)) {
        nan = true;
      } else {
        const double r = std::nearbyint(static_cast<double>(v)) + p.zero_point;  // ties to even
        code = r < p.quant_min ? p.quant_min : r > p.quant_max ? p.quant_max : static_cast<int64_t>(r);
      }
      q[i * cols + k] = static_cast<int8_t>(code - p.shift);
    }
    row_scales[i] = nan ? std::numeric_limits<float>::quiet_NaN() : p.scale;
  }
}

void quantize_rows_per_token(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = x + i * cols;
    float max_abs = 0;
    bool nan = false;
    for (int64_t k = 0; k < cols; ++k) {
      nan = nan || std::isnan(r[k]);
      max_abs = std::fabs(r[k]) > max_abs ? std::fabs(r[k]) : max_abs;
    }
    const float scale = std::max(max_abs / 127.0f, 1e-5f);
    const float inv = 1.0f / scale;
    for (int64_t k = 0; k < cols; ++k) {
      const float v = r[k] * inv;
      const double rounded = std::isnan(v) ? -127.0 : std::nearbyint(static_cast<double>(v));  // ties to even
      q[i * cols + k] = nan ? 0 : static_cast<int8_t>(rounded < -127 ? -127 : rounded > 127 ? 127 : rounded);
    }
    scales[i] = nan ? std::numeric_limits<float>::quiet_NaN() : scale;
  }
}

void scale_int32_sums(int32_t* sums, int64_t rows, int64_t cols, const float* row_scales, const float* channel_scales,
                      const float* offsets, const float* bias) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      float r = static_cast<float>(sums[i * cols + j]);
      if (offsets != nullptr) r = r + offsets[j];
      r = r * row_scales[i];
      r = r * channel_scales[j];
      if (bias != nullptr) r = r + bias[j];
      std::memcpy(sums + i * cols + j, &r, sizeof(r));
    }
  }
}

}  // namespace tq::kernels::reference
