#include "tq/quant/adaround.h"

#include <ATen/ATen.h>

#include <chrono>

#include "eager_layers.h"
#include "tq/core/check.h"
#include "tq/nn/qconfig.h"

namespace tq::quant {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

ptq::AdaRoundReport adaround(torch::nn::Module& model, const ForwardFn& forward, const std::vector<at::Tensor>& data,
                             const ptq::AdaRoundOptions& o) {
  const char* op = "adaround";
  const auto start = Clock::now();
  o.validate();
  detail::EvalScope eval(model);
  detail::check_calibrated(model, op);
  const at::Tensor samples = detail::take_samples(data, o.num_samples(), op);
  TQ_CHECK(samples.size(0) >= o.batch_size(), op, "the data holds ", samples.size(0),
           " samples, fewer than one batch of ", o.batch_size());
  const int64_t chunk = data.front().size(0);
  ptq::AdaRoundReport report;
  report.samples = samples.size(0);
  std::vector<detail::EagerLayer> layers;
  for (auto& l : detail::observed_layers(model, forward, samples.narrow(0, 0, chunk), report.skipped)) {
    const std::string why = ptq::adaround_unsupported(*l.module->qconfig()->weight());
    if (why.empty()) {
      layers.push_back(std::move(l));
    } else {
      report.skipped.push_back(l.layer.name + ": " + why);
    }
  }

  // Learned weights go into the modules only once every layer is done.
  nn::ObservedPass float_pass, simulated;
  simulated.kind = nn::ObservedPass::Kind::Simulated;
  std::vector<at::Tensor> learned(layers.size());
  for (size_t k = 0; k < layers.size(); ++k) {
    const auto t0 = Clock::now();
    const auto& l = layers[k];
    const at::Tensor float_inputs = detail::capture_input(forward, samples, chunk, float_pass, *l.module);
    const at::Tensor targets = l.layer.forward(float_inputs);
    const at::Tensor inputs = detail::capture_input(forward, samples, chunk, simulated, *l.module);
    auto factory = l.module->qconfig()->weight;
    const auto r = ptq::adaround_layer(
        l.layer, [factory] { return std::dynamic_pointer_cast<observers::ObserverBase>(factory()); }, inputs, targets,
        o);
    simulated.weights[l.module] = r.rounded_weight;
    learned[k] = r.weight_q;
    report.layers.push_back({l.layer.name, l.type, l.layer.weight.numel(), r.changed, r.loss_nearest, r.loss_adaround,
                             seconds_since(t0)});
  }
  for (size_t k = 0; k < layers.size(); ++k) layers[k].module->set_learned_weight(learned[k]);
  report.seconds = seconds_since(start);
  return report;
}

}  // namespace tq::quant
