// What graph mode did to each node of a model (ObservedModel::summary): int8 or float and why,
// and the quantization points with their qparams.
#include <algorithm>
#include <map>
#include <sstream>
#include <string>

#include "observed_model_impl.h"
#include "smooth_quant.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/nn/qconfig.h"

namespace tq::graph {

Summary ObservedModel::summary() const {
  const auto& impl = *impl_;
  Summary s;
  s.equalized = impl.equalized;
  for (const auto& p : impl.points) {
    if (p.smoothing) s.smoothed.push_back(detail::describe_smoothed(impl, p));
  }
  if (impl.batches > 0) s.full_range_layers = detail::full_range_layers(impl);
  for (auto* n : impl.graph->nodes()) {
    const std::string k = kind_of(n);
    if (n->kind() == c10::prim::Constant || detail::is_observe_node_kind(k.c_str())) continue;
    SummaryEntry e;
    e.op = k;
    auto sc = impl.scopes.find(n);
    if (sc != impl.scopes.end()) e.module_path = sc->second.path;
    if (auto m = impl.match_of.find(n); m != impl.match_of.end()) {
      const auto& info = impl.matches[m->second];
      e.pattern = info.match.pattern->to_string();
      e.handler = info.handler->name();
      e.quantized = info.why_float.empty() && info.why_float_at_convert.empty();
      e.why_float = info.why_float.empty() ? info.why_float_at_convert : info.why_float;
      if (e.quantized && info.match.root == n && impl.batches > 0) {
        auto p = impl.point_of.find(n->output());
        if (p != impl.point_of.end() && nn::quantizer_has_observed(*impl.points[p->second].observer)) {
          e.has_qparams = true;
          e.qparams = detail::point_qparams(impl, impl.points[p->second]);
        }
      }
    } else if (auto r = impl.unmatched_reason.find(n); r != impl.unmatched_reason.end()) {
      e.why_float = r->second;
    } else if (!n->blocks().empty()) {
      e.why_float = "control flow: its blocks stay float";
    }
    s.nodes.push_back(std::move(e));
  }
  if (impl.batches > 0) {
    for (const auto& p : impl.points) {
      if (*p.saw_non_float || !nn::quantizer_has_observed(*p.observer)) continue;
      Summary::Point pt;
      pt.kind = p.kind;
      const bool is_input = p.value->node()->kind() == c10::prim::Param;
      pt.op = is_input ? "input" : kind_of(p.value->node());
      if (!is_input) {
        // An output is named after the pattern's deepest node (conv of conv+bn+relu), as FX names it.
        const Node* named = p.value->node();
        if (auto m = impl.match_of.find(named); m != impl.match_of.end() && p.kind == "output") {
          named = impl.matches[m->second].match.nodes.back();
          pt.op = kind_of(named);
        }
        auto sc = impl.scopes.find(named);
        if (sc != impl.scopes.end()) pt.module_path = sc->second.path;
      }
      pt.consumer = p.consumer;
      pt.qparams = detail::point_qparams(impl, p);
      s.points.push_back(pt);
    }
  }
  return s;
}

int Summary::quantized_count() const {
  return static_cast<int>(std::count_if(nodes.begin(), nodes.end(), [](const SummaryEntry& e) { return e.quantized; }));
}

std::string Summary::to_string() const {
  std::ostringstream s;
  std::map<std::string, int> float_ops;
  for (const auto& e : nodes) {
    if (e.quantized) continue;
    float_ops[e.op + (e.why_float.empty() ? "" : " (" + e.why_float + ")")]++;
  }
  s << quantized_count() << " of " << nodes.size() << " nodes quantized, " << points.size()
    << " quantization points\n";
  for (const auto& e : nodes) {
    if (!e.quantized || !e.has_qparams) continue;
    s << "  int8  " << e.op << "  " << (e.module_path.empty() ? "<top>" : e.module_path) << "  [" << e.handler
      << "]  scale=" << e.qparams.scale << " zero_point=" << e.qparams.zero_point << "\n";
  }
  for (const auto& [op, count] : float_ops) s << "  float " << op << " x" << count << "\n";
  if (!full_range_layers.empty()) {
    s << "activations: full range [0, 255] into " << full_range_layers.size()
      << " int8 convolution / linear layer(s): for CPUs with VNNI (they saturate without it)\n";
  } else if (quantized_count() > 0) {
    s << "activations: no int8 convolution / linear takes full-range activations (safe on every CPU)\n";
  }
  if (!equalized.empty()) s << "cross-layer equalization: " << equalized.size() << " pairs\n";
  if (!smoothed.empty()) s << "SmoothQuant: " << smoothed.size() << " Linear input(s) rescaled\n";
  return s.str();
}

}  // namespace tq::graph
