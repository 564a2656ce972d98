#pragma once
// QConfig: how to observe (or fake-quantize) a module's activations and weights, as PyTorch's
// QConfig(activation=..., weight=...). Each side makes a fresh observer or fake quantizer per use.
#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <string>

#include "tq/fake_quant/fake_quantize.h"
#include "tq/observers/observer_base.h"

namespace tq::nn {

// Makes an observer (PTQ) or a fake quantizer (QAT).
class QuantizerFactory {
 public:
  QuantizerFactory() = default;
  QuantizerFactory(observers::ObserverFactory f);         // NOLINT: implicit, like PyTorch's with_args
  QuantizerFactory(fake_quant::FakeQuantizeFactory f);    // NOLINT
  std::shared_ptr<torch::nn::Module> operator()() const;
  explicit operator bool() const { return static_cast<bool>(make_); }

 private:
  std::function<std::shared_ptr<torch::nn::Module>()> make_;
};

struct QConfig {
  QuantizerFactory activation;
  QuantizerFactory weight;
  std::string name;  // shown in summaries, e.g. "onednn"
};

// What tq needs from an observer or fake quantizer, whichever it is.
at::Tensor run_quantizer(torch::nn::Module& q, const at::Tensor& x);
QParams quantizer_qparams(torch::nn::Module& q);
QDType quantizer_dtype(torch::nn::Module& q);
QScheme quantizer_qscheme(torch::nn::Module& q);
bool quantizer_is_dynamic(torch::nn::Module& q);
bool is_fake_quantize(const torch::nn::Module& q);
// Runs the weight observer (or fake quantizer) on `weight` and returns the qint8 weight the int8
// engines take (tq::kernels::int8::quantize_weight). `who` names the layer in errors.
at::Tensor quantize_weight(torch::nn::Module& weight_quantizer, const at::Tensor& weight, const std::string& who);
// True once the observer has seen data (min/max or histogram set).
bool quantizer_has_observed(torch::nn::Module& q);
// True for a quint8 quantizer on more than [0, 127]: full-range activations, which saturate in x86
// int8 kernels without VNNI (tq/kernels/int8_saturation.h).
bool quantizer_full_range_uint8(torch::nn::Module& q);

}  // namespace tq::nn
