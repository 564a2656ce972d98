// LSQ backward (see fake_quantize_kernels.h for the formulas). One pass over x and dy writes dx
// and accumulates the scale / zero-point gradients (float lanes per block, double across blocks).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_namespace.h"
#include "tq/kernels/fake_quantize_kernels.h"

namespace tq::kernels::TQ_KERNEL_NS {
namespace {

struct Sums {
  double dscale = 0;
  double dzero_point = 0;
};

typedef float vfloat __attribute__((vector_size(32)));

// Sum of n floats (n a multiple of 8) through 8 independent lanes, added up in double.
inline double lane_sum(const float* __restrict v, int64_t n) {
  vfloat acc = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; i += 8) {
    vfloat t;
    std::memcpy(&t, v + i, sizeof(t));
    acc += t;
  }
  double total = 0;
  for (int l = 0; l < 8; ++l) total += acc[l];
  return total;
}

// The per-element rule in ATen's float32 order of operations, branch-free so it vectorizes; the
// per-element scale / zero-point terms go to block buffers and are summed per block.
inline void learnable_span(const float* __restrict x, const float* __restrict dy, float* __restrict dx, int64_t n,
                           float scale, float zp, float qmin, float qmax, float grad_factor, Sums& sums) {
  constexpr int64_t kBlock = 512;
  alignas(32) float ds[kBlock], dz[kBlock];
  const float inv_scale = 1.0f / scale;
  const float dscale_small = qmin - zp;
  const float dscale_big = qmax - zp;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t m = std::min(kBlock, n - start);
    const float* __restrict xb = x + start;
    const float* __restrict gb = dy + start;
    float* __restrict db = dx + start;
    for (int64_t i = 0; i < m; ++i) {
      const float xi = xb[i], g = gb[i];
      const float q = std::nearbyint(zp + xi * inv_scale);
      const float clamped = q < qmin ? qmin : (q > qmax ? qmax : q);
      const float inside = clamped == q ? 1.0f : 0.0f;
      db[i] = g * inside;
      const float xfq = (clamped - zp) * scale;
      const float s_inside = g * (xfq - xi) * inv_scale * grad_factor;
      const float s_outside = (g * (q < qmin ? dscale_small : dscale_big)) * grad_factor;
      ds[i] = clamped == q ? s_inside : s_outside;
      dz[i] = clamped == q ? 0.0f : g * -1.0f * scale * grad_factor;
    }
    const int64_t m8 = m & ~int64_t{7};
    double bs = lane_sum(ds, m8), bz = lane_sum(dz, m8);
    for (int64_t i = m8; i < m; ++i) {
      bs += ds[i];
      bz += dz[i];
    }
    sums.dscale += bs;
    sums.dzero_point += bz;
  }
}

}  // namespace

void learnable_backward_per_tensor(const float* x, const float* dy, float* dx, int64_t n, float scale, float zero_point,
                                   float quant_min, float quant_max, float grad_factor, double* dscale,
                                   double* dzero_point) {
  constexpr int64_t kGrain = 1 << 15;
  const int64_t tasks = std::max<int64_t>(1, (n + kGrain - 1) / kGrain);
  std::vector<Sums> partial(tasks);
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t lo = t * kGrain, hi = std::min(n, lo + kGrain);
      learnable_span(x + lo, dy + lo, dx + lo, hi - lo, scale, zero_point, quant_min, quant_max, grad_factor,
                     partial[t]);
    }
  });
  Sums total;
  for (const auto& p : partial) {
    total.dscale += p.dscale;
    total.dzero_point += p.dzero_point;
  }
  *dscale = total.dscale;
  *dzero_point = total.dzero_point;
}

void learnable_backward_per_channel(const float* x, const float* dy, float* dx, ChannelLayout l, const float* scale,
                                    const float* zero_point, float quant_min, float quant_max, float grad_factor,
                                    double* dscale, double* dzero_point) {
  // One task per (outer, channel) row; each row's sums land in its own slot, then add per channel.
  const int64_t rows = l.outer * l.channels;
  std::vector<Sums> partial(rows);
  const int64_t rows_per_task = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, l.inner));
  at::parallel_for(0, rows, rows_per_task, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t c = r % l.channels, off = r * l.inner;
      learnable_span(x + off, dy + off, dx + off, l.inner, scale[c], zero_point[c], quant_min, quant_max, grad_factor,
                     partial[r]);
    }
  });
  std::fill(dscale, dscale + l.channels, 0.0);
  std::fill(dzero_point, dzero_point + l.channels, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    dscale[r % l.channels] += partial[r].dscale;
    dzero_point[r % l.channels] += partial[r].dzero_point;
  }
}

}  // namespace tq::kernels::TQ_KERNEL_NS
