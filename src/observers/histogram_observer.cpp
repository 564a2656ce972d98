// HistogramObserver as PyTorch 2.x computes it. Every float32 step mirrors one tensor operation of
// torch/ao/quantization/observer.py, in the same order, so the histograms and qparams agree with
// PyTorch's; Python-float (double) steps stay double.
#include "tq/observers/histogram_observer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <tuple>

#include "tq/core/check.h"
#include "tq/kernels/tensor_kernels.h"

namespace tq::observers {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// torch.linspace(start, end, steps) in float32: the first half counts up from start, the second
// half down from end, so both ends are exact.
std::vector<float> linspace(float start, float end, int64_t steps) {
  std::vector<float> out(steps);
  if (steps == 1) {
    out[0] = start;
    return out;
  }
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i) {
    out[i] = i < halfway ? start + step * static_cast<float>(i) : end - step * static_cast<float>(steps - i - 1);
  }
  return out;
}

// torch.linspace as ATen's vectorized CPU kernel produces it on an AVX-512 build (the build
// behind the PyTorch 2.x reference data): blocks of two 16-lane vectors, each lane
// base + k * step from its block's first index, then a scalar tail. Used for the fine grid of
// re-binning, where it reproduces PyTorch's bin assignment exactly (tests/golden/histogram_*).
std::vector<float> linspace_avx512(float start, float end, int64_t steps) {
  constexpr int64_t kLanes = 16;
  std::vector<float> out = linspace(start, end, steps);
  if (steps < 2) return out;
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i + 2 * kLanes <= steps; i += 2 * kLanes) {
    for (int64_t idx = i; idx < i + 2 * kLanes; idx += kLanes) {
      const float base = idx < halfway ? start + step * static_cast<float>(idx)
                                       : end - step * static_cast<float>(steps - idx - 1);
      for (int64_t k = 0; k < kLanes; ++k) out[idx + k] = base + static_cast<float>(k) * step;
    }
  }
  return out;
}

// torch.div(a, b, rounding_mode="floor") for finite a and b > 0: ATen's div_floor_floating
// (fmod-based) returns the exact floor of the real quotient, computed here without fmod: the
// double quotient's floor is off by at most one, and the products k * b are exact in double.
inline float div_floor(float a, float b) {
  double k = std::floor(static_cast<double>(a) / b);
  if (k * b > a) {
    k -= 1;
  } else if ((k + 1) * b <= a) {
    k += 1;
  }
  return static_cast<float>(k);
}

// density * (end^3 - begin^3) / 3, one float32 rounding per operation.
inline float l2_norm(float begin, float end, float density) {
  const float e3 = end * end * end;
  const float b3 = begin * begin * begin;
  return density * ((e3 - b3) / 3.0f);
}

}  // namespace

at::Tensor histc(const at::Tensor& x, int64_t bins, float min, float max) {
  // ATen: equal bounds fall back to the data's range, then widen by one on each side.
  double left = min, right = max;
  const auto xc = x.to(at::kFloat);
  if (left == right && xc.numel() > 0) {
    const auto [mn, mx] = kernels::min_max(xc);
    left = mn;
    right = mx;
  }
  if (left == right) {
    left -= 1;
    right += 1;
  }
  const float lo = static_cast<float>(left), hi = static_cast<float>(right);
  return kernels::histogram(xc, lo, hi, bins);
}

