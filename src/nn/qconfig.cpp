#include "tq/nn/qconfig.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/fake_quant/fake_quantize.h"
#include "tq/observers/quantizer.h"

namespace tq::nn {

QuantizerFactory::QuantizerFactory(observers::ObserverFactory f)
    : make_([f = std::move(f)]() -> std::shared_ptr<torch::nn::Module> { return f(); }) {}
QuantizerFactory::QuantizerFactory(fake_quant::FakeQuantizeFactory f)
    : make_([f = std::move(f)]() -> std::shared_ptr<torch::nn::Module> { return f(); }) {}

std::shared_ptr<torch::nn::Module> QuantizerFactory::operator()() const {
  TQ_CHECK(static_cast<bool>(make_), "QConfig", "this QConfig side has no observer or fake quantizer");
  return make_();
}

namespace {
// Observers and fake quantizers all derive from tq::Quantizer.
Quantizer& as_quantizer(torch::nn::Module& q) {
  auto* quantizer = dynamic_cast<Quantizer*>(&q);
  TQ_CHECK(quantizer != nullptr, "QConfig", q.name(), " is neither an observer nor a fake quantizer");
  return *quantizer;
}
}  // namespace

at::Tensor run_quantizer(torch::nn::Module& q, const at::Tensor& x) { return as_quantizer(q).forward(x); }
QParams quantizer_qparams(torch::nn::Module& q) { return as_quantizer(q).calculate_qparams(); }
QDType quantizer_dtype(torch::nn::Module& q) { return as_quantizer(q).dtype(); }
QScheme quantizer_qscheme(torch::nn::Module& q) { return as_quantizer(q).qscheme(); }
bool quantizer_is_dynamic(torch::nn::Module& q) { return as_quantizer(q).is_dynamic(); }
bool quantizer_has_observed(torch::nn::Module& q) { return as_quantizer(q).has_observed(); }
bool quantizer_full_range_uint8(torch::nn::Module& q) {
  const auto& quantizer = as_quantizer(q);
  const auto range = quantizer.quant_range();
  return quantizer.dtype() == QDType::QUInt8 && !quantizer.is_dynamic() && range &&
         range->quant_max - range->quant_min > 127;
}

bool is_fake_quantize(const torch::nn::Module& q) {
  return dynamic_cast<const fake_quant::FakeQuantizeBase*>(&q) != nullptr;
}

at::Tensor quantize_weight(torch::nn::Module& wq, const at::Tensor& weight, const std::string& who) {
  at::NoGradGuard no_grad;
  run_quantizer(wq, weight.detach());
  TQ_CHECK(quantizer_dtype(wq) == QDType::QInt8, who, "weights must be quantized to qint8, the qconfig gives ",
           to_string(quantizer_dtype(wq)));
  return kernels::int8::quantize_weight(weight, quantizer_qparams(wq), is_per_channel(quantizer_qscheme(wq)));
}

}  // namespace tq::nn
