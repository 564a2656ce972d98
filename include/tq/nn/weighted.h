#pragma once
// Shared machinery of quantizable modules with weights (Linear, Conv2d): observers and fake
// quantizers by mode, weight quantization at convert, int8 state kept as plain tensors
// (weight_int8, weight_scale, weight_zero_point, scale, zero_point) so a converted model saves
// and loads through ordinary state_dicts; the engine's packed weights are rebuilt from them.
#include <torch/nn/module.h>

#include <optional>

#include "tq/kernels/int8.h"
#include "tq/nn/quantizable.h"

namespace tq::nn {

class WeightedModule : public torch::nn::Module, public Quantizable {
 public:
  at::Tensor forward(const at::Tensor& x);
  void convert(const std::string& qualified_name) override;
  void prepare(const QConfig& qconfig) override;
  bool prepare_qat(const QConfig& qconfig) override;
  InstallStep plan_dynamic(const QConfig& qconfig) override;
  bool convert_reference(const std::string& qualified_name) override;
  void remove_qconfig() override { qconfig_.reset(); }
  void unprepare() override;
  bool add_quant_dequant() override;
  void prepare_quantized_layout(bool dynamic) override;
  std::vector<std::string> resizable_buffers() const override;
  void validate_state() const override;
  void pretty_print(std::ostream& stream) const override;

  // QAT mode's computation up to its output fake quantizer: fake-quantized weight, live batch
  // norm, fused ReLU. Graph-mode QAT fake-quantizes the output where the graph observes it.
  at::Tensor qat_compute(const at::Tensor& x);
  // QAT mode: the weight's fake quantizer.
  const std::shared_ptr<torch::nn::Module>& weight_fake_quant() const { return weight_fake_quant_; }

  // Fuses a following ReLU into this module (fuse_modules).
  void set_fused_relu(bool relu) { relu_ = relu; }
  bool fused_relu() const { return relu_; }
  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& bias() const { return bias_; }
  // Output qparams once converted.
  double output_scale() const;
  int64_t output_zero_point() const;
  // The int8 weight (a quantized qint8 tensor) once converted.
  at::Tensor quantized_weight() const;
  // Observed: the qint8 weight convert() will give (the learned one, or the float weight
  // quantized with the qconfig's weight observer).
  at::Tensor weight_as_converted() const;
  // Observed: a qint8 weight learned by a post-training algorithm (AdaRound), which convert()
  // takes instead of quantizing the float weight.
  void set_learned_weight(const at::Tensor& weight_q);
  bool has_learned_weight() const { return learned_weight_.defined(); }
  // Replace the float weight / bias (equalization, bias correction); shapes must match.
  void set_weight(const at::Tensor& weight);
  void set_bias(const at::Tensor& bias);
  const std::optional<QConfig>& qconfig() const { return qconfig_; }

 protected:
  explicit WeightedModule(std::string name) : torch::nn::Module(std::move(name)) {}
  virtual at::Tensor float_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const = 0;
  virtual kernels::int8::PackedWeight prepack(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias) const = 0;
  virtual at::Tensor int8_op(const at::Tensor& x_q, double scale, int64_t zero_point) const = 0;
  virtual bool has_dynamic_form() const { return false; }
  virtual std::string describe() const = 0;
  // Hook for modules that compute differently in QAT mode (Conv2d with an attached batch norm).
  virtual bool qat_forward_override(const at::Tensor& x, at::Tensor& out) { return false; }

  // Quantizes the weight with the given (observer or fake-quantizer) qparams and packs it.
  void quantize_weight(torch::nn::Module& weight_quantizer);
  // Keeps a qint8 weight as the int8 state and packs it.
  void install_weight(const at::Tensor& weight_q);
  void drop_quantizers();
  void release_float_weight();

  at::Tensor weight_, bias_;
  at::Tensor learned_weight_;
  bool relu_ = false;
  bool fp16_ = false;  // float16 dynamic weights
  bool wrap_io_ = false;  // add_quant_dequant: own input quantization and output dequantization
  std::shared_ptr<torch::nn::Module> input_post_process_;
  at::Tensor in_scale_, in_zero_point_;
  std::optional<QConfig> qconfig_;
  std::shared_ptr<torch::nn::Module> activation_post_process_, weight_fake_quant_;
  at::Tensor weight_int8_, weight_scale_, weight_zero_point_, out_scale_, out_zero_point_;
  mutable kernels::int8::PackedWeight packed_;
  // Plain copies of the output qparams buffers, read on every call.
  mutable double out_scale_value_ = 1.0;
  mutable int64_t out_zero_point_value_ = 0;
};

}  // namespace tq::nn
