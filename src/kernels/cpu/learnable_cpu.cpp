// LSQ backward (see fake_quantize_kernels.h for the formulas). One pass over x and dy writes dx
// and accumulates the scale / zero-point gradients in double per task.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernel_namespace.h"
#include "tq/kernels/fake_quantize_kernels.h"

namespace tq::kernels::TQ_KERNEL_NS {
namespace {

struct Sums {
  double dscale = 0;
  double dzero_point = 0;
};

// The per-element rule in ATen's float32 order of operations.
inline void learnable_span(const float* __restrict x, const float* __restrict dy, float* __restrict dx, int64_t n,
                           float scale, float zp, float qmin, float qmax, float grad_factor, Sums& sums) {
  const float inv_scale = 1.0f / scale;
  const float dscale_small = qmin - zp;
  const float dscale_big = qmax - zp;
  double ds = 0, dz = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float q = std::nearbyint(zp + x[i] * inv_scale);
    const bool below = q < qmin, above = q > qmax;
    dx[i] = dy[i] * static_cast<float>(!below && !above);
    const float clamped = below ? qmin : (above ? qmax : q);
    const float xfq = (clamped - zp) * scale;
    float s, z;
    if (below || above) {
      z = dy[i] * -1.0f * scale * grad_factor;
      s = (below ? dy[i] * dscale_small : dy[i] * dscale_big) * grad_factor;
    } else {
      z = 0.0f;
      s = dy[i] * (xfq - x[i]) * inv_scale * grad_factor;
    }
    ds += s;
    dz += z;
  }
  sums.dscale += ds;
  sums.dzero_point += dz;
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
