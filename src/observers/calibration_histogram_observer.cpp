#include "tq/observers/calibration_histogram_observer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "tq/core/check.h"
#include "tq/kernels/tensor_kernels.h"
#include "tq/observers/histogram_observer.h"

namespace tq::observers {
namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
}

void CalibrationHistogramObserver::init(int64_t bins, QScheme qscheme, bool is_dynamic) {
  TQ_CHECK(is_per_tensor(qscheme), name(), "qscheme must be per_tensor_affine or per_tensor_symmetric, got ",
           to_string(qscheme));
  TQ_CHECK(!is_dynamic, name(), name(), " does not support dynamic quantization");
  TQ_CHECK(bins >= 8 && bins % 4 == 0, name(), "bins must be a multiple of 4 and at least 8, got ", bins);
  bins_ = bins;
  histogram_ = register_buffer("histogram", at::zeros({bins_}, at::kDouble));
  threshold_ = register_buffer("threshold", at::scalar_tensor(0.0f, at::kFloat));
  min_val_ = register_buffer("min_val", at::scalar_tensor(kInf, at::kFloat));
  max_val_ = register_buffer("max_val", at::scalar_tensor(-kInf, at::kFloat));
}

void CalibrationHistogramObserver::double_range() {
  auto merged = at::zeros({bins_}, at::kDouble);
  const double* h = histogram_.data_ptr<double>();
  double* m = merged.data_ptr<double>();
  const int64_t half = bins_ / 2;
  // New bin j spans old bins 2j - B/2 and 2j + 1 - B/2: the old range is the middle half.
  for (int64_t j = bins_ / 4; j < 3 * bins_ / 4; ++j) m[j] = h[2 * j - half] + h[2 * j + 1 - half];
  histogram_.copy_(merged);
  threshold_.fill_(threshold_.item<float>() * 2.0f);
}

at::Tensor CalibrationHistogramObserver::forward(const at::Tensor& x_orig) {
  const at::Tensor x = checked_input(x_orig);
  const auto [lo, hi] = kernels::min_max(x);
  TQ_CHECK(!std::isnan(lo) && !std::isnan(hi), name(), "input contains NaN");
  TQ_CHECK(std::isfinite(lo) && std::isfinite(hi), name(), "input contains Inf; a histogram needs a finite range");
  validate_state();
  min_val_.fill_(std::min(min_val_.item<float>(), lo));
  max_val_.fill_(std::max(max_val_.item<float>(), hi));
  const float t = std::max(-lo, hi);
  if (threshold_.item<float>() == 0.0f && t > 0.0f) threshold_.fill_(t);  // zeros seen so far sit in bin B/2
  while (t > threshold_.item<float>()) double_range();
  const float T = threshold_.item<float>();
  if (T == 0.0f) {
    histogram_.data_ptr<double>()[bins_ / 2] += static_cast<double>(x.numel());
  } else {
    histogram_.add_(histc(x, bins_, -T, T).to(at::kDouble));
  }
  return x_orig;
}

double CalibrationHistogramObserver::bin_width() const {
  return 2.0 * static_cast<double>(threshold_.item<float>()) / static_cast<double>(bins_);
}

std::vector<double> CalibrationHistogramObserver::magnitudes() const {
  const double* h = histogram_.data_ptr<double>();
  const int64_t half = bins_ / 2;
  std::vector<double> m(half);
  for (int64_t k = 0; k < half; ++k) m[k] = h[half + k] + h[half - 1 - k];
  return m;
}

bool CalibrationHistogramObserver::one_sided() const { return min_val_.item<float>() >= 0.0f; }

int64_t CalibrationHistogramObserver::magnitude_levels() const {
  const int64_t levels = quant_max() - quant_min() + 1;
  return one_sided() ? levels : levels / 2;
}

std::pair<float, float> CalibrationHistogramObserver::clipped_range() const {
  const float mn = min_val_.item<float>(), mx = max_val_.item<float>();
  if (mn > mx) return {0.0f, 0.0f};  // nothing observed
  auto [lo, hi] = choose_range();
  return {std::max(lo, mn), std::min(hi, mx)};
}

QParams CalibrationHistogramObserver::calculate_qparams() {
  validate_state();
  if (min_val_.item<float>() > max_val_.item<float>()) {
    TORCH_WARN(name(), ": must run observer before calling calculate_qparams; returning default values");
    return calculate_qparams_from(min_val_, max_val_);
  }
  const auto [lo, hi] = clipped_range();
  return calculate_qparams_from(at::scalar_tensor(lo, at::kFloat), at::scalar_tensor(hi, at::kFloat));
}

void CalibrationHistogramObserver::reset_min_max_vals() {
  histogram_.zero_();
  threshold_.fill_(0.0f);
  min_val_.fill_(kInf);
  max_val_.fill_(-kInf);
}

void CalibrationHistogramObserver::validate_state() const {
  TQ_CHECK(histogram_.dim() == 1 && histogram_.numel() == bins_ && histogram_.scalar_type() == at::kDouble, name(),
           "histogram must be float64 with ", bins_, " bins, got ", histogram_.scalar_type(), " ", histogram_.sizes());
  TQ_CHECK(threshold_.numel() == 1 && min_val_.numel() == 1 && max_val_.numel() == 1, name(),
           "threshold, min_val and max_val must be scalars");
  const float T = threshold_.item<float>();
  TQ_CHECK(std::isfinite(T) && T >= 0.0f, name(), "threshold must be finite and non-negative, got ", T);
}

std::string CalibrationHistogramObserver::extra_repr() const {
  std::ostringstream s;
  s << "min_val=" << min_val_.item<float>() << ", max_val=" << max_val_.item<float>() << ", bins=" << bins_
    << ", " << quantization_repr();
  return s.str();
}

}  // namespace tq::observers
