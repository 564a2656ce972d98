#include "tq/fake_quant/fake_quantize.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "tq/core/check.h"
#include "tq/observers/batch_range_reduction.h"
#include "tq/kernels/tensor_kernels.h"
#include "tq/numerics/fake_quantize.h"
#include "tq/observers/per_channel_min_max_observer.h"
#include "tq/observers/simple_observers.h"

namespace tq::fake_quant {
namespace {

std::string flag_string(const at::Tensor& t) { return std::to_string(t.item<int64_t>()); }

std::string tensor_string(const at::Tensor& t) {
  std::ostringstream s;
  const auto v = t.to(at::kDouble).contiguous();
  s << "[";
  for (int64_t i = 0; i < std::min<int64_t>(v.numel(), 8); ++i) s << (i ? ", " : "") << v.data_ptr<double>()[i];
  if (v.numel() > 8) s << ", ... (" << v.numel() << ")";
  s << "]";
  return s.str();
}

template <class Fn>
void for_each_fake_quantize(torch::nn::Module& model, Fn fn) {
  if (auto* self = dynamic_cast<FakeQuantizeBase*>(&model)) fn(*self);
  for (const auto& m : model.modules(/*include_self=*/false)) {
    if (auto* fq = dynamic_cast<FakeQuantizeBase*>(m.get())) fn(*fq);
  }
}

}  // namespace

FakeQuantizeBase::FakeQuantizeBase(std::string name, c10::ScalarType flag_dtype) : torch::nn::Module(std::move(name)) {
  fake_quant_enabled_ = register_buffer("fake_quant_enabled", at::ones({1}, flag_dtype));
  observer_enabled_ = register_buffer("observer_enabled", at::ones({1}, flag_dtype));
}

void FakeQuantizeBase::enable_fake_quant(bool enabled) { fake_quant_enabled_.fill_(enabled ? 1 : 0); }
void FakeQuantizeBase::enable_observer(bool enabled) { observer_enabled_.fill_(enabled ? 1 : 0); }
bool FakeQuantizeBase::fake_quant_enabled() const { return fake_quant_enabled_.item<int64_t>() == 1; }
bool FakeQuantizeBase::observer_enabled() const { return observer_enabled_.item<int64_t>() == 1; }

void FakeQuantizeBase::pretty_print(std::ostream& stream) const { stream << name() << "(" << extra_repr() << ")"; }

void enable_fake_quant(torch::nn::Module& model) {
  for_each_fake_quantize(model, [](FakeQuantizeBase& fq) { fq.enable_fake_quant(); });
}
void disable_fake_quant(torch::nn::Module& model) {
  for_each_fake_quantize(model, [](FakeQuantizeBase& fq) { fq.disable_fake_quant(); });
}
void enable_observer(torch::nn::Module& model) {
  for_each_fake_quantize(model, [](FakeQuantizeBase& fq) { fq.enable_observer(); });
}
void disable_observer(torch::nn::Module& model) {
  for_each_fake_quantize(model, [](FakeQuantizeBase& fq) { fq.disable_observer(); });
}

FakeQuantizeOptions::FakeQuantizeOptions()
    : observer_(observers::with_args<observers::MovingAverageMinMaxObserver>(
          observers::MovingAverageMinMaxObserverOptions())) {}

FakeQuantize::FakeQuantize(const FakeQuantizeOptions& options)
    : FakeQuantize("FakeQuantize", options, c10::kByte) {}

FakeQuantize::FakeQuantize(std::string name, const FakeQuantizeOptions& options, c10::ScalarType flag_dtype)
    : FakeQuantizeBase(std::move(name), flag_dtype) {
  const std::string& op = this->name();
  TQ_CHECK(static_cast<bool>(options.observer()), op, "no observer constructor given");
  observer_ = options.observer()();
  TQ_CHECK(observer_ != nullptr, op, "the observer constructor returned no observer");
  dtype_ = observer_->dtype();
  is_dynamic_ = observer_->is_dynamic();
  qscheme_ = observer_->qscheme();
  ch_axis_ = observer_->ch_axis();
  if (auto* u = dynamic_cast<observers::UniformQuantizationObserverBase*>(observer_.get())) {
    quant_min_ = u->quant_min();
    quant_max_ = u->quant_max();
  } else if (auto* f = dynamic_cast<observers::FixedQParamsObserver*>(observer_.get())) {
    quant_min_ = f->quant_min();
    quant_max_ = f->quant_max();
  } else {
    TQ_FAIL(op, "needs an observer that computes qparams (MinMax, Histogram, FixedQParams, ...); got ",
            observer_->name());
  }
  TQ_CHECK(quant_min_ <= quant_max_, op, "quant_min (", quant_min_, ") must be <= quant_max (", quant_max_, ")");
  if (dtype_ != QDType::QUInt4x2) {
    TQ_CHECK(dtype_min(dtype_) <= quant_min_ && quant_max_ <= dtype_max(dtype_), op, "quantization range [",
             quant_min_, ", ", quant_max_, "] is outside ", to_string(dtype_));
  }
  register_module("activation_post_process", observer_);
  scale_ = register_buffer("scale", at::ones({1}, at::kFloat));
  zero_point_ = register_buffer("zero_point", at::zeros({1}, is_float_qparams(qscheme_) ? at::kFloat : at::kInt));
}

QParams FakeQuantize::calculate_qparams() { return observer_->calculate_qparams(); }

void FakeQuantize::store_qparams(const QParams& qp) {
  if (scale_.sizes() != qp.scale.sizes()) {
    scale_.resize_(qp.scale.sizes());
    zero_point_.resize_(qp.zero_point.sizes());
  }
  scale_.copy_(qp.scale);
  zero_point_.copy_(qp.zero_point);
}

at::Tensor FakeQuantize::fake_quantize(const at::Tensor& x) const {
  if (is_per_channel()) {
    return tq::fake_quantize_per_channel_affine(x, scale_, zero_point_, ch_axis_, quant_min_, quant_max_);
  }
  return tq::fake_quantize_per_tensor_affine(x, scale_, zero_point_, quant_min_, quant_max_);
}

at::Tensor FakeQuantize::forward(const at::Tensor& x) {
  if (observer_enabled()) {
    observer_->forward(x.detach());
    store_qparams(calculate_qparams());
  }
  return fake_quant_enabled() ? fake_quantize(x) : x;
}

std::string FakeQuantize::extra_repr() const {
  std::ostringstream s;
  s << "fake_quant_enabled=" << flag_string(fake_quant_enabled_) << ", observer_enabled=" << flag_string(observer_enabled_)
    << ", quant_min=" << quant_min_ << ", quant_max=" << quant_max_ << ", dtype=" << to_string(dtype_)
    << ", qscheme=" << to_string(qscheme_) << ", ch_axis=" << ch_axis_ << ", scale=" << tensor_string(scale_)
    << ", zero_point=" << tensor_string(zero_point_);
  return s.str();
}

FixedQParamsFakeQuantize::FixedQParamsFakeQuantize(const observers::ObserverFactory& observer)
    : FakeQuantize("FixedQParamsFakeQuantize", FakeQuantizeOptions().observer(observer), c10::kByte) {
  auto* fixed = dynamic_cast<observers::FixedQParamsObserver*>(observer_.get());
  TQ_CHECK(fixed != nullptr, name(), "observer must be a FixedQParamsObserver, got ", observer_->name());
  TQ_CHECK(is_per_tensor(qscheme_), name(), "only per tensor quantization is supported, got qscheme ",
           to_string(qscheme_));
  store_qparams({fixed->scale(), fixed->zero_point()});
}

QParams FixedQParamsFakeQuantize::calculate_qparams() { return observer_->calculate_qparams(); }

std::string FixedQParamsFakeQuantize::extra_repr() const {
  std::ostringstream s;
  s << "fake_quant_enabled=" << flag_string(fake_quant_enabled_) << ", observer_enabled=" << flag_string(observer_enabled_)
    << ", scale=" << tensor_string(scale_) << ", zero_point=" << tensor_string(zero_point_)
    << ", dtype=" << to_string(dtype_) << ", quant_min=" << quant_min_ << ", quant_max=" << quant_max_
    << ", qscheme=" << to_string(qscheme_);
  return s.str();
}

FakeQuantizeOptions FusedMovingAvgObsFakeQuantize::fused_default_options() {
  return FakeQuantizeOptions().observer(observers::with_args<observers::MovingAverageMinMaxObserver>(
      observers::MovingAverageMinMaxObserverOptions().quant_min(0).quant_max(255)));
}

FusedMovingAvgObsFakeQuantize::FusedMovingAvgObsFakeQuantize(const FakeQuantizeOptions& options)
    : FakeQuantize("FusedMovingAvgObsFakeQuantize", options, c10::kLong) {
  if (auto* m = dynamic_cast<observers::MovingAverageMinMaxObserver*>(observer_.get())) {
    averaging_constant_ = m->averaging_constant();
  } else if (auto* p = dynamic_cast<observers::MovingAveragePerChannelMinMaxObserver*>(observer_.get())) {
    averaging_constant_ = p->averaging_constant();
  } else {
    TQ_FAIL(name(),
            "works only with MovingAverageMinMaxObserver or MovingAveragePerChannelMinMaxObserver, got ",
            observer_->name());
  }
}

at::Tensor FusedMovingAvgObsFakeQuantize::forward(const at::Tensor& x) {
  // Handles to the observer's buffers (same TensorImpl: updates land in the observer's state).
  const auto buffers = observer_->named_buffers(/*recurse=*/false);
  at::Tensor min_val = buffers["min_val"];
  at::Tensor max_val = buffers["max_val"];
  return fake_quant::fused_moving_avg_obs_fake_quant(x, observer_enabled_, fake_quant_enabled_, min_val, max_val, scale_,
                                         zero_point_, averaging_constant_, quant_min_, quant_max_,
                                         is_per_channel() ? ch_axis_ : -1, is_per_channel(), is_symmetric_quant());
}

std::string FusedMovingAvgObsFakeQuantize::extra_repr() const {
  return FakeQuantize::extra_repr() + ", reduce_range=" +
         (dynamic_cast<observers::UniformQuantizationObserverBase&>(*observer_).reduce_range() ? "true" : "false");
}

at::Tensor fused_moving_avg_obs_fake_quant(const at::Tensor& x, const at::Tensor& observer_on,
                                           const at::Tensor& fake_quant_on, at::Tensor& running_min,
                                           at::Tensor& running_max, at::Tensor& scale, at::Tensor& zero_point,
                                           double averaging_const, int64_t quant_min, int64_t quant_max,
                                           int64_t ch_axis, bool per_row_fake_quant, bool symmetric_quant) {
  const char* op = "fused_moving_avg_obs_fake_quant";
  TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, op, "input must be a float32 tensor");
  if (x.numel() == 0) return x.clone();
  TQ_CHECK(ch_axis < x.dim(), op, "ch_axis (", ch_axis, ") must be < the input's dimensions (", x.dim(), ")");
  TQ_CHECK(observer_on.numel() == 1 && fake_quant_on.numel() == 1, op, "the flags must hold one value each");
  const auto xc = x.detach().contiguous();
  const float c = static_cast<float>(averaging_const);
  auto update = [c](float& running, float current) {
    running = std::isinf(running) ? current : running + c * (current - running);
  };
  auto check_finite = [op](float mn, float mx) {
    TQ_CHECK(!std::isnan(mn) && !std::isnan(mx), op, "input contains NaN");
    TQ_CHECK(std::isfinite(mn) && std::isfinite(mx), op, "input contains Inf; an infinite range has no finite scale");
  };
  const bool observe = observer_on.item<int64_t>() != 0;
  const bool fake_quant = fake_quant_on.item<int64_t>() != 0;
  if (per_row_fake_quant) {
    TQ_CHECK(ch_axis == 0, op, "per-channel fake quantization supports only ch_axis 0, got ", ch_axis);
    const auto layout = channel_layout(xc, 0, op);
    if (running_min.numel() == 0) {
      const float inf = std::numeric_limits<float>::infinity();
      running_min.resize_({layout.channels}).fill_(inf);
      running_max.resize_({layout.channels}).fill_(-inf);
      scale.resize_({layout.channels});
      zero_point.resize_({layout.channels});
    }
    TQ_CHECK(running_min.numel() == layout.channels, op, "input has ", layout.channels,
             " channels, the running statistics ", running_min.numel());
    if (observe) {
      const auto batch = kernels::min_max_per_channel(xc, layout);
      const float* mn = batch.first.data_ptr<float>();
      const float* mx = batch.second.data_ptr<float>();
      float* rmin = running_min.data_ptr<float>();
      float* rmax = running_max.data_ptr<float>();
      for (int64_t i = 0; i < layout.channels; ++i) check_finite(mn[i], mx[i]);
      observers::reduce_batch_range(batch.first.data_ptr<float>(), batch.second.data_ptr<float>(), layout.channels);
      for (int64_t i = 0; i < layout.channels; ++i) {
        update(rmin[i], mn[i]);
        update(rmax[i], mx[i]);
      }
    }
    if (!fake_quant) return x.clone();
    const auto zp32 = at::empty({layout.channels}, at::kInt);
    const auto sc = at::empty({layout.channels}, at::kFloat);
    for (int64_t i = 0; i < layout.channels; ++i) {
      const auto qp = choose_quantization_params(running_min.data_ptr<float>()[i], running_max.data_ptr<float>()[i],
                                                 static_cast<int32_t>(quant_min), static_cast<int32_t>(quant_max),
                                                 symmetric_quant);
      sc.data_ptr<float>()[i] = qp.scale;
      zp32.data_ptr<int32_t>()[i] = qp.zero_point;
    }
    scale.copy_(sc);
    zero_point.copy_(zp32);
    return tq::fake_quantize_per_channel_affine(x, sc, zp32, ch_axis, quant_min, quant_max);
  }
  if (observe) {
    auto [mn, mx] = kernels::min_max(xc);
    check_finite(mn, mx);
    observers::reduce_batch_range(&mn, &mx, 1);
    update(running_min.data_ptr<float>()[0], mn);
    update(running_max.data_ptr<float>()[0], mx);
  }
  if (!fake_quant) return x.clone();
  const auto qp = choose_quantization_params(running_min.data_ptr<float>()[0], running_max.data_ptr<float>()[0],
                                             static_cast<int32_t>(quant_min), static_cast<int32_t>(quant_max),
                                             symmetric_quant);
  scale.fill_(qp.scale);
  zero_point.fill_(qp.zero_point);
  return tq::fake_quantize_per_tensor_affine(x, qp.scale, qp.zero_point, quant_min, quant_max);
}

}  // namespace tq::fake_quant
