#pragma once
// PerChannelMSEObserver: for weights, each channel's range is the fraction k / candidates
// (k = 1..candidates) of its min / max whose fake-quantized channel is closest to the original
// in squared error. Several forward calls keep the union of the chosen ranges.
#include "tq/observers/observer_base.h"

namespace tq::observers {

struct PerChannelMSEObserverOptions : UniformQuantizationOptions<PerChannelMSEObserverOptions> {
  PerChannelMSEObserverOptions() {
    dtype_ = QDType::QInt8;
    qscheme_ = QScheme::PerChannelSymmetric;
  }
  TQ_OPTION(PerChannelMSEObserverOptions, int64_t, ch_axis) = 0;
  TQ_OPTION(PerChannelMSEObserverOptions, int64_t, candidates) = 100;
};

class PerChannelMSEObserver : public UniformQuantizationObserverBase {
 public:
  explicit PerChannelMSEObserver(const PerChannelMSEObserverOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset_min_max_vals() override;
  std::string extra_repr() const override;
  std::vector<std::string> resizable_buffers() const override { return {"min_val", "max_val"}; }

  int64_t ch_axis() const override { return ch_axis_; }
  int64_t candidates() const { return candidates_; }
  const at::Tensor& min_val() const { return min_val_; }
  const at::Tensor& max_val() const { return max_val_; }

 private:
  int64_t ch_axis_;
  int64_t candidates_;
  at::Tensor min_val_;  // [C], empty until observed
  at::Tensor max_val_;
};

}  // namespace tq::observers
