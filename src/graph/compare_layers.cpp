// compare_layers: a numeric-suite tool, SQNR of each int8 layer's output against the float
// model's value at the same point, on the same inputs.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "observe_op.h"
#include "observed_model_impl.h"
#include "tq/graph/graph_quantizer.h"

namespace tq::graph {
namespace {

// A point's values over every input, flattened: SQNR needs no shape, and a point may hold
// zero-dimensional values (a transformer's scalar arithmetic), which at::cat refuses.
at::Tensor flat_cat(const std::vector<at::Tensor>& values) {
  std::vector<at::Tensor> flat;
  flat.reserve(values.size());
  for (const auto& v : values) flat.push_back(v.reshape({-1}));
  return at::cat(flat);
}

}  // namespace

std::vector<LayerComparison> compare_layers(const torch::jit::Module& float_model, const torch::jit::Module& int8_model,
                                            const GraphQuantizeOptions& options, const std::vector<at::Tensor>& inputs) {
  at::NoGradGuard no_grad;
  // Float side: the observed model records the values at its quantization points.
  auto observed = prepare(float_model, options);
  auto& impl = detail::impl_of(observed);
  impl.capture->active = true;
  impl.capture->values.clear();
  auto fm = impl.module;
  for (const auto& x : inputs) fm.forward({x});
  impl.capture->active = false;
  std::map<std::string, at::Tensor> float_values;
  std::map<std::string, int> float_count;
  for (size_t i = 0; i < impl.points.size(); ++i) {
    const auto& p = impl.points[i];
    if (p.kind != "output" || !impl.capture->values.count(i)) continue;
    auto m = impl.match_of.find(p.value->node());
    if (m == impl.match_of.end()) continue;
    const auto name = detail::layer_value_name(impl.scopes.at(impl.matches[m->second].match.nodes.back()).path);
    float_count[name]++;
    float_values[name] = flat_cat(impl.capture->values[i]);
  }
  impl.capture->values.clear();
  // Int8 side: record every value tq named after its layer.
  auto qm = int8_model.clone();
  auto g = qm.get_method("forward").graph();
  std::map<std::string, std::vector<at::Tensor>> int8_values;
  std::map<std::string, int> int8_count;
  std::vector<int64_t> slots;
  std::vector<std::pair<Value*, std::string>> named;
  for (auto* n : g->nodes()) {
    for (auto* v : n->outputs()) {
      if (v->debugNameBase().rfind(detail::kLayerPrefix, 0) == 0) named.emplace_back(v, v->debugNameBase());
    }
  }
  for (auto& [v, name] : named) {
    int8_count[name]++;
    auto* sink = &int8_values[name];
    slots.push_back(detail::register_observer_slot(
        [sink](const at::Tensor& x) { sink->push_back(x.is_quantized() ? x.dequantize() : x.detach().clone()); }));
    detail::insert_observe(*g, v, slots.back());
  }
  try {
    for (const auto& x : inputs) qm.forward({x});
  } catch (...) {
    for (auto s : slots) detail::release_observer_slot(s);
    throw;
  }
  for (auto s : slots) detail::release_observer_slot(s);
  std::vector<LayerComparison> out;
  for (const auto& [name, ref] : float_values) {
    if (float_count[name] != 1 || int8_count[name] != 1 || int8_values[name].empty()) continue;
    const auto q = flat_cat(int8_values[name]);
    if (!q.sizes().equals(ref.sizes())) continue;
    const double signal = ref.pow(2).sum().item<double>();
    const double noise = (ref - q).pow(2).sum().item<double>();
    std::string layer = name.substr(std::string(detail::kLayerPrefix).size());
    for (size_t k; (k = layer.find("__")) != std::string::npos;) layer.replace(k, 2, ".");
    out.push_back({layer, 10.0 * std::log10(signal / std::max(noise, 1e-30))});
  }
  return out;
}

}  // namespace tq::graph
