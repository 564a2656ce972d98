#pragma once
// PerChannelMinMaxObserver and MovingAveragePerChannelMinMaxObserver.
#include "tq/observers/observer_base.h"

namespace tq::observers {

struct PerChannelMinMaxObserverOptions : UniformQuantizationOptions<PerChannelMinMaxObserverOptions> {
  PerChannelMinMaxObserverOptions() { qscheme_ = QScheme::PerChannelAffine; }
  TQ_OPTION(PerChannelMinMaxObserverOptions, int64_t, ch_axis) = 0;
};

struct MovingAveragePerChannelMinMaxObserverOptions
    : UniformQuantizationOptions<MovingAveragePerChannelMinMaxObserverOptions> {
  MovingAveragePerChannelMinMaxObserverOptions() { qscheme_ = QScheme::PerChannelAffine; }
  TQ_OPTION(MovingAveragePerChannelMinMaxObserverOptions, int64_t, ch_axis) = 0;
  TQ_OPTION(MovingAveragePerChannelMinMaxObserverOptions, double, averaging_constant) = 0.01;
};

// Running min and max per channel along ch_axis (negative axes count from the end).
class PerChannelMinMaxObserver : public UniformQuantizationObserverBase {
 public:
  explicit PerChannelMinMaxObserver(const PerChannelMinMaxObserverOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset_min_max_vals() override;
  std::string extra_repr() const override;
  std::vector<std::string> resizable_buffers() const override { return {"min_val", "max_val"}; }
  void merge_across_processes(Collective& group, const std::string& name) override;

  int64_t ch_axis() const override { return ch_axis_; }
  const at::Tensor& min_val() const { return min_val_; }
  const at::Tensor& max_val() const { return max_val_; }

 protected:
  template <class Self>
  PerChannelMinMaxObserver(std::string name, const UniformQuantizationOptions<Self>& o, int64_t ch_axis);
  // Per-channel min and max of x as two [C] tensors; checks the axis, the channel count
  // against earlier batches, and rejects +-Inf.
  std::pair<at::Tensor, at::Tensor> observed_ranges(const at::Tensor& x) const;
  void store(const at::Tensor& mn, const at::Tensor& mx);

  int64_t ch_axis_;
  at::Tensor min_val_;  // [C], empty until observed
  at::Tensor max_val_;
};

class MovingAveragePerChannelMinMaxObserver : public PerChannelMinMaxObserver {
 public:
  explicit MovingAveragePerChannelMinMaxObserver(const MovingAveragePerChannelMinMaxObserverOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  void merge_across_processes(Collective& group, const std::string& name) override;
  double averaging_constant() const { return averaging_constant_; }

 private:
  double averaging_constant_;
};

}  // namespace tq::observers
