// The scalar definition of the group-wise weight-only Linear (weight_only_kernels.h): every value
// unpacked one at a time, sums in double.
#include <cstdint>
#include <vector>

#include "tq/kernels/weight_only_kernels.h"

namespace tq::kernels::reference {
namespace {

int unpack(const GroupwiseWeightView& w, int64_t n, int64_t k) {
  if (w.bits == 8) return w.packed[n * w.in_features + k];
  const uint8_t byte = w.packed[n * (w.in_features / 2) + (k / 32) * 16 + (k % 32) % 16];
  return (k % 32) < 16 ? (byte & 0x0F) : (byte >> 4);
}

}  // namespace

void linear_weight_only(const float* x, int64_t rows, const GroupwiseWeightView& w, const float* bias, float* y) {
  const int64_t groups = w.in_features / w.group_size;
  for (int64_t m = 0; m < rows; ++m) {
    const float* xm = x + m * w.in_features;
    for (int64_t n = 0; n < w.out_features; ++n) {
      double out = bias != nullptr ? bias[n] : 0.0;
      for (int64_t g = 0; g < groups; ++g) {
        double dot = 0.0, sum = 0.0;
        for (int64_t k = g * w.group_size; k < (g + 1) * w.group_size; ++k) {
          dot += static_cast<double>(xm[k]) * unpack(w, n, k);
          sum += xm[k];
        }
        out += static_cast<double>(w.scales[n * groups + g]) * (dot - w.zero_points[n * groups + g] * sum);
      }
      y[m * w.out_features + n] = static_cast<float>(out);
    }
  }
}

}  // namespace tq::kernels::reference