HistogramObserver::HistogramObserver(const HistogramObserverOptions& options)
    : UniformQuantizationObserverBase("HistogramObserver", options), bins_(options.bins()) {
  TQ_CHECK(is_per_tensor(options.qscheme()), name(),
           "qscheme must be per_tensor_affine or per_tensor_symmetric, got ", to_string(options.qscheme()));
  TQ_CHECK(!options.is_dynamic(), name(), "HistogramObserver does not support dynamic quantization");
  TQ_CHECK(bins_ > 0, name(), "bins must be positive, got ", bins_);
  TQ_CHECK(options.upsample_rate() > 0, name(), "upsample_rate must be positive, got ", options.upsample_rate());
  dst_nbins_ = int64_t{1} << dtype_bits(dtype_);
  histogram_ = register_buffer("histogram", at::zeros({bins_}, at::kFloat));
  min_val_ = register_buffer("min_val", at::scalar_tensor(kInf, at::kFloat));
  max_val_ = register_buffer("max_val", at::scalar_tensor(-kInf, at::kFloat));
}

at::Tensor HistogramObserver::forward(const at::Tensor& x_orig) {
  at::Tensor x = checked_input(x_orig);
  auto [x_min, x_max] = kernels::min_max(x);
  TQ_CHECK(!std::isnan(x_min), name(), "input contains NaN");
  if (std::isinf(x_min) || std::isinf(x_max)) {
    // As PyTorch: infinities would make the range infinite; they are ignored (and clamp later).
    TORCH_WARN("[HistogramObserver] Inf detected in input tensor, ignoring those values");
    x = x.masked_select(x.abs() != kInf).contiguous();
    if (x.numel() == 0) return x_orig;
    std::tie(x_min, x_max) = kernels::min_max(x);
  }
  const float cur_min = min_val_.item<float>(), cur_max = max_val_.item<float>();
  const float span_min = cur_min == kInf ? x_min : std::min(cur_min, x_min);
  const float span_max = cur_max == -kInf ? x_max : std::max(cur_max, x_max);
  TQ_CHECK(std::isfinite(span_max - span_min), name(), "the observed range [", span_min, ", ", span_max,
           "] is wider than float32 can hold (max - min overflows); scale the input down");
  if (cur_min == kInf || cur_max == -kInf) {
    min_val_.fill_(x_min);
    max_val_.fill_(x_max);
    histogram_.copy_(histc(x, bins_, x_min, x_max));
    return x_orig;
  }
  const float new_min = std::min(cur_min, x_min), new_max = std::max(cur_max, x_max);
  at::Tensor update = histc(x, bins_, new_min, new_max);
  if (new_min == cur_min && new_max == cur_max) {
    histogram_.add_(update);
    return x_orig;
  }
  const float* u = update.data_ptr<float>();
  std::vector<float> combined = rebin(histogram_.data_ptr<float>(), cur_min, cur_max, new_min, new_max);
  for (int64_t i = 0; i < bins_; ++i) combined[i] = u[i] + combined[i];
  std::copy(combined.begin(), combined.end(), histogram_.data_ptr<float>());
  min_val_.fill_(new_min);
  max_val_.fill_(new_max);
  return x_orig;
}

std::vector<float> HistogramObserver::rebin(const float* h, float lo, float hi, float new_lo, float new_hi) const {
  std::vector<float> moved(bins_, 0.0f);
  if (lo == new_lo && hi == new_hi) {
    std::copy(h, h + bins_, moved.begin());
  } else if (lo == hi) {
    // A single value: its whole mass goes to the bin holding that value in the new range.
    double mass = 0;
    for (int64_t i = 0; i < bins_; ++i) mass += h[i];
    at::Tensor point = histc(at::scalar_tensor(lo, at::kFloat), bins_, new_lo, new_hi);
    const float* p = point.data_ptr<float>();
    for (int64_t i = 0; i < bins_; ++i) moved[i] = p[i] * static_cast<float>(mass);
  } else {
    // Split each bin into 16 equal parts and drop each part's mass into the new bin holding its
    // midpoint.
    const int64_t fine = bins_ * kUpsampleRate;
    const float bin_size = (hi - lo) / static_cast<float>(fine);
    const float half = 0.5f * bin_size;
    const std::vector<float> starts = linspace_avx512(lo, hi, fine + 1);
    const std::vector<float> edges = linspace(new_lo, new_hi, bins_ + 1);
    for (int64_t j = 0; j < fine; ++j) {
      const float mid = starts[j] + half;
      int64_t b = (std::upper_bound(edges.begin(), edges.end(), mid) - edges.begin()) - 1;
      b = std::clamp<int64_t>(b, 0, bins_ - 1);
      moved[b] += h[j / kUpsampleRate] / static_cast<float>(kUpsampleRate);
    }
  }
  return moved;
}

