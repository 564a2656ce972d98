#include "tq/nn/weighted.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include <sstream>

#include "tq/core/check.h"
#include "tq/fake_quant/learnable_fake_quantize.h"
#include "tq/observers/batch_range_reduction.h"
#include "tq/nn/observed_pass.h"

namespace tq::nn {

std::string to_string(QuantMode mode) {
  switch (mode) {
    case QuantMode::Float: return "float";
    case QuantMode::Observed: return "observed";
    case QuantMode::QAT: return "qat";
    case QuantMode::Quantized: return "quantized";
    case QuantMode::DynamicQuantized: return "dynamic";
    case QuantMode::Reference: return "reference";
  }
  return "?";
}

at::Tensor WeightedModule::forward(const at::Tensor& x) {
  switch (mode_) {
    case QuantMode::Float: {
      auto y = float_op(x, weight_, bias_);
      return relu_ ? at::relu(y) : y;
    }
    case QuantMode::Observed: {
      const ObservedPass* pass = current_observed_pass();
      const at::Tensor in = input_post_process_ ? observe_output(*input_post_process_, x) : x;
      at::Tensor weight = weight_, bias = bias_;
      if (pass != nullptr) {
        if (pass->on_input) pass->on_input(*this, in);
        if (pass->kind == ObservedPass::Kind::Simulated) {
          auto w = pass->weights.find(this);
          weight = w != pass->weights.end() ? w->second : weight_as_converted().dequantize();
          auto b = pass->biases.find(this);
          if (b != pass->biases.end()) bias = b->second;
        }
      }
      auto y = float_op(in, weight, bias);
      if (relu_) y = at::relu(y);
      return observe_output(*activation_post_process_, y);
    }
    case QuantMode::QAT:
      return run_quantizer(*activation_post_process_, qat_compute(x));
    case QuantMode::Quantized:
      if (wrap_io_ && !x.is_quantized()) {
        const auto xq = kernels::int8::quantize_activation(x, in_scale_.data_ptr<double>()[0],
                                                           in_zero_point_.data_ptr<int64_t>()[0]);
        return kernels::int8::dequantize(int8_op(xq, out_scale_value_, out_zero_point_value_));
      }
      return int8_op(x, out_scale_value_, out_zero_point_value_);
    case QuantMode::Reference: {
      // Simulated quantization: int8 weights dequantized, float op, output quantized and back.
      auto y = float_op(x.is_quantized() ? x.dequantize() : x, quantized_weight().dequantize(), bias_);
      if (relu_) y = at::relu(y);
      return at::fake_quantize_per_tensor_affine(y, out_scale_value_, out_zero_point_value_, 0, 255);
    }
    case QuantMode::DynamicQuantized: {
      TQ_CHECK(x.scalar_type() == at::kFloat, name(), "a dynamically quantized module takes float32 input, got ",
               x.scalar_type());
      auto y = fp16_ ? kernels::int8::linear_dynamic_fp16(x, packed_)
                     : kernels::int8::linear_dynamic(x, packed_, /*reduce_range=*/true);
      return relu_ ? at::relu(y) : y;
    }
  }
  return x;
}

at::Tensor WeightedModule::qat_compute(const at::Tensor& x) {
  TQ_CHECK(mode_ == QuantMode::QAT, name(), "needs a QAT module, this one is ", to_string(mode_));
  at::Tensor y;
  if (!qat_forward_override(x, y)) {
    const auto weight = observers::same_on_every_rank([&] { return run_quantizer(*weight_fake_quant_, weight_); });
    y = float_op(x, weight, bias_);
  }
  return relu_ ? at::relu(y) : y;
}

void WeightedModule::prepare(const QConfig& qconfig) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "prepare needs a float module, this one is ", to_string(mode_));
  auto act = qconfig.activation();
  TQ_CHECK(!quantizer_is_dynamic(*act), name(), "qconfig '", qconfig.name,
           "' is dynamic; use quantize_dynamic for it, not prepare");
  TQ_CHECK(!is_fake_quantize(*act), name(), "qconfig '", qconfig.name, "' holds fake quantizers; use prepare_qat");
  activation_post_process_ = register_module("activation_post_process", act);
  if (wrap_io_) input_post_process_ = register_module("input_post_process", qconfig.activation());
  qconfig_ = qconfig;
  mode_ = QuantMode::Observed;
}

