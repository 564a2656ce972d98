// One-pass min and max (what observers need), vectorized through independent lanes and parallel
// through per-task partial results; NaN propagates into both results, as torch.aminmax does.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernel_namespace.h"
#include "tq/kernels/fake_quantize_kernels.h"

namespace tq::kernels::TQ_KERNEL_NS {
namespace {

constexpr int kLanes = 16;

struct MinMax {
  float mn = std::numeric_limits<float>::infinity();
  float mx = -std::numeric_limits<float>::infinity();
  bool nan = false;
  void merge(const MinMax& o) {
    mn = std::min(mn, o.mn);
    mx = std::max(mx, o.mx);
    nan = nan || o.nan;
  }
};

MinMax span_min_max(const float* __restrict x, int64_t n) {
  float mn[kLanes], mx[kLanes];
  int nan[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    mn[l] = std::numeric_limits<float>::infinity();
    mx[l] = -std::numeric_limits<float>::infinity();
    nan[l] = 0;
  }
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float v = x[i + l];
      mn[l] = v < mn[l] ? v : mn[l];
      mx[l] = v > mx[l] ? v : mx[l];
      nan[l] |= v != v;
    }
  }
  MinMax r;
  for (int l = 0; l < kLanes; ++l) {
    r.mn = std::min(r.mn, mn[l]);
    r.mx = std::max(r.mx, mx[l]);
    r.nan = r.nan || nan[l];
  }
  for (; i < n; ++i) {
    r.mn = std::min(r.mn, x[i]);
    r.mx = std::max(r.mx, x[i]);
    r.nan = r.nan || std::isnan(x[i]);
  }
  return r;
}

}  // namespace

void min_max(const float* x, int64_t n, float* min_out, float* max_out) {
  constexpr int64_t kGrain = 1 << 16;
  const int64_t tasks = std::max<int64_t>(1, (n + kGrain - 1) / kGrain);
  std::vector<MinMax> partial(tasks);
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t lo = t * kGrain;
      partial[t] = span_min_max(x + lo, std::min(n, lo + kGrain) - lo);
    }
  });
  MinMax r;
  for (const auto& p : partial) r.merge(p);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  *min_out = r.nan ? nan : r.mn;
  *max_out = r.nan ? nan : r.mx;
}

void min_max_per_channel(const float* x, ChannelLayout l, float* min_out, float* max_out) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (l.inner == 1) {
    // Channels contiguous: reduce rows elementwise into per-task partial vectors.
    const int64_t rows_per_task = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, l.channels));
    const int64_t tasks = std::max<int64_t>(1, (l.outer + rows_per_task - 1) / rows_per_task);
    std::vector<float> pmn(tasks * l.channels, std::numeric_limits<float>::infinity());
    std::vector<float> pmx(tasks * l.channels, -std::numeric_limits<float>::infinity());
    std::vector<char> pnan(tasks * l.channels, 0);
    at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        float* __restrict mn = pmn.data() + t * l.channels;
        float* __restrict mx = pmx.data() + t * l.channels;
        char* __restrict nn = pnan.data() + t * l.channels;
        const int64_t o_end = std::min(l.outer, (t + 1) * rows_per_task);
        for (int64_t o = t * rows_per_task; o < o_end; ++o) {
          const float* __restrict row = x + o * l.channels;
          for (int64_t c = 0; c < l.channels; ++c) {
            const float v = row[c];
            mn[c] = v < mn[c] ? v : mn[c];
            mx[c] = v > mx[c] ? v : mx[c];
            nn[c] |= v != v;
          }
        }
      }
    });
    for (int64_t c = 0; c < l.channels; ++c) {
      MinMax r;
      for (int64_t t = 0; t < tasks; ++t) {
        r.merge({pmn[t * l.channels + c], pmx[t * l.channels + c], pnan[t * l.channels + c] != 0});
      }
      min_out[c] = r.nan ? nan : r.mn;
      max_out[c] = r.nan ? nan : r.mx;
    }
    return;
  }
  std::vector<MinMax> rows(l.outer * l.channels);
  const int64_t rows_per_task = std::max<int64_t>(1, (1 << 15) / l.inner);
  at::parallel_for(0, l.outer * l.channels, rows_per_task, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) rows[r] = span_min_max(x + r * l.inner, l.inner);
  });
  for (int64_t c = 0; c < l.channels; ++c) {
    MinMax r;
    for (int64_t o = 0; o < l.outer; ++o) r.merge(rows[o * l.channels + c]);
    min_out[c] = r.nan ? nan : r.mn;
    max_out[c] = r.nan ? nan : r.mx;
  }
}

}  // namespace tq::kernels::TQ_KERNEL_NS
