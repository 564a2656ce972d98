#include "tq/fake_quant/learnable_fake_quantize.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "tq/core/check.h"
#include "tq/numerics/fake_quantize_learnable.h"
#include "tq/observers/per_channel_min_max_observer.h"

namespace tq::fake_quant {

LearnableFakeQuantizeOptions::LearnableFakeQuantizeOptions()
    : observer_(observers::with_args<observers::MovingAverageMinMaxObserver>(
          observers::MovingAverageMinMaxObserverOptions().quant_min(0).quant_max(255))) {}

LearnableFakeQuantize::LearnableFakeQuantize(const LearnableFakeQuantizeOptions& o)
    : FakeQuantizeBase("LearnableFakeQuantize"),
      quant_min_(o.quant_min()),
      quant_max_(o.quant_max()),
      use_grad_scaling_(o.use_grad_scaling()) {
  const std::string& op = name();
  TQ_CHECK(quant_min_ < quant_max_, op, "quant_min (", quant_min_, ") must be strictly less than quant_max (",
           quant_max_, ")");
  TQ_CHECK(o.channel_len() >= -1, op, "channel_len must be -1, 0 or positive, got ", o.channel_len());
  const int64_t n = o.channel_len() <= 0 ? 1 : o.channel_len();
  channels_pending_ = o.channel_len() == 0;
  initial_scale_ = static_cast<float>(o.scale());
  initial_zero_point_ = static_cast<float>(o.zero_point());
  scale_ = register_parameter("scale", at::full({n}, static_cast<float>(o.scale())));
  zero_point_ = register_parameter("zero_point", at::full({n}, static_cast<float>(o.zero_point())));
  observer_ = o.observer()();
  auto* uniform = dynamic_cast<observers::UniformQuantizationObserverBase*>(observer_.get());
  TQ_CHECK(uniform != nullptr, op, "needs a MinMax-style or Histogram observer, got ", observer_->name());
  TQ_CHECK(uniform->quant_min() == quant_min_ && uniform->quant_max() == quant_max_, op, "the observer's range [",
           uniform->quant_min(), ", ", uniform->quant_max(), "] differs from quant_min/quant_max [", quant_min_, ", ",
           quant_max_, "]; give the observer the same range");
  qscheme_ = uniform->qscheme();
  TQ_CHECK(qscheme_ != QScheme::PerChannelAffineFloatQParams, op, "float-qparams schemes are not learnable");
  ch_axis_ = observer_->ch_axis();
  TQ_CHECK(is_per_channel(qscheme_) == (o.channel_len() != -1), op,
           "a per-channel observer needs channel_len >= 0, a per-tensor one channel_len -1 (got ", o.channel_len(),
           " with ", to_string(qscheme_), ")");
  register_module("activation_post_process", observer_);
  static_enabled_ = register_buffer("static_enabled", at::ones({1}, at::kByte));
  learning_enabled_ = register_buffer("learning_enabled", at::zeros({1}, at::kByte));
  bitwidth_ = static_cast<int64_t>(std::log2(static_cast<double>(quant_max_ - quant_min_ + 1)));
  eps_ = register_buffer("eps", at::full({1}, static_cast<float>(kFloat32Eps)));
}

LearnableFakeQuantize& LearnableFakeQuantize::enable_param_learning() {
  return toggle_qparam_learning(true).toggle_fake_quant(true).toggle_observer_update(false);
}
LearnableFakeQuantize& LearnableFakeQuantize::enable_static_estimate() {
  return toggle_qparam_learning(false).toggle_fake_quant(true).toggle_observer_update(true);
}
LearnableFakeQuantize& LearnableFakeQuantize::enable_static_observation() {
  return toggle_qparam_learning(false).toggle_fake_quant(false).toggle_observer_update(true);
}
LearnableFakeQuantize& LearnableFakeQuantize::toggle_observer_update(bool enabled) {
  static_enabled_.fill_(enabled ? 1 : 0);
  return *this;
}
LearnableFakeQuantize& LearnableFakeQuantize::toggle_qparam_learning(bool enabled) {
  learning_enabled_.fill_(enabled ? 1 : 0);
  scale_.set_requires_grad(enabled);
  zero_point_.set_requires_grad(enabled);
  return *this;
}
void LearnableFakeQuantize::set_channel_count(int64_t n) {
  TQ_CHECK(n > 0, name(), "a channel count must be positive, got ", n);
  if (!channels_pending_) {
    TQ_CHECK(scale_.numel() == n, name(), "has ", scale_.numel(), " channels, the tensor ", n);
    return;
  }
  at::NoGradGuard no_grad;
  scale_.set_data(at::full({n}, initial_scale_));
  zero_point_.set_data(at::full({n}, initial_zero_point_));
  channels_pending_ = false;
}

LearnableFakeQuantize& LearnableFakeQuantize::toggle_fake_quant(bool enabled) {
  enable_fake_quant(enabled);
  return *this;
}

QParams LearnableFakeQuantize::calculate_qparams() {
  at::NoGradGuard no_grad;
  scale_.variable_data().clamp_min_(eps_.item<float>());
  return {scale_.detach().clone(), zero_point_.detach().round().clamp(quant_min_, quant_max_).to(at::kLong)};
}

at::Tensor LearnableFakeQuantize::forward(const at::Tensor& x) {
  if (channels_pending_) {
    TQ_CHECK(ch_axis_ >= -x.dim() && ch_axis_ < x.dim(), name(), "ch_axis ", ch_axis_, " is out of range for a ",
             x.dim(), "-d tensor");
    set_channel_count(x.size(ch_axis_));
  }
  {
    // Through variable_data(), as PyTorch writes through .data: the parameters' version counters
    // stay, so a quantizer called twice in one forward (a shared point) keeps autograd valid.
    at::NoGradGuard no_grad;
    if (static_enabled()) {
      observer_->forward(x.detach());
      const auto qp = observer_->calculate_qparams();
      TQ_CHECK(qp.scale.numel() == scale_.numel(), name(), "the observer produced ", qp.scale.numel(),
               " scales for ", scale_.numel(), " learnable ones (check channel_len)");
      scale_.variable_data().copy_(qp.scale.reshape(scale_.sizes()));
      zero_point_.variable_data().copy_(qp.zero_point.reshape(zero_point_.sizes()));
    } else {
      scale_.variable_data().clamp_min_(eps_.item<float>());
    }
  }
  if (!fake_quant_enabled()) return x;
  if (is_symmetric(qscheme_)) {
    at::NoGradGuard no_grad;
    zero_point_.variable_data().zero_();
  }
  const double grad_factor =
      use_grad_scaling_ ? 1.0 / std::sqrt(static_cast<double>(x.numel()) * static_cast<double>(quant_max_)) : 1.0;
  if (is_per_channel(qscheme_)) {
    return tq::fake_quantize_learnable_per_channel_affine(x, scale_, zero_point_, ch_axis_, quant_min_, quant_max_,
                                                          grad_factor);
  }
  return tq::fake_quantize_learnable_per_tensor_affine(x, scale_, zero_point_, quant_min_, quant_max_, grad_factor);
}

std::string LearnableFakeQuantize::extra_repr() const {
  std::ostringstream s;
  s << "fake_quant_enabled=" << fake_quant_enabled_.item<int64_t>() << ", static_enabled=" << static_enabled_.item<int64_t>()
    << ", learning_enabled=" << learning_enabled_.item<int64_t>() << ", quant_min=" << quant_min_
    << ", quant_max=" << quant_max_ << ", qscheme=" << to_string(qscheme_) << ", ch_axis=" << ch_axis_
    << ", use_grad_scaling=" << (use_grad_scaling_ ? "true" : "false") << ", channels=" << scale_.numel();
  return s.str();
}

}  // namespace tq::fake_quant
