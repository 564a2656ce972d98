#include "tq/nn/output_qparams.h"

#include <ATen/ATen.h>

#include "tq/core/check.h"
#include "tq/nn/observed_pass.h"

namespace tq::nn {

void OutputQParams::attach(torch::nn::Module& owner, const QuantizerFactory& make) {
  observer_ = owner.register_module("activation_post_process", make());
}

void OutputQParams::detach(torch::nn::Module& owner) {
  if (!observer_) return;
  owner.unregister_module("activation_post_process");
  observer_.reset();
}

at::Tensor OutputQParams::observe(const at::Tensor& y) const {
  if (!observer_) return y;
  if (is_fake_quantize(*observer_)) return run_quantizer(*observer_, y);
  return observe_output(*observer_, y);
}

at::Tensor OutputQParams::fake_quantize(const at::Tensor& y) const {
  return at::fake_quantize_per_tensor_affine(y, scale(), zero_point(), 0, 255);
}

void OutputQParams::convert(torch::nn::Module& owner, const std::string& who) {
  TQ_CHECK(observer_ != nullptr, who, "convert needs a prepared module");
  TQ_CHECK(quantizer_has_observed(*observer_), who, "was prepared but never calibrated: its observer saw no data");
  const auto qp = quantizer_qparams(*observer_);
  scale_ = owner.register_buffer("scale", at::full({1}, qp.scale.item<double>(), at::kDouble));
  zero_point_ = owner.register_buffer("zero_point", at::full({1}, qp.zero_point.item<int64_t>(), at::kLong));
  owner.unregister_module("activation_post_process");
  observer_.reset();
}

void OutputQParams::layout(torch::nn::Module& owner) {
  scale_ = owner.register_buffer("scale", at::ones({1}, at::kDouble));
  zero_point_ = owner.register_buffer("zero_point", at::zeros({1}, at::kLong));
}

void OutputQuantizedModule::prepare(const QConfig& qconfig) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "already prepared (", to_string(mode_), ")");
  if (has_output_qparams()) out_.attach(*this, output_quantizer(qconfig, /*qat=*/false));
  mode_ = QuantMode::Observed;
}

bool OutputQuantizedModule::prepare_qat(const QConfig& qconfig) {
  if (!has_qat_form()) return false;
  TQ_CHECK(mode_ == QuantMode::Float, name(), "already prepared (", to_string(mode_), ")");
  if (has_output_qparams()) out_.attach(*this, output_quantizer(qconfig, /*qat=*/true));
  mode_ = QuantMode::QAT;
  return true;
}

void OutputQuantizedModule::unprepare() {
  if (mode_ != QuantMode::Observed && mode_ != QuantMode::QAT) return;
  out_.detach(*this);
  mode_ = QuantMode::Float;
}

double OutputQuantizedModule::output_scale() const {
  TQ_CHECK(out_.converted(), name(), "is not converted");
  return out_.scale();
}
int64_t OutputQuantizedModule::output_zero_point() const {
  TQ_CHECK(out_.converted(), name(), "is not converted");
  return out_.zero_point();
}

void OutputQuantizedModule::convert(const std::string& qualified_name) {
  const std::string& who = qualified_name.empty() ? name() : qualified_name;
  TQ_CHECK(mode_ == QuantMode::Observed || mode_ == QuantMode::QAT, who,
           "convert needs a prepared module (observed or QAT), this one is ", to_string(mode_));
  if (has_output_qparams()) out_.convert(*this, who);
  mode_ = QuantMode::Quantized;
}

bool OutputQuantizedModule::convert_reference(const std::string& qualified_name) {
  if (!has_reference_form()) return false;
  convert(qualified_name);
  mode_ = QuantMode::Reference;
  return true;
}

void OutputQuantizedModule::prepare_quantized_layout(bool /*dynamic*/) {
  if (has_output_qparams()) out_.layout(*this);
  mode_ = QuantMode::Quantized;
}

}  // namespace tq::nn