void HistogramObserver::merge(const at::Tensor& histogram, float min_val, float max_val) {
  TQ_CHECK(histogram.scalar_type() == at::kFloat && histogram.dim() == 1 && histogram.numel() == bins_, name(),
           "merge needs a float32 histogram of ", bins_, " bins, got ", histogram.scalar_type(), " ",
           histogram.sizes());
  if (min_val == kInf || max_val == -kInf) return;  // the other saw no data
  TQ_CHECK(std::isfinite(min_val) && std::isfinite(max_val) && min_val <= max_val, name(),
           "merge needs a finite range with min <= max, got [", min_val, ", ", max_val, "]");
  const auto other = histogram.contiguous();
  const float cur_min = min_val_.item<float>(), cur_max = max_val_.item<float>();
  if (cur_min == kInf || cur_max == -kInf) {
    histogram_.copy_(other);
    min_val_.fill_(min_val);
    max_val_.fill_(max_val);
    return;
  }
  const float new_min = std::min(cur_min, min_val), new_max = std::max(cur_max, max_val);
  TQ_CHECK(std::isfinite(new_max - new_min), name(), "the merged range [", new_min, ", ", new_max,
           "] is wider than float32 can hold (max - min overflows)");
  std::vector<float> mine = rebin(histogram_.data_ptr<float>(), cur_min, cur_max, new_min, new_max);
  const std::vector<float> theirs = rebin(other.data_ptr<float>(), min_val, max_val, new_min, new_max);
  for (int64_t i = 0; i < bins_; ++i) mine[i] += theirs[i];
  std::copy(mine.begin(), mine.end(), histogram_.data_ptr<float>());
  min_val_.fill_(new_min);
  max_val_.fill_(new_max);
}

double HistogramObserver::quantization_error(int64_t start_bin, int64_t end_bin) const {
  const double bin_width = (static_cast<double>(max_val_.data_ptr<float>()[0]) - min_val_.data_ptr<float>()[0]) / bins_;
  const double dst_bin_width = bin_width * static_cast<double>(end_bin - start_bin + 1) / dst_nbins_;
  if (dst_bin_width == 0.0) return 0.0;
  const float bw = static_cast<float>(bin_width);
  const float dw = static_cast<float>(dst_bin_width);
  const float half_dw = static_cast<float>(dst_bin_width / 2);
  const float neg_half_dw = static_cast<float>(-dst_bin_width / 2);
  const float last_dst = static_cast<float>(dst_nbins_ - 1);
  const float full_bin_norm_e3 = half_dw * half_dw * half_dw;
  const float full_bin_norm_b3 = neg_half_dw * neg_half_dw * neg_half_dw;
  const float full_bin_norm = (full_bin_norm_e3 - full_bin_norm_b3) / 3.0f;
  const float* h = histogram_.data_ptr<float>();
  double total = 0;
  for (int64_t i = 0; i < bins_; ++i) {
    // An empty bin adds density 0 times a finite norm: exactly nothing.
    if (h[i] == 0.0f) continue;
    const float src_begin = static_cast<float>(i - start_bin) * bw;
    const float src_end = src_begin + bw;
    const float dst_begin = std::clamp(div_floor(src_begin, dw), 0.0f, last_dst);
    const float dst_begin_center = (dst_begin + 0.5f) * dw;
    const float dst_end = std::clamp(div_floor(src_end, dw), 0.0f, last_dst);
    const float density = h[i] / bw;
    float norm = l2_norm(src_begin - dst_begin_center, half_dw, density);
    norm = norm + (dst_end - dst_begin - 1.0f) * (density * full_bin_norm);
    const float dst_end_center = dst_end * dw + half_dw;
    norm = norm + l2_norm(neg_half_dw, src_end - dst_end_center, density);
    total += norm;
  }
  // PyTorch sums in float32 and compares the sums as Python floats.
  return static_cast<float>(total);
}

