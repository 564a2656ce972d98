#pragma once
// Observers record statistics of the tensors they see and turn them into quantization parameters,
// as torch.ao.quantization.observer does. Each is a torch::nn::Module whose state lives in
// buffers named as in PyTorch (min_val, max_val, histogram, eps, ...), so state_dicts move
// between PyTorch and tq (see tq/serialize/state_dict.h).
//
//   auto obs = std::make_shared<tq::observers::MinMaxObserver>(
//       tq::observers::MinMaxObserverOptions().dtype(tq::QDType::QInt8).qscheme(tq::QScheme::PerTensorSymmetric));
//   obs->forward(activations);
//   auto [scale, zero_point] = obs->calculate_qparams();
#include <torch/nn/module.h>

#include <c10/util/Optional.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tq/core/dtypes.h"
#include "tq/core/module_state.h"
#include "tq/core/options.h"
#include "tq/numerics/qparams.h"
#include "tq/observers/quantizer.h"

namespace tq::observers {

class ObserverBase : public torch::nn::Module, public StatefulModule, public Quantizer {
 public:
  ObserverBase(std::string name, QDType dtype, bool is_dynamic);

  // Records statistics of x and returns x unchanged.
  at::Tensor forward(const at::Tensor& x) override = 0;
  QParams calculate_qparams() override = 0;
  // Forgets what was observed (PyTorch raises for observers that cannot).
  virtual void reset_min_max_vals();

  QDType dtype() const override { return dtype_; }
  QScheme qscheme() const override { return QScheme::PerTensorAffine; }
  bool is_dynamic() const override { return is_dynamic_; }
  // Once a min_val buffer holds a finite value (observers without one always have qparams).
  bool has_observed() const override;
  // Shown inside "Name(...)" when the module prints, like PyTorch's extra_repr.
  virtual std::string extra_repr() const { return ""; }
  void pretty_print(std::ostream& stream) const override;


 protected:
  QDType dtype_;
  bool is_dynamic_;
};

// Makes a fresh observer each call: PyTorch's Observer.with_args(...) for QConfigs.
using ObserverFactory = std::function<std::shared_ptr<ObserverBase>()>;

template <class ObserverT, class... Args>
ObserverFactory with_args(Args... args) {
  return [=]() -> std::shared_ptr<ObserverBase> { return std::make_shared<ObserverT>(args...); };
}

// Options shared by every observer that computes uniform affine/symmetric qparams.
template <class Self>
struct UniformQuantizationOptions {
  TQ_OPTION(Self, QDType, dtype) = QDType::QUInt8;
  TQ_OPTION(Self, QScheme, qscheme) = QScheme::PerTensorAffine;
  TQ_OPTION(Self, bool, reduce_range) = false;
  TQ_OPTION(Self, c10::optional<int64_t>, quant_min) = c10::nullopt;
  TQ_OPTION(Self, c10::optional<int64_t>, quant_max) = c10::nullopt;
  TQ_OPTION(Self, double, eps) = kFloat32Eps;
  TQ_OPTION(Self, bool, is_dynamic) = false;
};

// UniformQuantizationObserverBase: the range, the eps buffer and _calculate_qparams.
class UniformQuantizationObserverBase : public ObserverBase {
 public:
  QScheme qscheme() const override { return qscheme_; }
  bool reduce_range() const { return reduce_range_; }
  int64_t quant_min() const { return range_.quant_min; }
  int64_t quant_max() const { return range_.quant_max; }
  c10::optional<QRange> quant_range() const override { return range_; }
  bool has_customized_qrange() const { return has_customized_qrange_; }
  const at::Tensor& eps() const { return eps_; }

  // Drops reduce_range for the dtype's whole range: for a value whose consumer sums exact integer
  // products on every CPU, where the headroom guards nothing. A customized range stays.
  void use_full_range();
  // _calculate_qparams on the given ranges with this observer's dtype, scheme and range.
  QParams calculate_qparams_from(const at::Tensor& min_val, const at::Tensor& max_val) const;
  // "dtype=..., qscheme=..., quant_min=..., quant_max=...": the tail of every extra_repr.
  std::string quantization_repr() const;

 protected:
  template <class Self>
  UniformQuantizationObserverBase(std::string name, const UniformQuantizationOptions<Self>& o)
      : UniformQuantizationObserverBase(std::move(name), o.dtype(), o.qscheme(), o.reduce_range(), o.quant_min(),
                                        o.quant_max(), o.eps(), o.is_dynamic()) {}
  UniformQuantizationObserverBase(std::string name, QDType dtype, QScheme qscheme, bool reduce_range,
                                  c10::optional<int64_t> quant_min, c10::optional<int64_t> quant_max, double eps,
                                  bool is_dynamic);

  // Float32 view of an observed tensor after the checks every observer makes: defined,
  // floating point, not empty, no NaN. `what` names the observer in messages.
  at::Tensor checked_input(const at::Tensor& x) const;

  QScheme qscheme_;
  bool reduce_range_;
  bool has_customized_qrange_;
  QRange range_;
  at::Tensor eps_;
};

}  // namespace tq::observers