void WeightedModule::unprepare() {
  if (mode_ != QuantMode::Observed && mode_ != QuantMode::QAT) return;
  drop_quantizers();
  if (input_post_process_) {
    unregister_module("input_post_process");
    input_post_process_.reset();
  }
  qconfig_.reset();
  mode_ = QuantMode::Float;
}

bool WeightedModule::add_quant_dequant() {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "add_quant_dequant goes before prepare");
  wrap_io_ = true;
  return true;
}

bool WeightedModule::prepare_qat(const QConfig& qconfig) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "prepare_qat needs a float module, this one is ", to_string(mode_));
  auto act = qconfig.activation();
  auto wfq = qconfig.weight();
  TQ_CHECK(is_fake_quantize(*act) && is_fake_quantize(*wfq), name(), "QAT needs fake quantizers in qconfig '",
           qconfig.name, "' (e.g. get_default_qat_qconfig)");
  // A per-channel LSQ quantizer made without its channel count learns one scale per output channel.
  if (auto* lsq = dynamic_cast<fake_quant::LearnableFakeQuantize*>(wfq.get()); lsq && is_per_channel(lsq->qscheme())) {
    const int64_t axis = lsq->ch_axis() < 0 ? lsq->ch_axis() + weight_.dim() : lsq->ch_axis();
    TQ_CHECK(axis >= 0 && axis < weight_.dim(), name(), "the weight quantizer's ch_axis ", lsq->ch_axis(),
             " is out of range for a ", weight_.dim(), "-d weight");
    lsq->set_channel_count(weight_.size(axis));
  }
  weight_fake_quant_ = register_module("weight_fake_quant", wfq);
  activation_post_process_ = register_module("activation_post_process", act);
  qconfig_ = qconfig;
  mode_ = QuantMode::QAT;
  return true;
}

void WeightedModule::quantize_weight(torch::nn::Module& wq) { install_weight(nn::quantize_weight(wq, weight_, name())); }

at::Tensor WeightedModule::weight_as_converted() const {
  TQ_CHECK(mode_ == QuantMode::Observed, name(), "needs an observed module, this one is ", to_string(mode_));
  if (learned_weight_.defined()) return learned_weight_;
  auto wobs = qconfig_->weight();
  return nn::quantize_weight(*wobs, weight_, name());
}

void WeightedModule::set_learned_weight(const at::Tensor& weight_q) {
  TQ_CHECK(mode_ == QuantMode::Observed, name(), "a learned weight needs an observed module, this one is ",
           to_string(mode_));
  TQ_CHECK(weight_q.is_quantized() && weight_q.scalar_type() == at::kQInt8 && weight_q.sizes() == weight_.sizes(), name(),
           "a learned weight must be qint8 shaped as the weight ", weight_.sizes(), ", got ", weight_q.scalar_type(), " ",
           weight_q.sizes());
  learned_weight_ = weight_q;
}

void WeightedModule::set_weight(const at::Tensor& weight) {
  TQ_CHECK(mode_ == QuantMode::Float || mode_ == QuantMode::Observed, name(), "the float weight of a ", to_string(mode_),
           " module cannot change");
  TQ_CHECK(weight.sizes() == weight_.sizes(), name(), "weight shape ", weight.sizes(), " differs from ", weight_.sizes());
  at::NoGradGuard no_grad;
  weight_.copy_(weight);
}