std::pair<float, float> HistogramObserver::non_linear_param_search() const {
  const float* h = histogram_.data_ptr<float>();
  double sum = 0;
  std::vector<float> csum(bins_);
  for (int64_t i = 0; i < bins_; ++i) {
    sum += h[i];
    csum[i] = static_cast<float>(sum);  // torch.cumsum accumulates float32 in double on the CPU
  }
  const double total = static_cast<float>(sum);
  const double stepsize = 1e-5;
  double alpha = 0.0, beta = 1.0;
  int64_t start_bin = 0, end_bin = bins_ - 1;
  double norm_min = std::numeric_limits<double>::infinity();
  while (alpha < beta) {
    const double next_alpha = alpha + stepsize;
    const double next_beta = beta - stepsize;
    // Tensor-vs-Python-float comparisons run in float32.
    const float lo_target = static_cast<float>(next_alpha * total);
    const float hi_target = static_cast<float>(next_beta * total);
    int64_t l = start_bin, r = end_bin;
    while (l < end_bin && csum[l] < lo_target) ++l;
    while (r > start_bin && csum[r] > hi_target) --r;
    int64_t next_start = start_bin, next_end = end_bin;
    if ((l - start_bin) > (end_bin - r)) {
      next_start = l;
      alpha = next_alpha;
    } else {
      next_end = r;
      beta = next_beta;
    }
    if (next_start == start_bin && next_end == end_bin) continue;
    const double norm = quantization_error(next_start, next_end);
    if (norm > norm_min) break;
    norm_min = norm;
    start_bin = next_start;
    end_bin = next_end;
  }
  const float mn = min_val_.item<float>(), mx = max_val_.item<float>();
  const float bin_width = (mx - mn) / static_cast<float>(bins_);
  return {mn + bin_width * static_cast<float>(start_bin), mn + bin_width * static_cast<float>(end_bin + 1)};
}

QParams HistogramObserver::calculate_qparams() {
  const float mn = min_val_.item<float>(), mx = max_val_.item<float>();
  if (mn == kInf && mx == -kInf) {
    TORCH_WARN("[HistogramObserver] must run observer before calling calculate_qparams; returning default scale and "
               "zero point");
    return {at::ones({1}, at::kFloat), at::zeros({1}, at::kLong)};
  }
  validate_state();
  const auto [new_min, new_max] = non_linear_param_search();
  return calculate_qparams_from(at::scalar_tensor(new_min, at::kFloat), at::scalar_tensor(new_max, at::kFloat));
}

void HistogramObserver::reset_min_max_vals() {
  min_val_.fill_(kInf);
  max_val_.fill_(-kInf);
  histogram_.zero_();
}

void HistogramObserver::validate_state() const {
  TQ_CHECK(histogram_.dim() == 1 && histogram_.numel() == bins_, name(), "histogram has shape ", histogram_.sizes(),
           ", but this observer has ", bins_, " bins");
  TQ_CHECK(min_val_.numel() == 1 && max_val_.numel() == 1, name(), "min_val and max_val must be scalars, got shapes ",
           min_val_.sizes(), " and ", max_val_.sizes());
}

std::string HistogramObserver::extra_repr() const {
  std::ostringstream s;
  s << "min_val=" << min_val_.item<float>() << ", max_val=" << max_val_.item<float>() << ", bins=" << bins_
    << ", " << quantization_repr();
  return s.str();
}

}  // namespace tq::observers
