// One-pass min and max (what observers need), vectorized through independent lanes and parallel
// through per-task partial results; NaN propagates into both results, as torch.aminmax does.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernel_namespace.h"
#include "tq/kernels/fake_quantize_kernels.h"

namespace tq::kernels::TQ_KERNEL_NS {
namespace {

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

// GCC vector extensions: 8 floats per vector (two SSE registers on the baseline build, one AVX
// register on the AVX2 build), four independent accumulators to hide latency.
typedef float vfloat __attribute__((vector_size(32)));
typedef int vint __attribute__((vector_size(32)));

MinMax span_min_max(const float* __restrict x, int64_t n) {
  constexpr int kWidth = 8, kAcc = 4;
  const float inf = std::numeric_limits<float>::infinity();
  vfloat mn[kAcc], mx[kAcc];
  vint nan[kAcc];
  for (int a = 0; a < kAcc; ++a) {
    for (int l = 0; l < kWidth; ++l) {
      mn[a][l] = inf;
      mx[a][l] = -inf;
      nan[a][l] = 0;
    }
  }
  int64_t i = 0;
  for (; i + kWidth * kAcc <= n; i += kWidth * kAcc) {
    for (int a = 0; a < kAcc; ++a) {
      vfloat v;
      std::memcpy(&v, x + i + a * kWidth, sizeof(v));
      mn[a] = v < mn[a] ? v : mn[a];
      mx[a] = v > mx[a] ? v : mx[a];
      nan[a] |= v != v;
    }
  }
  MinMax r;
  for (int a = 0; a < kAcc; ++a) {
    for (int l = 0; l < kWidth; ++l) {
      r.mn = std::min(r.mn, mn[a][l]);
      r.mx = std::max(r.mx, mx[a][l]);
      r.nan = r.nan || nan[a][l] != 0;
    }
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
