#pragma once
// Observers that keep fixed qparams or none: FixedQParamsObserver, PlaceholderObserver,
// NoopObserver, RecordingObserver.
#include "tq/observers/observer_base.h"

namespace tq::observers {

struct FixedQParamsObserverOptions {
  FixedQParamsObserverOptions(double scale, int64_t zero_point) : scale_(scale), zero_point_(zero_point) {}
  TQ_OPTION(FixedQParamsObserverOptions, double, scale);
  TQ_OPTION(FixedQParamsObserverOptions, int64_t, zero_point);
  TQ_OPTION(FixedQParamsObserverOptions, QDType, dtype) = QDType::QUInt8;
  TQ_OPTION(FixedQParamsObserverOptions, QScheme, qscheme) = QScheme::PerTensorAffine;
  TQ_OPTION(FixedQParamsObserverOptions, int64_t, quant_min) = 0;
  TQ_OPTION(FixedQParamsObserverOptions, int64_t, quant_max) = 255;
};

// Always returns the given scale and zero point (for sigmoid, tanh, ... outputs).
class FixedQParamsObserver : public ObserverBase {
 public:
  explicit FixedQParamsObserver(const FixedQParamsObserverOptions& options);
  at::Tensor forward(const at::Tensor& x) override { return x; }
  QParams calculate_qparams() override;
  std::string extra_repr() const override;
  void merge_across_processes(Collective&, const std::string&) override {}  // nothing observed
  QScheme qscheme() const override { return qscheme_; }
  int64_t quant_min() const { return quant_min_; }
  int64_t quant_max() const { return quant_max_; }
  const at::Tensor& scale() const { return scale_; }
  const at::Tensor& zero_point() const { return zero_point_; }

 private:
  QScheme qscheme_;
  int64_t quant_min_, quant_max_;
  at::Tensor scale_;       // [1] float32
  at::Tensor zero_point_;  // [1] int32
};

struct PlaceholderObserverOptions {
  TQ_OPTION(PlaceholderObserverOptions, QDType, dtype) = QDType::Float32;
  TQ_OPTION(PlaceholderObserverOptions, std::string, custom_op_name) = "";
  TQ_OPTION(PlaceholderObserverOptions, c10::optional<int64_t>, quant_min) = c10::nullopt;
  TQ_OPTION(PlaceholderObserverOptions, c10::optional<int64_t>, quant_max) = c10::nullopt;
  TQ_OPTION(PlaceholderObserverOptions, QScheme, qscheme) = QScheme::PerTensorAffine;
  TQ_OPTION(PlaceholderObserverOptions, double, eps) = kFloat32Eps;
  TQ_OPTION(PlaceholderObserverOptions, bool, is_dynamic) = false;
};

// Observes nothing; carries the configuration (e.g. float16, or dynamic quantization) to convert.
class PlaceholderObserver : public ObserverBase {
 public:
  explicit PlaceholderObserver(const PlaceholderObserverOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override { return x; }
  QParams calculate_qparams() override;  // throws, as in PyTorch
  std::string extra_repr() const override;
  void merge_across_processes(Collective&, const std::string&) override {}  // nothing observed
  const PlaceholderObserverOptions& options() const { return options_; }

 private:
  PlaceholderObserverOptions options_;
};

// Observes nothing; float16 by default.
class NoopObserver : public ObserverBase {
 public:
  explicit NoopObserver(QDType dtype = QDType::Float16, std::string custom_op_name = "");
  at::Tensor forward(const at::Tensor& x) override { return x; }
  QParams calculate_qparams() override;  // throws, as in PyTorch
  void merge_across_processes(Collective&, const std::string&) override {}  // nothing observed
  const std::string& custom_op() const { return custom_op_; }

 private:
  std::string custom_op_;
};

// Keeps a copy of every tensor it sees (debugging).
class RecordingObserver : public ObserverBase {
 public:
  explicit RecordingObserver(QDType dtype = QDType::QUInt8);
  at::Tensor forward(const at::Tensor& x) override;
  QParams calculate_qparams() override;  // throws, as in PyTorch
  const std::vector<at::Tensor>& get_tensor_value() const { return tensor_val_; }

 private:
  std::vector<at::Tensor> tensor_val_;
};

}  // namespace tq::observers
