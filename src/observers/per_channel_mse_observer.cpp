#include "tq/observers/per_channel_mse_observer.h"

#include <ATen/ATen.h>

#include <limits>
#include <sstream>

#include "tq/core/check.h"
#include "tq/numerics/fake_quantize.h"

namespace tq::observers {

PerChannelMSEObserver::PerChannelMSEObserver(const PerChannelMSEObserverOptions& options)
    : UniformQuantizationObserverBase("PerChannelMSEObserver", options),
      ch_axis_(options.ch_axis()),
      candidates_(options.candidates()) {
  TQ_CHECK(qscheme_ == QScheme::PerChannelAffine || qscheme_ == QScheme::PerChannelSymmetric, name(),
           "qscheme must be per_channel_affine or per_channel_symmetric, got ", to_string(qscheme_));
  TQ_CHECK(!options.is_dynamic(), name(), "per-channel observers do not support dynamic quantization");
  TQ_CHECK(candidates_ >= 1, name(), "candidates must be at least 1, got ", candidates_);
  min_val_ = register_buffer("min_val", at::empty({0}, at::kFloat));
  max_val_ = register_buffer("max_val", at::empty({0}, at::kFloat));
}

at::Tensor PerChannelMSEObserver::forward(const at::Tensor& x_orig) {
  const at::Tensor x = checked_input(x_orig);
  const auto layout = channel_layout(x, ch_axis_, name().c_str());
  const int64_t C = layout.channels;
  TQ_CHECK(min_val_.numel() == 0 || min_val_.numel() == C, name(), "input has ", C, " channels along axis ", ch_axis_,
           ", but earlier inputs had ", min_val_.numel());
  TQ_CHECK(!at::isnan(x).any().item<bool>(), name(), "input contains NaN");
  TQ_CHECK(at::isfinite(x).all().item<bool>(), name(), "input contains Inf; an infinite range has no finite scale");
  const int64_t axis = ch_axis_ < 0 ? ch_axis_ + x.dim() : ch_axis_;
  const at::Tensor rows = x.movedim(axis, 0).reshape({C, -1});  // one row per channel
  const at::Tensor mn = at::clamp_max(std::get<0>(rows.min(1)), 0.0);
  const at::Tensor mx = at::clamp_min(std::get<0>(rows.max(1)), 0.0);
  const at::Tensor xd = x.to(at::kDouble);
  at::Tensor best_error = at::full({C}, std::numeric_limits<double>::infinity(), at::kDouble);
  at::Tensor best_lo = mn.clone(), best_hi = mx.clone();
  for (int64_t k = 1; k <= candidates_; ++k) {
    const double alpha = static_cast<double>(k) / static_cast<double>(candidates_);
    const at::Tensor lo = (mn.to(at::kDouble) * alpha).to(at::kFloat), hi = (mx.to(at::kDouble) * alpha).to(at::kFloat);
    const auto qp = calculate_qparams_from(lo, hi);
    const at::Tensor fq =
        tq::fake_quantize_per_channel_affine(x, qp.scale, qp.zero_point.to(at::kInt), axis, quant_min(), quant_max());
    const at::Tensor error = (fq.to(at::kDouble) - xd).pow(2).movedim(axis, 0).reshape({C, -1}).sum(1);
    const at::Tensor better = error < best_error;
    best_error = at::where(better, error, best_error);
    best_lo = at::where(better, lo, best_lo);
    best_hi = at::where(better, hi, best_hi);
  }
  if (min_val_.numel() != 0) {
    best_lo = at::minimum(best_lo, min_val_);
    best_hi = at::maximum(best_hi, max_val_);
  }
  min_val_.resize_({C});
  max_val_.resize_({C});
  min_val_.copy_(best_lo);
  max_val_.copy_(best_hi);
  return x_orig;
}

QParams PerChannelMSEObserver::calculate_qparams() { return calculate_qparams_from(min_val_, max_val_); }

void PerChannelMSEObserver::reset_min_max_vals() {
  min_val_.resize_({0});
  max_val_.resize_({0});
}

std::string PerChannelMSEObserver::extra_repr() const {
  std::ostringstream s;
  s << "ch_axis=" << ch_axis_ << ", candidates=" << candidates_
    << ", channels=" << min_val_.numel() << ", " << quantization_repr();
  return s.str();
}

}  // namespace tq::observers
