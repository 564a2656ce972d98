#pragma once
// MinMaxObserver and MovingAverageMinMaxObserver (per tensor).
#include "tq/observers/observer_base.h"

namespace tq::observers {

struct MinMaxObserverOptions : UniformQuantizationOptions<MinMaxObserverOptions> {};

// Running min and max of everything observed.
class MinMaxObserver : public UniformQuantizationObserverBase {
 public:
  explicit MinMaxObserver(const MinMaxObserverOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset_min_max_vals() override;
  std::string extra_repr() const override;
  void merge_across_processes(Collective& group, const std::string& name) override;

  const at::Tensor& min_val() const { return min_val_; }
  const at::Tensor& max_val() const { return max_val_; }

 protected:
  template <class Self>
  MinMaxObserver(std::string name, const UniformQuantizationOptions<Self>& o);
  // Float32 min and max of a checked input; throws on +-Inf, which would make the scale infinite.
  std::pair<float, float> observed_range(const at::Tensor& x) const;

  at::Tensor min_val_;  // 0-dim, +inf until observed
  at::Tensor max_val_;  // 0-dim, -inf until observed
};

struct MovingAverageMinMaxObserverOptions : UniformQuantizationOptions<MovingAverageMinMaxObserverOptions> {
  TQ_OPTION(MovingAverageMinMaxObserverOptions, double, averaging_constant) = 0.01;
};

// min = min + c * (batch_min - min), likewise max; the first batch sets them.
class MovingAverageMinMaxObserver : public MinMaxObserver {
 public:
  explicit MovingAverageMinMaxObserver(const MovingAverageMinMaxObserverOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  void merge_across_processes(Collective& group, const std::string& name) override;
  double averaging_constant() const { return averaging_constant_; }

 private:
  double averaging_constant_;
};

}  // namespace tq::observers
