#include "tq/observers/simple_observers.h"

#include <ATen/ATen.h>

#include <sstream>

#include "tq/core/check.h"
#include "tq/observers/default_observers.h"

namespace tq::observers {

FixedQParamsObserver::FixedQParamsObserver(const FixedQParamsObserverOptions& o)
    : ObserverBase("FixedQParamsObserver", o.dtype(), false),
      qscheme_(o.qscheme()),
      quant_min_(o.quant_min()),
      quant_max_(o.quant_max()) {
  TQ_CHECK(std::isfinite(o.scale()) && o.scale() > 0, name(), "scale must be positive and finite, got ", o.scale());
  TQ_CHECK(quant_min_ <= quant_max_, name(), "quant_min (", quant_min_, ") must be <= quant_max (", quant_max_, ")");
  TQ_CHECK(o.zero_point() >= quant_min_ && o.zero_point() <= quant_max_, name(), "zero_point (", o.zero_point(),
           ") must be within [", quant_min_, ", ", quant_max_, "]");
  scale_ = register_buffer("scale", at::full({1}, static_cast<float>(o.scale()), at::kFloat));
  zero_point_ = register_buffer("zero_point", at::full({1}, o.zero_point(), at::kInt));
}

QParams FixedQParamsObserver::calculate_qparams() { return {scale_, zero_point_}; }

std::string FixedQParamsObserver::extra_repr() const {
  std::ostringstream s;
  s << "scale=" << scale_.item<float>() << ", zero_point=" << zero_point_.item<int>() << ", dtype=" << to_string(dtype_)
    << ", quant_min=" << quant_min_ << ", quant_max=" << quant_max_ << ", qscheme=" << to_string(qscheme_);
  return s.str();
}

PlaceholderObserver::PlaceholderObserver(const PlaceholderObserverOptions& o)
    : ObserverBase("PlaceholderObserver", o.dtype(), o.is_dynamic()), options_(o) {}

QParams PlaceholderObserver::calculate_qparams() {
  TQ_FAIL(name(), "calculate_qparams should not be called for PlaceholderObserver");
}

std::string PlaceholderObserver::extra_repr() const {
  return "dtype=" + to_string(dtype_) + ", is_dynamic=" + (is_dynamic_ ? "true" : "false");
}

NoopObserver::NoopObserver(QDType dtype, std::string custom_op_name)
    : ObserverBase("NoopObserver", dtype, false), custom_op_(std::move(custom_op_name)) {}

QParams NoopObserver::calculate_qparams() {
  TQ_FAIL(name(), "calculate_qparams should not be called for NoopObserver");
}

RecordingObserver::RecordingObserver(QDType dtype) : ObserverBase("RecordingObserver", dtype, false) {}

at::Tensor RecordingObserver::forward(const at::Tensor& x) {
  TQ_CHECK(x.defined(), name(), "input is undefined");
  tensor_val_.push_back(x.detach().clone());
  return x;
}

QParams RecordingObserver::calculate_qparams() {
  TQ_FAIL(name(), "calculate_qparams should not be called for RecordingObserver");
}

// The defaults of torch/ao/quantization/observer.py.
ObserverFactory default_observer() {
  return with_args<MinMaxObserver>(MinMaxObserverOptions().quant_min(0).quant_max(127));
}
ObserverFactory default_weight_observer() {
  return with_args<MinMaxObserver>(
      MinMaxObserverOptions().dtype(QDType::QInt8).qscheme(QScheme::PerTensorSymmetric));
}
ObserverFactory weight_observer_range_neg_127_to_127() {
  return with_args<MinMaxObserver>(MinMaxObserverOptions()
                                       .dtype(QDType::QInt8)
                                       .qscheme(QScheme::PerTensorSymmetric)
                                       .quant_min(-127)
                                       .quant_max(127)
                                       .eps(1.0 / 4096));
}
ObserverFactory default_histogram_observer() {
  return with_args<HistogramObserver>(HistogramObserverOptions().quant_min(0).quant_max(127));
}
ObserverFactory default_per_channel_weight_observer() {
  return with_args<PerChannelMinMaxObserver>(
      PerChannelMinMaxObserverOptions().dtype(QDType::QInt8).qscheme(QScheme::PerChannelSymmetric));
}
ObserverFactory per_channel_weight_observer_range_neg_127_to_127() {
  return with_args<PerChannelMinMaxObserver>(PerChannelMinMaxObserverOptions()
                                                 .dtype(QDType::QInt8)
                                                 .qscheme(QScheme::PerChannelSymmetric)
                                                 .quant_min(-127)
                                                 .quant_max(127)
                                                 .eps(1.0 / 4096));
}
ObserverFactory default_dynamic_quant_observer() {
  return with_args<PlaceholderObserver>(PlaceholderObserverOptions().dtype(QDType::QUInt8).is_dynamic(true));
}
ObserverFactory default_float_qparams_observer() {
  return with_args<PerChannelMinMaxObserver>(PerChannelMinMaxObserverOptions()
                                                 .dtype(QDType::QUInt8)
                                                 .qscheme(QScheme::PerChannelAffineFloatQParams)
                                                 .ch_axis(0));
}
ObserverFactory default_float_qparams_observer_4bit() {
  return with_args<PerChannelMinMaxObserver>(PerChannelMinMaxObserverOptions()
                                                 .dtype(QDType::QUInt4x2)
                                                 .qscheme(QScheme::PerChannelAffineFloatQParams)
                                                 .ch_axis(0));
}
ObserverFactory default_placeholder_observer() { return with_args<PlaceholderObserver>(PlaceholderObserverOptions()); }
ObserverFactory default_debug_observer() { return with_args<RecordingObserver>(QDType::QUInt8); }
ObserverFactory default_fixed_qparams_range_0to1_observer() {
  return with_args<FixedQParamsObserver>(FixedQParamsObserverOptions(1.0 / 256.0, 0));
}
ObserverFactory default_fixed_qparams_range_neg1to1_observer() {
  return with_args<FixedQParamsObserver>(FixedQParamsObserverOptions(2.0 / 256.0, 128));
}

}  // namespace tq::observers
