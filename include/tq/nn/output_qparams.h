#pragma once
// The output side shared by modules whose int8 form requantizes their result (QuantStub,
// FloatFunctional, activations, BatchNorm2d): the observer or fake quantizer attached at prepare
// ("activation_post_process"), and the output scale / zero point it yields at convert, kept as
// buffers ("scale", "zero_point") so converted models save and load.
#include <torch/nn/module.h>

#include <memory>
#include <string>

#include "tq/nn/qconfig.h"
#include "tq/nn/quantizable.h"

namespace tq::nn {

class OutputQParams {
 public:
  void attach(torch::nn::Module& owner, const QuantizerFactory& make);
  // Undoes attach.
  void detach(torch::nn::Module& owner);
  bool attached() const { return observer_ != nullptr; }
  // Observed: records y and returns it; QAT: returns the fake-quantized y.
  at::Tensor observe(const at::Tensor& y) const;
  at::Tensor fake_quantize(const at::Tensor& y) const;
  // Observer -> buffers. Throws, naming `who`, if nothing was attached or observed.
  void convert(torch::nn::Module& owner, const std::string& who);
  // Empty buffers, ready to receive a saved state.
  void layout(torch::nn::Module& owner);
  bool converted() const { return scale_.defined(); }
  double scale() const { return scale_.data_ptr<double>()[0]; }
  int64_t zero_point() const { return zero_point_.data_ptr<int64_t>()[0]; }

 private:
  std::shared_ptr<torch::nn::Module> observer_;
  at::Tensor scale_, zero_point_;
};

// A module whose quantized state is its output qparams (QuantStub, FloatFunctional, activations,
// BatchNorm2d): the Quantizable mode transitions implemented once, on OutputQParams.
class OutputQuantizedModule : public torch::nn::Module, public Quantizable {
 public:
  void prepare(const QConfig& qconfig) override;
  bool prepare_qat(const QConfig& qconfig) override;
  void convert(const std::string& qualified_name) override;
  bool convert_reference(const std::string& qualified_name) override;
  void prepare_quantized_layout(bool dynamic) override;
  void unprepare() override;
  // Output qparams once converted (throws before).
  double output_scale() const;
  int64_t output_zero_point() const;

 protected:
  explicit OutputQuantizedModule(std::string name) : torch::nn::Module(std::move(name)) {}
  // False for a module whose int8 output keeps its input's qparams (ReLU6): nothing to observe.
  virtual bool has_output_qparams() const { return true; }
  // False for a module that stays float under prepare_qat.
  virtual bool has_qat_form() const { return true; }
  // False for a module that convert(is_reference) leaves as it is.
  virtual bool has_reference_form() const { return true; }
  // The observer (fake quantizer under QAT) for the output; the qconfig's activation by default.
  virtual QuantizerFactory output_quantizer(const QConfig& qconfig, bool qat) const { return qconfig.activation; }
  OutputQParams out_;
};

}  // namespace tq::nn
