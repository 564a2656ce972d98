#pragma once
// The FakeQuantize family of torch/ao/quantization/fake_quantize.py as LibTorch modules:
// FakeQuantizeBase (the on/off flags), FakeQuantize (observer + fake quantization),
// FixedQParamsFakeQuantize and FusedMovingAvgObsFakeQuantize. State uses PyTorch's names
// (fake_quant_enabled, observer_enabled, scale, zero_point, activation_post_process.*).
//
//   auto fq = std::make_shared<tq::fake_quant::FakeQuantize>(tq::fake_quant::FakeQuantizeOptions()
//       .observer(tq::observers::with_args<tq::observers::MovingAverageMinMaxObserver>(
//           tq::observers::MovingAverageMinMaxObserverOptions().quant_min(0).quant_max(255))));
//   auto y = fq->forward(x);              // observes x, updates scale / zero_point, fake-quantizes
//   tq::fake_quant::disable_observer(*model);  // every fake quantizer in a model tree
#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <string>

#include "tq/core/module_state.h"
#include "tq/core/options.h"
#include "tq/numerics/qparams.h"
#include "tq/observers/min_max_observer.h"

namespace tq::fake_quant {

class FakeQuantizeBase : public torch::nn::Module, public StatefulModule, public Quantizer {
 public:
  at::Tensor forward(const at::Tensor& x) override = 0;
  QParams calculate_qparams() override = 0;

  void enable_fake_quant(bool enabled = true);
  void disable_fake_quant() { enable_fake_quant(false); }
  // Learnable quantizers redirect this to their static-estimate switch, as PyTorch's do.
  virtual void enable_observer(bool enabled = true);
  void disable_observer() { enable_observer(false); }
  bool fake_quant_enabled() const;
  bool observer_enabled() const;

  virtual std::string extra_repr() const { return ""; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  // flag_dtype: uint8 (PyTorch's FakeQuantize) or int64 (the fused module).
  FakeQuantizeBase(std::string name, c10::ScalarType flag_dtype = c10::kByte);

  at::Tensor fake_quant_enabled_;
  at::Tensor observer_enabled_;
};

// Makes a fresh fake quantizer per call (PyTorch's FakeQuantize.with_args(...)).
using FakeQuantizeFactory = std::function<std::shared_ptr<FakeQuantizeBase>()>;

template <class T, class... Args>
FakeQuantizeFactory fake_quantize_with_args(Args... args) {
  return [=]() -> std::shared_ptr<FakeQuantizeBase> { return std::make_shared<T>(args...); };
}

// The observer carries dtype, qscheme, quant_min / quant_max, ch_axis and is_dynamic, as PyTorch's
// observer_kwargs do.
struct FakeQuantizeOptions {
  FakeQuantizeOptions();
  TQ_OPTION(FakeQuantizeOptions, observers::ObserverFactory, observer);
};

class FakeQuantize : public FakeQuantizeBase {
 public:
  explicit FakeQuantize(const FakeQuantizeOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  QParams calculate_qparams() override;
  std::string extra_repr() const override;
  std::vector<std::string> resizable_buffers() const override { return {"scale", "zero_point"}; }

  observers::ObserverBase& activation_post_process() { return *observer_; }
  std::shared_ptr<observers::ObserverBase> observer() const { return observer_; }
  QDType dtype() const override { return dtype_; }
  QScheme qscheme() const override { return qscheme_; }
  int64_t ch_axis() const override { return ch_axis_; }
  int64_t quant_min() const { return quant_min_; }
  int64_t quant_max() const { return quant_max_; }
  c10::optional<QRange> quant_range() const override { return QRange{quant_min_, quant_max_}; }
  bool is_dynamic() const override { return is_dynamic_; }
  bool has_observed() const override { return observer_->has_observed(); }
  bool is_per_channel() const { return tq::is_per_channel(qscheme_); }
  const at::Tensor& scale() const { return scale_; }
  const at::Tensor& zero_point() const { return zero_point_; }

 protected:
  FakeQuantize(std::string name, const FakeQuantizeOptions& options, c10::ScalarType flag_dtype);
  // Applies fake quantization with the current scale / zero_point.
  at::Tensor fake_quantize(const at::Tensor& x) const;
  // Copies new qparams into the buffers, resizing them when the shape changes.
  void store_qparams(const QParams& qp);

  std::shared_ptr<observers::ObserverBase> observer_;
  QDType dtype_;
  QScheme qscheme_;
  int64_t ch_axis_ = -1;
  int64_t quant_min_ = 0, quant_max_ = 255;
  bool is_dynamic_ = false;
  at::Tensor scale_;       // float32 [1] or [C]
  at::Tensor zero_point_;  // int32 (float32 for float-qparams schemes)
};

// Fixed scale / zero point from a FixedQParamsObserver (sigmoid, tanh, ...); per tensor only.
class FixedQParamsFakeQuantize : public FakeQuantize {
 public:
  explicit FixedQParamsFakeQuantize(const observers::ObserverFactory& observer);
  QParams calculate_qparams() override;
  std::string extra_repr() const override;
  std::vector<std::string> resizable_buffers() const override { return {}; }
};

// Observation (moving-average min/max), qparams and fake quantization as one operation, as
// torch.fused_moving_avg_obs_fake_quant: qparams come from ATen's ChooseQuantizationParams
// (double precision, small-scale cutoff), per tensor or per channel along axis 0. The flags are
// int64 tensors read once per call.
class FusedMovingAvgObsFakeQuantize : public FakeQuantize {
 public:
  explicit FusedMovingAvgObsFakeQuantize(const FakeQuantizeOptions& options = fused_default_options());
  at::Tensor forward(const at::Tensor& x) override;
  std::string extra_repr() const override;
  bool is_symmetric_quant() const { return is_symmetric(qscheme_); }
  static FakeQuantizeOptions fused_default_options();

 private:
  double averaging_constant_;
};

// Whole-model switches (PyTorch's model.apply(torch.ao.quantization.enable_fake_quant) and friends):
// every FakeQuantizeBase in the tree, the root included.
void enable_fake_quant(torch::nn::Module& model);
void disable_fake_quant(torch::nn::Module& model);
void enable_observer(torch::nn::Module& model);
void disable_observer(torch::nn::Module& model);

// torch.fused_moving_avg_obs_fake_quant on tq's kernels: updates running_min / running_max (and
// resizes them, scale and zero_point for per-channel on first use), writes scale / zero_point,
// returns the fake-quantized x (differentiable in x). The flags are 1-element tensors.
at::Tensor fused_moving_avg_obs_fake_quant(const at::Tensor& x, const at::Tensor& observer_on,
                                           const at::Tensor& fake_quant_on, at::Tensor& running_min,
                                           at::Tensor& running_max, at::Tensor& scale, at::Tensor& zero_point,
                                           double averaging_const, int64_t quant_min, int64_t quant_max,
                                           int64_t ch_axis, bool per_row_fake_quant, bool symmetric_quant);

}  // namespace tq::fake_quant