void WeightedModule::set_bias(const at::Tensor& bias) {
  TQ_CHECK(mode_ == QuantMode::Float || mode_ == QuantMode::Observed, name(), "the float bias of a ", to_string(mode_),
           " module cannot change");
  TQ_CHECK(bias_.defined(), name(), "has no bias");
  TQ_CHECK(bias.sizes() == bias_.sizes(), name(), "bias shape ", bias.sizes(), " differs from ", bias_.sizes());
  at::NoGradGuard no_grad;
  bias_.copy_(bias);
}

void WeightedModule::install_weight(const at::Tensor& wq_t) {
  auto parts = kernels::int8::split_quantized_weight(wq_t);
  weight_scale_ = register_buffer("weight_scale", parts.scales);
  weight_zero_point_ = register_buffer("weight_zero_point", parts.zero_points);
  weight_int8_ = register_buffer("weight_int8", parts.values);
  packed_ = prepack(wq_t, bias_.defined() ? c10::optional<at::Tensor>(bias_.detach()) : c10::nullopt);
  release_float_weight();
}

void WeightedModule::release_float_weight() {
  // The int8 copy replaces it: the float weight no longer takes memory or checkpoint space.
  at::NoGradGuard no_grad;
  weight_.set_data(at::empty({0}));
  weight_.set_requires_grad(false);
}

void WeightedModule::drop_quantizers() {
  if (activation_post_process_) unregister_module("activation_post_process");
  if (weight_fake_quant_) unregister_module("weight_fake_quant");
  activation_post_process_.reset();
  weight_fake_quant_.reset();
  learned_weight_.reset();
}

void WeightedModule::convert(const std::string& qualified_name) {
  const std::string& who = qualified_name.empty() ? name() : qualified_name;
  TQ_CHECK(mode_ == QuantMode::Observed || mode_ == QuantMode::QAT, who,
           "convert needs a prepared module (observed or QAT), this one is ", to_string(mode_));
  TQ_CHECK(quantizer_has_observed(*activation_post_process_), who,
           "was prepared but never calibrated: its activation observer saw no data");
  const auto act_qp = quantizer_qparams(*activation_post_process_);
  TQ_CHECK(quantizer_dtype(*activation_post_process_) == QDType::QUInt8, who,
           "activations must be quint8 for int8 execution, the qconfig gives ",
           to_string(quantizer_dtype(*activation_post_process_)));
  if (mode_ == QuantMode::QAT) {
    quantize_weight(*weight_fake_quant_);
  } else {
    install_weight(weight_as_converted());
  }
  out_scale_ = register_buffer("scale", at::full({1}, act_qp.scale.item<double>(), at::kDouble));
  out_zero_point_ = register_buffer("zero_point", at::full({1}, act_qp.zero_point.item<int64_t>(), at::kLong));
  out_scale_value_ = out_scale_.item<double>();
  out_zero_point_value_ = out_zero_point_.item<int64_t>();
  if (input_post_process_) {
    TQ_CHECK(quantizer_has_observed(*input_post_process_), who, "its input observer saw no data");
    const auto in_qp = quantizer_qparams(*input_post_process_);
    in_scale_ = register_buffer("input_scale", at::full({1}, in_qp.scale.item<double>(), at::kDouble));
    in_zero_point_ = register_buffer("input_zero_point", at::full({1}, in_qp.zero_point.item<int64_t>(), at::kLong));
    unregister_module("input_post_process");
    input_post_process_.reset();
  }
  drop_quantizers();
  mode_ = QuantMode::Quantized;
}

bool WeightedModule::convert_reference(const std::string& qualified_name) {
  convert(qualified_name);
  mode_ = QuantMode::Reference;
  return true;
}

Quantizable::InstallStep WeightedModule::plan_dynamic(const QConfig& qconfig) {
  if (!has_dynamic_form()) return {};
  TQ_CHECK(mode_ == QuantMode::Float, name(), "quantize_dynamic needs a float module, this one is ", to_string(mode_));
  auto wobs = qconfig.weight();
  if (quantizer_dtype(*wobs) == QDType::Float16) {
    auto packed = kernels::int8::prepack_linear_fp16(
        weight_.detach(), bias_.defined() ? c10::optional<at::Tensor>(bias_.detach()) : c10::nullopt);
    return [this, packed] {
      packed_ = packed;
      fp16_ = true;
      mode_ = QuantMode::DynamicQuantized;
    };
  }
  auto weight_q = nn::quantize_weight(*wobs, weight_, name());
  return [this, weight_q] {
    install_weight(weight_q);
    mode_ = QuantMode::DynamicQuantized;
  };
}

