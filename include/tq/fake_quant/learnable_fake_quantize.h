#pragma once
// LearnableFakeQuantize (PyTorch's _LearnableFakeQuantize, LSQ): scale and zero_point are
// parameters learned by backpropagation, or estimated by the observer.
//   enable_param_learning():     learn qparams, fake-quantize, observer off
//   enable_static_estimate():    observer sets qparams, fake-quantize
//   enable_static_observation(): observer only, no fake quantization
#include "tq/fake_quant/fake_quantize.h"

namespace tq::fake_quant {

struct LearnableFakeQuantizeOptions {
  LearnableFakeQuantizeOptions();
  TQ_OPTION(LearnableFakeQuantizeOptions, observers::ObserverFactory, observer);
  TQ_OPTION(LearnableFakeQuantizeOptions, int64_t, quant_min) = 0;
  TQ_OPTION(LearnableFakeQuantizeOptions, int64_t, quant_max) = 255;
  TQ_OPTION(LearnableFakeQuantizeOptions, double, scale) = 1.0;
  TQ_OPTION(LearnableFakeQuantizeOptions, double, zero_point) = 0.0;
  // -1: per tensor; > 0: per channel with this many channels (the observer's ch_axis); 0 (tq's
  // extension): per channel, as many as the first tensor has (set_channel_count sets it earlier,
  // e.g. before an optimizer takes the parameters). A QConfig's factory does not know them.
  TQ_OPTION(LearnableFakeQuantizeOptions, int64_t, channel_len) = -1;
  // Scale the scale / zero-point gradients by 1 / sqrt(numel * quant_max) (LSQ's g).
  TQ_OPTION(LearnableFakeQuantizeOptions, bool, use_grad_scaling) = false;
};

class LearnableFakeQuantize : public FakeQuantizeBase {
 public:
  explicit LearnableFakeQuantize(const LearnableFakeQuantizeOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  // Clamps the scale at eps (in place, like PyTorch) and returns it with the rounded, clamped
  // zero point as int64.
  QParams calculate_qparams() override;
  std::string extra_repr() const override;

  LearnableFakeQuantize& enable_param_learning();
  LearnableFakeQuantize& enable_static_estimate();
  LearnableFakeQuantize& enable_static_observation();
  LearnableFakeQuantize& toggle_observer_update(bool enabled = true);
  LearnableFakeQuantize& toggle_qparam_learning(bool enabled = true);  // also sets requires_grad
  LearnableFakeQuantize& toggle_fake_quant(bool enabled = true);
  // channel_len 0: sizes scale and zero_point (same tensors, new shape) for n channels, once.
  void set_channel_count(int64_t n);
  void enable_observer(bool enabled = true) override { toggle_observer_update(enabled); }
  // The observer's dtype (LSQ emulates its quant range), the scheme and axis of the qparams.
  QDType dtype() const override { return observer_->dtype(); }
  QScheme qscheme() const override { return qscheme_; }
  int64_t ch_axis() const override { return ch_axis_; }

  const at::Tensor& scale() const { return scale_; }
  const at::Tensor& zero_point() const { return zero_point_; }
  observers::ObserverBase& activation_post_process() { return *observer_; }
  int64_t quant_min() const { return quant_min_; }
  int64_t quant_max() const { return quant_max_; }
  c10::optional<QRange> quant_range() const override { return QRange{quant_min_, quant_max_}; }
  int64_t bitwidth() const { return bitwidth_; }
  bool static_enabled() const { return static_enabled_.item<int64_t>() == 1; }
  bool learning_enabled() const { return learning_enabled_.item<int64_t>() == 1; }

 private:
  std::shared_ptr<observers::ObserverBase> observer_;
  int64_t quant_min_, quant_max_, ch_axis_ = -1, bitwidth_;
  QScheme qscheme_;
  bool use_grad_scaling_;
  bool channels_pending_ = false;  // channel_len 0, not sized yet
  float initial_scale_, initial_zero_point_;
  at::Tensor scale_, zero_point_;  // parameters
  at::Tensor static_enabled_, learning_enabled_, eps_;
};

}  // namespace tq::fake_quant
