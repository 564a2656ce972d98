#include "tq/nn/qconfig.h"

#include <ATen/ATen.h>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/simple_observers.h"

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
observers::ObserverBase* as_observer(torch::nn::Module& q) { return dynamic_cast<observers::ObserverBase*>(&q); }
fake_quant::FakeQuantizeBase* as_fake_quant(torch::nn::Module& q) { return dynamic_cast<fake_quant::FakeQuantizeBase*>(&q); }
fake_quant::FakeQuantize* as_fq_module(torch::nn::Module& q) { return dynamic_cast<fake_quant::FakeQuantize*>(&q); }
[[noreturn]] void unknown(const torch::nn::Module& q) {
  TQ_CHECK(false, "QConfig", q.name(), " is neither an observer nor a fake quantizer");
}
}  // namespace

at::Tensor run_quantizer(torch::nn::Module& q, const at::Tensor& x) {
  if (auto* o = as_observer(q)) return o->forward(x);
  if (auto* f = as_fake_quant(q)) return f->forward(x);
  unknown(q);
}

QParams quantizer_qparams(torch::nn::Module& q) {
  if (auto* o = as_observer(q)) return o->calculate_qparams();
  if (auto* f = as_fake_quant(q)) return f->calculate_qparams();
  unknown(q);
}

QDType quantizer_dtype(torch::nn::Module& q) {
  if (auto* o = as_observer(q)) return o->dtype();
  if (auto* f = as_fq_module(q)) return f->dtype();
  if (as_fake_quant(q)) return QDType::QUInt8;  // learnable quantizers emulate 8-bit
  unknown(q);
}

QScheme quantizer_qscheme(torch::nn::Module& q) {
  if (auto* u = dynamic_cast<observers::UniformQuantizationObserverBase*>(&q)) return u->qscheme();
  if (auto* f = dynamic_cast<observers::FixedQParamsObserver*>(&q)) return f->qscheme();
  if (auto* f = as_fq_module(q)) return f->qscheme();
  return QScheme::PerTensorAffine;
}

bool quantizer_is_dynamic(torch::nn::Module& q) {
  if (auto* o = as_observer(q)) return o->is_dynamic();
  if (auto* f = as_fq_module(q)) return f->is_dynamic();
  return false;
}

bool is_fake_quantize(const torch::nn::Module& q) {
  return dynamic_cast<const fake_quant::FakeQuantizeBase*>(&q) != nullptr;
}

bool quantizer_has_observed(torch::nn::Module& q) {
  torch::nn::Module* target = &q;
  if (auto* f = as_fq_module(q)) target = f->observer().get();
  for (const auto& b : target->named_buffers(false)) {
    if (b.key() == "min_val") {
      const auto& t = b.value();
      return t.numel() > 0 && std::isfinite(t.flatten()[0].item<float>());
    }
  }
  return true;  // fixed-qparams and learnable quantizers always have qparams
}

at::Tensor quantize_weight(torch::nn::Module& wq, const at::Tensor& weight, const std::string& who) {
  at::NoGradGuard no_grad;
  run_quantizer(wq, weight.detach());
  TQ_CHECK(quantizer_dtype(wq) == QDType::QInt8, who, "weights must be quantized to qint8, the qconfig gives ",
           to_string(quantizer_dtype(wq)));
  return kernels::int8::quantize_weight(weight, quantizer_qparams(wq), is_per_channel(quantizer_qscheme(wq)));
}

}  // namespace tq::nn