void WeightedModule::prepare_quantized_layout(bool dynamic) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "needs a float module to receive a quantized state, this one is ",
           to_string(mode_));
  TQ_CHECK(!dynamic || has_dynamic_form(), name(), "has no dynamically quantized form");
  weight_int8_ = register_buffer("weight_int8", at::zeros(weight_.sizes(), at::kChar));
  weight_scale_ = register_buffer("weight_scale", at::ones({1}, at::kDouble));
  weight_zero_point_ = register_buffer("weight_zero_point", at::zeros({1}, at::kLong));
  release_float_weight();
  if (dynamic) {
    mode_ = QuantMode::DynamicQuantized;
    return;
  }
  out_scale_ = register_buffer("scale", at::ones({1}, at::kDouble));
  out_zero_point_ = register_buffer("zero_point", at::zeros({1}, at::kLong));
  mode_ = QuantMode::Quantized;
}

std::vector<std::string> WeightedModule::resizable_buffers() const {
  return {"weight_scale", "weight_zero_point"};
}

at::Tensor WeightedModule::quantized_weight() const {
  TQ_CHECK(weight_int8_.defined(), name(), "is not quantized");
  return kernels::int8::make_quantized_weight(weight_int8_, weight_scale_, weight_zero_point_);
}

void WeightedModule::validate_state() const {
  if (mode_ != QuantMode::Quantized && mode_ != QuantMode::DynamicQuantized) return;
  TQ_CHECK(weight_scale_.numel() == 1 || weight_scale_.numel() == weight_int8_.size(0), name(), "weight_scale has ",
           weight_scale_.numel(), " values for ", weight_int8_.size(0), " output channels");
  TQ_CHECK(weight_zero_point_.sizes() == weight_scale_.sizes(), name(), "weight_zero_point shape ",
           weight_zero_point_.sizes(), " differs from weight_scale shape ", weight_scale_.sizes());
  TQ_CHECK(at::all(weight_scale_ > 0).item<bool>(), name(), "weight_scale must be positive");
  if (mode_ == QuantMode::Quantized) {
    TQ_CHECK(out_scale_.item<double>() > 0, name(), "scale must be positive, got ", out_scale_.item<double>());
    out_scale_value_ = out_scale_.item<double>();
    out_zero_point_value_ = out_zero_point_.item<int64_t>();
  }
  packed_ = prepack(quantized_weight(), bias_.defined() ? c10::optional<at::Tensor>(bias_.detach()) : c10::nullopt);
}

double WeightedModule::output_scale() const {
  TQ_CHECK(out_scale_.defined(), name(), "is not converted");
  return out_scale_.item<double>();
}
int64_t WeightedModule::output_zero_point() const {
  TQ_CHECK(out_zero_point_.defined(), name(), "is not converted");
  return out_zero_point_.item<int64_t>();
}

void WeightedModule::pretty_print(std::ostream& s) const {
  s << name() << "(" << describe() << (relu_ ? ", relu=fused" : "") << ", mode=" << to_string(mode_);
  if (mode_ == QuantMode::Quantized) {
    s << ", scale=" << out_scale_.item<double>() << ", zero_point=" << out_zero_point_.item<int64_t>()
      << ", weight=" << (weight_scale_.numel() > 1 ? "qint8 per_channel" : "qint8 per_tensor");
  } else if (mode_ == QuantMode::DynamicQuantized) {
    s << ", weight=" << (weight_scale_.numel() > 1 ? "qint8 per_channel" : "qint8 per_tensor");
  }
  s << ")";
}

}  // namespace tq::nn
