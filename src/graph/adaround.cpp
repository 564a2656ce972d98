#include "tq/graph/adaround.h"

#include <ATen/ATen.h>

#include <chrono>

#include "weighted_layers.h"
#include "tq/core/check.h"
#include "tq/core/error_message.h"

namespace tq::graph {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

AdaRoundReport adaround(ObservedModel& observed, const std::vector<at::Tensor>& data, const ptq::AdaRoundOptions& o) {
  const char* op = "adaround";
  const auto start = Clock::now();
  o.validate();
  auto& impl = detail::impl_of(observed);
  const at::Tensor samples = detail::take_samples(impl, data, o.num_samples(), op);
  TQ_CHECK(samples.size(0) >= o.batch_size(), op, "the data holds ", samples.size(0),
           " samples, fewer than one batch of ", o.batch_size());
  AdaRoundReport report;
  report.samples = samples.size(0);
  std::vector<detail::GraphLayer> layers;
  for (auto& c : detail::weighted_layers(impl, report.skipped)) {
    const std::string why = ptq::adaround_unsupported(*c.info->qconfig->weight());
    if (why.empty()) {
      layers.push_back(std::move(c));
    } else {
      report.skipped.push_back(c.layer.name + ": " + why);
    }
  }
  const auto qparams = detail::activation_qparams(impl);

  // Earlier layers' weights are rounded in the frozen graph while inputs are simulated; the float
  // ones come back whatever happens.
  std::unordered_map<const Node*, at::Tensor> learned;
  std::vector<at::Tensor> rounded(layers.size());
  auto restore = [&] {
    for (auto& c : layers) c.graph_weight.copy_(c.layer.weight);
  };
  try {
    for (size_t k = 0; k < layers.size(); ++k) {
      const auto t0 = Clock::now();
      auto& c = layers[k];
      restore();
      const at::Tensor targets = detail::capture_values(impl, samples, c.output_index, nullptr, op);
      for (size_t j = 0; j < k; ++j) layers[j].graph_weight.copy_(rounded[j]);
      const at::Tensor inputs = detail::capture_values(impl, samples, c.input_index, &qparams, op);
      auto factory = c.info->qconfig->weight;
      const auto r = ptq::adaround_layer(
          c.layer, [factory] { return std::dynamic_pointer_cast<observers::ObserverBase>(factory()); }, inputs,
          targets, o);
      rounded[k] = r.rounded_weight;
      learned[c.info->match.root] = r.weight_q;
      report.layers.push_back({c.layer.name, kind_of(c.node), c.layer.weight.numel(), r.changed, r.loss_nearest,
                               r.loss_adaround, seconds_since(t0)});
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  impl.weight_overrides = std::move(learned);
  report.seconds = seconds_since(start);
  return report;
}

}  // namespace tq::graph
