#include "tq/quant/equalization.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include <map>
#include <set>
#include <sstream>

#include "eager_layers.h"
#include "tq/core/check.h"
#include "tq/ptq/equalization.h"

namespace tq::quant {

EqualizationReport equalize(torch::nn::Module& model, const std::vector<std::vector<std::string>>& chains) {
  const char* op = "equalize";
  const auto modules = model.named_modules();
  // Copies of the layers: the modules change only once every pair is done.
  std::map<std::string, std::pair<nn::WeightedModule*, ptq::WeightedLayer>> layers;
  auto layer = [&](const std::string& name) -> ptq::WeightedLayer* {
    auto it = layers.find(name);
    if (it != layers.end()) return &it->second.second;
    TQ_CHECK(modules.contains(name), op, "no module named '", name, "'");
    auto* m = dynamic_cast<nn::WeightedModule*>(modules[name].get());
    TQ_CHECK(m != nullptr, op, "'", name, "' is a ", modules[name]->name(), ", not a Linear or Conv module");
    TQ_CHECK(m->mode() == nn::QuantMode::Float, op, "'", name, "' is ", nn::to_string(m->mode()),
             ": equalize the float model, before prepare");
    std::string why;
    auto l = detail::describe(*m, name, why);
    TQ_CHECK(l.has_value(), op, "'", name, "': ", why);
    l->weight = l->weight.detach().clone();
    if (l->bias.defined()) l->bias = l->bias.detach().clone();
    return &layers.emplace(name, std::make_pair(m, std::move(*l))).first->second.second;
  };
  EqualizationReport report;
  std::vector<std::pair<ptq::WeightedLayer*, ptq::WeightedLayer*>> pairs;
  std::set<std::string> firsts;
  for (const auto& chain : chains) {
    TQ_CHECK(chain.size() >= 2, op, "a chain names at least two layers, got ", chain.size());
    for (size_t i = 0; i + 1 < chain.size(); ++i) {
      TQ_CHECK(firsts.insert(chain[i]).second, op, "'", chain[i],
               "' feeds two equalized layers; its output channels can take only one scale");
      ptq::WeightedLayer* first = layer(chain[i]);
      pairs.emplace_back(first, layer(chain[i + 1]));
      report.pairs.push_back(chain[i] + " -> " + chain[i + 1]);
    }
  }
  {
    at::NoGradGuard no_grad;
    report.sweeps = ptq::equalize_pairs(pairs);
  }
  for (auto& [name, entry] : layers) {
    auto& [m, l] = entry;
    m->set_weight(l.weight);
    if (l.bias.defined()) m->set_bias(l.bias);
  }
  return report;
}

std::string EqualizationReport::to_string() const {
  std::ostringstream s;
  s << "equalized " << pairs.size() << " pair(s) in " << sweeps << " sweep(s)";
  for (const auto& p : pairs) s << "\n  " << p;
  return s.str();
}

}  // namespace tq::quant
