#include "tq/observers/entropy_observer.h"

#include <cmath>
#include <limits>
#include <vector>

namespace tq::observers {
namespace {

// MXNet's smooth_distribution: empty bins get eps, taken evenly from the others, so that the
// KL divergence stays finite. False when the distribution is empty or a bin would go negative.
bool smooth(std::vector<double>& v, double eps = 1e-4) {
  int64_t zeros = 0;
  for (double x : v) zeros += x == 0.0;
  const int64_t nonzeros = static_cast<int64_t>(v.size()) - zeros;
  if (nonzeros == 0) return false;
  const double eps1 = eps * static_cast<double>(zeros) / static_cast<double>(nonzeros);
  for (double& x : v) {
    x = x == 0.0 ? x + eps : x - eps1;
    if (x <= 0.0) return false;
  }
  return true;
}

// KL(p || q) of two smoothed, unnormalized distributions (scipy.stats.entropy).
double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double sp = 0, sq = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    sp += p[k];
    sq += q[k];
  }
  double kl = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    const double pk = p[k] / sp, qk = q[k] / sq;
    kl += pk * std::log(pk / qk);
  }
  return kl;
}

}  // namespace

EntropyObserver::EntropyObserver(const EntropyObserverOptions& options)
    : CalibrationHistogramObserver("EntropyObserver", options) {}

std::pair<float, float> EntropyObserver::choose_range() const {
  const std::vector<double> m = magnitudes();
  const int64_t M = static_cast<int64_t>(m.size());
  const int64_t nq = magnitude_levels();
  int64_t best = M;
  double best_kl = std::numeric_limits<double>::infinity();
  std::vector<double> outliers_after(M + 1, 0.0);  // sum of m[i:]
  for (int64_t k = M - 1; k >= 0; --k) outliers_after[k] = outliers_after[k + 1] + m[k];
  for (int64_t i = nq; i <= M; ++i) {
    std::vector<double> p(m.begin(), m.begin() + i);
    p[i - 1] += outliers_after[i];
    const int64_t g = i / nq;
    std::vector<double> q(i, 0.0);
    for (int64_t j = 0; j < nq; ++j) {
      const int64_t start = j * g, stop = j == nq - 1 ? i : start + g;
      double merged = 0;
      int64_t norm = 0;
      for (int64_t k = start; k < stop; ++k) {
        merged += m[k];
        norm += p[k] != 0.0;
      }
      if (norm == 0) continue;
      for (int64_t k = start; k < stop; ++k) q[k] = p[k] != 0.0 ? merged / static_cast<double>(norm) : 0.0;
    }
    if (!smooth(p) || !smooth(q)) continue;
    const double kl = kl_divergence(p, q);
    if (kl < best_kl) {
      best_kl = kl;
      best = i;
    }
  }
  const float thr = static_cast<float>(static_cast<double>(best) * bin_width());
  return {one_sided() ? 0.0f : -thr, thr};
}

}  // namespace tq::observers
