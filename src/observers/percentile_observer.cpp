#include "tq/observers/percentile_observer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "tq/core/check.h"

namespace tq::observers {
namespace {

// numpy.searchsorted(cumsum(h / sum(h)), target, side="left"), clamped to the last bin.
int64_t percentile_bin(const double* h, int64_t n, double target) {
  double total = 0;
  for (int64_t k = 0; k < n; ++k) total += h[k];
  double cdf = 0;
  for (int64_t k = 0; k < n; ++k) {
    cdf += h[k] / total;
    if (cdf >= target) return k;
  }
  return n - 1;
}

}  // namespace

PercentileObserver::PercentileObserver(const PercentileObserverOptions& options)
    : CalibrationHistogramObserver("PercentileObserver", options), percentile_(options.percentile()) {
  TQ_CHECK(percentile_ > 0.0 && percentile_ <= 100.0, name(), "percentile must be in (0, 100], got ", percentile_);
}

std::pair<float, float> PercentileObserver::choose_range() const {
  const double w = bin_width();
  if (qscheme_ == QScheme::PerTensorSymmetric) {
    const std::vector<double> m = magnitudes();
    const int64_t k = percentile_bin(m.data(), static_cast<int64_t>(m.size()), percentile_ / 100.0);
    const float thr = static_cast<float>(static_cast<double>(k) * w);
    return {-thr, thr};
  }
  const double cut = (100.0 - percentile_) / 200.0;
  const double* h = histogram().data_ptr<double>();
  const double T = threshold();
  const int64_t left = percentile_bin(h, bins(), cut), right = percentile_bin(h, bins(), 1.0 - cut);
  return {static_cast<float>(-T + static_cast<double>(left) * w), static_cast<float>(-T + static_cast<double>(right) * w)};
}

}  // namespace tq::observers
