#include "tq/quant/bias_correction.h"

#include <ATen/ATen.h>

#include <chrono>

#include "eager_layers.h"
#include "tq/core/check.h"

namespace tq::quant {

ptq::BiasCorrectionReport correct_bias(torch::nn::Module& model, const ForwardFn& forward,
                                       const std::vector<at::Tensor>& data, const ptq::BiasCorrectionOptions& o) {
  const char* op = "correct_bias";
  const auto start = std::chrono::steady_clock::now();
  TQ_CHECK(o.num_samples() >= 1, op, "num_samples must be at least 1, got ", o.num_samples());
  detail::EvalScope eval(model);
  detail::check_calibrated(model, op);
  const at::Tensor samples = detail::take_samples(data, o.num_samples(), op);
  const int64_t chunk = data.front().size(0);
  ptq::BiasCorrectionReport report;
  report.samples = samples.size(0);
  std::vector<detail::EagerLayer> layers;
  for (auto& l : detail::observed_layers(model, forward, samples.narrow(0, 0, std::min(chunk, samples.size(0))),
                                         report.skipped)) {
    if (l.layer.bias.defined()) {
      layers.push_back(std::move(l));
    } else {
      report.skipped.push_back(l.layer.name + ": it has no bias");
    }
  }

  // Corrected biases go into the modules only once every layer is done.
  nn::ObservedPass float_pass, simulated;
  simulated.kind = nn::ObservedPass::Kind::Simulated;
  std::vector<at::Tensor> corrected(layers.size());
  for (size_t k = 0; k < layers.size(); ++k) {
    const auto& l = layers[k];
    const at::Tensor float_inputs = detail::capture_input(forward, samples, chunk, float_pass, *l.module);
    const at::Tensor quantized_inputs = detail::capture_input(forward, samples, chunk, simulated, *l.module);
    const at::Tensor weight = l.module->weight_as_converted().dequantize();
    const auto shift = ptq::bias_correction_shift(l.layer, weight, float_inputs, quantized_inputs);
    corrected[k] = l.layer.bias - shift;
    simulated.biases[l.module] = corrected[k];
    report.layers.push_back(
        {l.layer.name, l.type, shift.abs().mean().item<double>(), shift.abs().max().item<double>()});
  }
  for (size_t k = 0; k < layers.size(); ++k) layers[k].module->set_bias(corrected[k]);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace tq::quant
