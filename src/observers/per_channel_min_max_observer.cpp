#include "tq/observers/per_channel_min_max_observer.h"

#include <ATen/ATen.h>

#include <sstream>

#include "tq/core/check.h"
#include "tq/observers/batch_range_reduction.h"
#include "tq/kernels/tensor_kernels.h"
#include "tq/numerics/fake_quantize.h"

namespace tq::observers {

template <class Self>
PerChannelMinMaxObserver::PerChannelMinMaxObserver(std::string name, const UniformQuantizationOptions<Self>& o,
                                                   int64_t ch_axis)
    : UniformQuantizationObserverBase(std::move(name), o), ch_axis_(ch_axis) {
  TQ_CHECK(is_per_channel(o.qscheme()), this->name(),
           "qscheme must be per_channel_affine, per_channel_symmetric or per_channel_affine_float_qparams, got ",
           to_string(o.qscheme()));
  TQ_CHECK(!o.is_dynamic(), this->name(), "per-channel observers do not support dynamic quantization");
  min_val_ = register_buffer("min_val", at::empty({0}, at::kFloat));
  max_val_ = register_buffer("max_val", at::empty({0}, at::kFloat));
}
template PerChannelMinMaxObserver::PerChannelMinMaxObserver(
    std::string, const UniformQuantizationOptions<PerChannelMinMaxObserverOptions>&, int64_t);
template PerChannelMinMaxObserver::PerChannelMinMaxObserver(
    std::string, const UniformQuantizationOptions<MovingAveragePerChannelMinMaxObserverOptions>&, int64_t);

PerChannelMinMaxObserver::PerChannelMinMaxObserver(const PerChannelMinMaxObserverOptions& options)
    : PerChannelMinMaxObserver("PerChannelMinMaxObserver", options, options.ch_axis()) {}

std::pair<at::Tensor, at::Tensor> PerChannelMinMaxObserver::observed_ranges(const at::Tensor& x) const {
  const auto layout = channel_layout(x, ch_axis_, name().c_str());
  TQ_CHECK(min_val_.numel() == 0 || min_val_.numel() == layout.channels, name(), "input has ", layout.channels,
           " channels along axis ", ch_axis_, ", but earlier inputs had ", min_val_.numel());
  auto [mn, mx] = kernels::min_max_per_channel(x, layout);
  TQ_CHECK(!at::isnan(mn).any().item<bool>(), name(), "input contains NaN");
  TQ_CHECK(at::isfinite(mn).all().item<bool>() && at::isfinite(mx).all().item<bool>(), name(),
           "input contains Inf; an infinite range has no finite scale");
  reduce_batch_range(mn.data_ptr<float>(), mx.data_ptr<float>(), layout.channels);
  return {mn, mx};
}

void PerChannelMinMaxObserver::store(const at::Tensor& mn, const at::Tensor& mx) {
  min_val_.resize_(mn.sizes());
  max_val_.resize_(mx.sizes());
  min_val_.copy_(mn);
  max_val_.copy_(mx);
}

at::Tensor PerChannelMinMaxObserver::forward(const at::Tensor& x_orig) {
  const auto x = checked_input(x_orig);
  auto [mn, mx] = observed_ranges(x);
  if (min_val_.numel() != 0) {
    mn = at::minimum(mn, min_val_);
    mx = at::maximum(mx, max_val_);
  }
  store(mn, mx);
  return x_orig;
}

QParams PerChannelMinMaxObserver::calculate_qparams() { return calculate_qparams_from(min_val_, max_val_); }

void PerChannelMinMaxObserver::reset_min_max_vals() {
  min_val_.resize_({0});
  max_val_.resize_({0});
}

std::string PerChannelMinMaxObserver::extra_repr() const {
  std::ostringstream s;
  s << "ch_axis=" << ch_axis_ << ", channels=" << min_val_.numel() << ", " << quantization_repr();
  return s.str();
}

MovingAveragePerChannelMinMaxObserver::MovingAveragePerChannelMinMaxObserver(
    const MovingAveragePerChannelMinMaxObserverOptions& options)
    : PerChannelMinMaxObserver("MovingAveragePerChannelMinMaxObserver", options, options.ch_axis()),
      averaging_constant_(options.averaging_constant()) {
  TQ_CHECK(averaging_constant_ > 0 && averaging_constant_ <= 1, name(), "averaging_constant must be in (0, 1], got ",
           averaging_constant_);
}

at::Tensor MovingAveragePerChannelMinMaxObserver::forward(const at::Tensor& x_orig) {
  const auto x = checked_input(x_orig);
  auto [mn, mx] = observed_ranges(x);
  if (min_val_.numel() != 0) {
    const float c = static_cast<float>(averaging_constant_);
    mn = min_val_ + c * (mn - min_val_);
    mx = max_val_ + c * (mx - max_val_);
  }
  store(mn, mx);
  return x_orig;
}

}  // namespace tq::observers
