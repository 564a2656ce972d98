#include "tq/observers/mse_observer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace tq::observers {

MSEObserver::MSEObserver(const MSEObserverOptions& options) : CalibrationHistogramObserver("MSEObserver", options) {}

std::pair<float, float> MSEObserver::choose_range() const {
  const double w = bin_width();
  const double T = threshold();
  const int64_t B = bins(), M = B / 2;
  const double* h = histogram().data_ptr<double>();
  const float mn = min_val().item<float>(), mx = max_val().item<float>();
  const double qmin = static_cast<double>(quant_min()), qmax = static_cast<double>(quant_max());
  std::pair<float, float> best{0.0f, 0.0f};
  double best_error = std::numeric_limits<double>::infinity();
  for (int64_t k = M / 8; k < M; ++k) {
    const auto amax = static_cast<float>((static_cast<double>(k) + 0.5) * w);
    const float lo = std::max(one_sided() ? 0.0f : -amax, mn), hi = std::min(amax, mx);
    const auto qp = calculate_qparams_from(at::scalar_tensor(lo, at::kFloat), at::scalar_tensor(hi, at::kFloat));
    const double scale = qp.scale.item<float>();
    const double zp = static_cast<double>(qp.zero_point.item<int64_t>());
    double error = 0;
    for (int64_t b = 0; b < B; ++b) {
      if (h[b] == 0.0) continue;
      const double c = -T + (static_cast<double>(b) + 0.5) * w;
      const double fq = (std::min(std::max(std::nearbyint(c / scale) + zp, qmin), qmax) - zp) * scale;
      error += h[b] * (fq - c) * (fq - c);
    }
    if (error < best_error) {
      best_error = error;
      best = {lo, hi};
    }
  }
  return best;
}

}  // namespace tq::observers
