#pragma once
// Which QConfig each module gets: by qualified name, then by module type name ("Linear",
// "Conv2d", ...), then its parent's, then the global one (PyTorch's qconfig_dict / QConfigMapping),
// and the per-backend defaults of torch/ao/quantization/qconfig.py.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tq/nn/qconfig.h"

namespace tq::quant {

class QConfigMapping {
 public:
  QConfigMapping& set_global(nn::QConfig qconfig);
  QConfigMapping& set_object_type(std::string module_type, nn::QConfig qconfig);
  QConfigMapping& set_module_name(std::string qualified_name, nn::QConfig qconfig);
  // Removes quantization from a module (and, by propagation, its children).
  QConfigMapping& set_module_name_none(std::string qualified_name);
  // Removes quantization from every module of a type (or, in graph mode, every op: "add").
  QConfigMapping& set_object_type_none(std::string type);

  // The qconfig for a module, given its parent's (already resolved) one.
  std::optional<nn::QConfig> resolve(const std::string& qualified_name, const std::string& type_name,
                                     const std::optional<nn::QConfig>& parent) const;
  const std::optional<nn::QConfig>& global() const { return global_; }
  const std::vector<std::pair<std::string, std::optional<nn::QConfig>>>& object_types() const { return by_type_; }
  const std::vector<std::pair<std::string, std::optional<nn::QConfig>>>& module_names() const { return by_name_; }

 private:
  std::optional<nn::QConfig> global_;
  std::vector<std::pair<std::string, std::optional<nn::QConfig>>> by_type_;
  std::vector<std::pair<std::string, std::optional<nn::QConfig>>> by_name_;
};

// Backends: "x86" / "fbgemm" (activations reduce_range, per-channel weights), "qnnpack"
// (per-tensor weights), "onednn" (per-channel weights, full-range activations). Throws on others.
// x86 and fbgemm quantize activations on 7 bits (reduce_range): their int8 kernels would
// otherwise overflow 16-bit intermediate sums. qnnpack and onednn use the full range, which
// saturates on x86 CPUs without VNNI (tq/kernels/int8_saturation.h): as PyTorch does,
// get_default_qconfig("onednn") and get_default_qat_qconfig("onednn") warn on such a machine.
bool backend_reduces_range(const std::string& backend);
nn::QConfig get_default_qconfig(const std::string& backend = "x86");
nn::QConfig get_default_qat_qconfig(const std::string& backend = "x86");
// The backend's default QConfig (HistogramObserver activations) with the activation range chosen
// by the caller rather than by the backend; no warning.
nn::QConfig default_qconfig(const std::string& backend, bool reduce_range);
// Static PTQ with MinMax activation observers (cheaper calibration than histograms).
nn::QConfig minmax_qconfig(const std::string& backend = "x86");
// Dynamic quantization: int8 weights, activations quantized at run time.
nn::QConfig default_dynamic_qconfig();
nn::QConfig per_channel_dynamic_qconfig();
// One activation scale per token (each row of the input's last dimension, symmetric int8, chosen
// at run time) and per-channel symmetric int8 weights: torchao's int8 dynamic-activation / int8
// weight configuration. For transformers, whose activations have outlier channels that one scale
// per tensor cannot hold. Runs tq's own operator (tq/kernels/int8.h).
nn::QConfig per_token_dynamic_qconfig();
// True for a qconfig whose activation is per_token_dynamic_qconfig's.
bool is_per_token_dynamic(const nn::QConfig& qconfig);
// float16 weights for dynamic Linear (needs the fbgemm / x86 engine).
nn::QConfig float16_dynamic_qconfig();
// Weight-only Linear: float activations, weights in 4 or 8 bits with one scale and zero point per
// output channel and group of `group_size` input features (GroupwiseWeightObserver; GPTQ's and
// torchao's int4 weight-only layout), run by tq's operator tq::linear_weight_only. Graph mode,
// with GraphQuantizeOptions::dynamic()'s patterns.
nn::QConfig weight_only_qconfig(int64_t bits = 4, int64_t group_size = 128);
// The same layout with GPTQ's weights (tq/ptq/gptq.h): calibrate the prepared model on data like
// the model's (each layer needs at least as many input rows as it has input features), then
// convert runs GPTQ on each layer with the Hessian of the inputs it saw. Act order (with static
// groups) by default: it costs nothing at run time and did better on MiniLM (docs/ACCURACY.md).
nn::QConfig weight_only_gptq_qconfig(int64_t bits = 4, int64_t group_size = 128, double damp = 0.01,
                                     bool act_order = true);
// True for a qconfig whose weight is weight_only_qconfig's or weight_only_gptq_qconfig's.
bool is_weight_only(const nn::QConfig& qconfig);
// Weight-only quantization of embeddings: rows in 8 bits (or 4) with per-row float qparams.
nn::QConfig float_qparams_weight_only_qconfig();
nn::QConfig float_qparams_weight_only_qconfig_4bit();

}  // namespace tq::quant
