// torch.histc's bin assignment, vectorized and parallel: pos = (x - lo) * bins / (hi - lo) in
// float32 (ATen's order of operations, true division), then a scalar scatter. Counts are integers,
// so per-task partial histograms add up exactly in any order.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "kernel_namespace.h"
#include "tq/kernels/fake_quantize_kernels.h"

namespace tq::kernels::TQ_KERNEL_NS {
namespace {

void histogram_span(const float* __restrict x, int64_t n, float lo, float hi, int64_t bins, float* __restrict hist) {
  constexpr int64_t kBlock = 512;
  int32_t pos[kBlock];
  const float nb = static_cast<float>(bins);
  const float width = hi - lo;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t m = std::min(kBlock, n - start);
    const float* __restrict xb = x + start;
    for (int64_t i = 0; i < m; ++i) {
      const float e = xb[i];
      const bool inside = (e >= lo) & (e <= hi);  // false for NaN
      const float p = (e - lo) * nb / width;
      pos[i] = inside ? static_cast<int32_t>(p) : -1;
    }
    for (int64_t i = 0; i < m; ++i) {
      int32_t p = pos[i];
      if (p < 0) continue;
      if (p == bins) p -= 1;  // the last bin includes its right edge
      hist[p] += 1.0f;
    }
  }
}

}  // namespace

void histogram(const float* x, int64_t n, float lo, float hi, int64_t bins, float* hist) {
  constexpr int64_t kGrain = 1 << 16;
  const int64_t slots = std::max<int64_t>(1, std::min<int64_t>((n + kGrain - 1) / kGrain, at::get_num_threads()));
  std::vector<std::vector<float>> partial(slots, std::vector<float>(bins, 0.0f));
  at::parallel_for(0, slots, 1, [&](int64_t s_begin, int64_t s_end) {
    for (int64_t s = s_begin; s < s_end; ++s) {
      const int64_t b = n * s / slots, e = n * (s + 1) / slots;
      histogram_span(x + b, e - b, lo, hi, bins, partial[s].data());
    }
  });
  std::fill(hist, hist + bins, 0.0f);
  for (const auto& p : partial) {
    for (int64_t b = 0; b < bins; ++b) hist[b] += p[b];
  }
}

}  // namespace tq::kernels::TQ_KERNEL_NS
