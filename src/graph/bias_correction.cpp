#include "tq/graph/bias_correction.h"

#include <ATen/ATen.h>

#include <chrono>

#include "tq/core/check.h"
#include "tq/nn/qconfig.h"
#include "tq/ptq/bias_correction.h"
#include "weighted_layers.h"

namespace tq::graph {

BiasCorrectionReport correct_bias(ObservedModel& observed, const std::vector<at::Tensor>& data,
                                  const BiasCorrectionOptions& o) {
  const char* op = "correct_bias";
  const auto start = std::chrono::steady_clock::now();
  TQ_CHECK(o.num_samples() >= 1, op, "num_samples must be at least 1, got ", o.num_samples());
  auto& impl = detail::impl_of(observed);
  const at::Tensor samples = detail::take_samples(impl, data, o.num_samples(), op);
  BiasCorrectionReport report;
  report.samples = samples.size(0);
  std::vector<detail::GraphLayer> layers;
  for (auto& c : detail::weighted_layers(impl, report.skipped)) {
    if (c.graph_bias.defined()) {
      layers.push_back(std::move(c));
    } else {
      report.skipped.push_back(c.layer.name + ": it has no bias");
    }
  }
  const auto qparams = detail::activation_qparams(impl);

  // The int8 weights convert() will use, dequantized.
  std::vector<at::Tensor> quantized(layers.size()), corrected(layers.size());
  for (size_t k = 0; k < layers.size(); ++k) {
    const auto& c = layers[k];
    auto it = impl.weight_overrides.find(c.info->match.root);
    if (it != impl.weight_overrides.end()) {
      quantized[k] = it->second.dequantize();
    } else {
      auto wq = c.info->qconfig->weight();
      quantized[k] = nn::quantize_weight(*wq, c.layer.weight, kind_of(c.node) + " in '" + c.layer.name + "'").dequantize();
    }
  }
  auto as_float = [&] {
    for (auto& c : layers) {
      c.graph_weight.copy_(c.layer.weight);
      c.graph_bias.copy_(c.layer.bias);
    }
  };
  try {
    for (size_t k = 0; k < layers.size(); ++k) {
      auto& c = layers[k];
      as_float();
      const at::Tensor float_inputs = detail::capture_values(impl, samples, c.input_index, nullptr, op);
      for (size_t j = 0; j < k; ++j) {
        layers[j].graph_weight.copy_(quantized[j]);
        layers[j].graph_bias.copy_(corrected[j]);
      }
      const at::Tensor quantized_inputs = detail::capture_values(impl, samples, c.input_index, &qparams, op);
      const auto shift = ptq::bias_correction_shift(c.layer, quantized[k], float_inputs, quantized_inputs);
      corrected[k] = c.layer.bias - shift;
      report.layers.push_back({c.layer.name, kind_of(c.node), shift.abs().mean().item<double>(),
                               shift.abs().max().item<double>()});
    }
  } catch (...) {
    as_float();
    throw;
  }
  as_float();
  for (size_t k = 0; k < layers.size(); ++k) layers[k].graph_bias.copy_(corrected[k]);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace tq::graph
