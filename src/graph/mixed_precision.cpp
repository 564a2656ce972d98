#include "tq/graph/mixed_precision.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "tq/core/check.h"
#include "tq/core/error_message.h"
#include "weighted_layers.h"

namespace tq::graph {
namespace {

const char* const kOp = "search_mixed_precision";

struct Candidate {
  torch::jit::Module model;
  double metric;
};

}  // namespace

MixedPrecisionResult search_mixed_precision(const torch::jit::Module& model, const GraphQuantizeOptions& base,
                                            const std::vector<at::Tensor>& calibration, const EvaluateFn& evaluate,
                                            const MixedPrecisionOptions& o) {
  TQ_CHECK(!o.levels.empty(), kOp, "no precision levels given");
  TQ_CHECK(std::isfinite(o.max_drop) && o.max_drop >= 0, kOp, "max_drop must be finite and >= 0, got ", o.max_drop);
  TQ_CHECK(o.max_evaluations >= 2, kOp, "max_evaluations must be at least 2, got ", o.max_evaluations);
  TQ_CHECK(!calibration.empty(), kOp, "no calibration batch given");
  TQ_CHECK(static_cast<bool>(evaluate), kOp, "no evaluation function given");
  MixedPrecisionResult r;
  auto run_eval = [&](torch::jit::Module& m, const std::string& what) {
    double metric;
    try {
      metric = evaluate(m);
    } catch (const std::exception& e) {
      TQ_FAIL(kOp, "the evaluation function failed on ", what, ": ", error_message(e));
    }
    TQ_CHECK(std::isfinite(metric), kOp, "the evaluation function returned ", metric, " for ", what);
    ++r.evaluations;
    return metric;
  };
  auto float_model = model.clone();
  float_model.eval();
  r.float_metric = run_eval(float_model, "the float model");

  // The weighted layers, by the module path their qconfig is looked up under (the match root's).
  auto probe = prepare(model, base);
  std::vector<std::string> skipped;
  std::vector<std::string> roots;
  // Layers whose matches end in the same module (a functional ReLU in the parent's forward) share
  // a qconfig and move together: conv_path names the group ("conv1+conv2").
  std::map<std::string, std::string> conv_path;
  std::map<std::string, std::vector<std::string>> members;
  for (const auto& l : detail::weighted_layers(detail::impl_of(probe), skipped)) {
    const std::string root = l.info->match.module_path;
    if (std::find(roots.begin(), roots.end(), root) == roots.end()) roots.push_back(root);
    members[root].push_back(l.layer.name);
    conv_path[root] += (conv_path[root].empty() ? "" : "+") + l.layer.name;
  }
  TQ_CHECK(!roots.empty(), kOp, "the model has no quantized convolution or linear layer to choose a precision for");
  std::map<std::string, size_t> level;
  for (const auto& root : roots) level[root] = 0;

  // `base` with each group's qconfig at its current level.
  auto options_at_levels = [&]() {
    GraphQuantizeOptions options = base;
    for (const auto& root : roots) {
      const auto& q = o.levels[level[root]].qconfig;
      q ? (void)options.mapping.set_module_name(root, *q) : (void)options.mapping.set_module_name_none(root);
    }
    return options;
  };
  auto build = [&]() { return quantize(model, options_at_levels(), calibration); };
  auto describe = [&]() {
    std::ostringstream s;
    for (const auto& root : roots) s << (s.tellp() ? ", " : "") << conv_path[root] << "=" << o.levels[level[root]].name;
    return s.str();
  };
  Candidate best{build(), 0};
  best.metric = run_eval(best.model, "the start configuration");
  auto best_levels = level;
  r.steps.push_back({"", o.levels[0].name, best.metric});

  const Candidate start = best;
  // Sensitivity, most sensitive first (stable: equal scores keep graph order).
  std::vector<std::pair<double, std::string>> ranked;
  if (o.ranking == SensitivityRanking::Metric) {
    // The metric each group gains alone at the top level (negated, so that ascending = most gain).
    for (const auto& root : roots) {
      if (r.evaluations >= o.max_evaluations) break;
      level[root] = o.levels.size() - 1;
      Candidate alone{build(), 0};
      alone.metric = run_eval(alone.model, conv_path[root] + " alone at " + o.levels.back().name);
      r.steps.push_back({conv_path[root] + " alone", o.levels.back().name, alone.metric});
      if (alone.metric > best.metric) {
        best = alone;
        best_levels = level;
      }
      level[root] = 0;
      ranked.emplace_back(-(alone.metric - start.metric), root);
    }
    for (const auto& root : roots) {
      const bool ranked_already = std::any_of(ranked.begin(), ranked.end(), [&](const auto& p) { return p.second == root; });
      if (!ranked_already) ranked.emplace_back(0.0, root);  // out of evaluations: unranked, graph order
    }
    std::stable_sort(ranked.begin(), ranked.end());
  } else {
    std::map<std::string, double> sqnr;
    for (const auto& c : compare_layers(model, best.model, options_at_levels(), {calibration.front()})) {
      sqnr[c.layer] = c.sqnr_db;
    }
    for (const auto& root : roots) {
      double lowest = 1e9;
      for (const auto& layer : members[root]) {
        if (auto it = sqnr.find(layer); it != sqnr.end()) lowest = std::min(lowest, it->second);
      }
      ranked.emplace_back(lowest, root);
    }
    std::stable_sort(ranked.begin(), ranked.end());
  }
  for (const auto& [s, root] : ranked) r.layers.push_back(conv_path[root]);

  Candidate current = start;
  // Most sensitive first: each layer goes up one level per step, in rank order, round after round
  // (not at all when one layer alone at the top level already met the tolerance while ranking).
  bool moved = best.metric < r.float_metric - o.max_drop;
  while (current.metric < r.float_metric - o.max_drop && moved && r.evaluations < o.max_evaluations) {
    moved = false;
    for (const auto& [s, root] : ranked) {
      if (current.metric >= r.float_metric - o.max_drop || r.evaluations >= o.max_evaluations) break;
      if (level[root] + 1 >= o.levels.size()) continue;
      ++level[root];
      moved = true;
      current.model = build();
      current.metric = run_eval(current.model, describe());
      r.steps.push_back({conv_path[root], o.levels[level[root]].name, current.metric});
      if (current.metric > best.metric) {
        best = current;
        best_levels = level;
      }
    }
  }
  if (current.metric >= r.float_metric - o.max_drop) {
    best = current;
    best_levels = level;
  }
  r.metric = best.metric;
  r.model = best.model;
  r.met = best.metric >= r.float_metric - o.max_drop;
  for (const auto& root : roots) {
    for (const auto& layer : members[root]) r.layer_levels[layer] = o.levels[best_levels[root]].name;
  }
  return r;
}

std::string MixedPrecisionResult::to_string() const {
  std::ostringstream s;
  s << std::fixed << std::setprecision(4) << "mixed precision: float " << float_metric << ", chosen " << metric
    << (met ? " (within tolerance)" : " (tolerance not met: best found)") << ", " << evaluations << " evaluations\n";
  for (const auto& st : steps) {
    s << "  " << (st.moved.empty() ? "start: every layer" : st.moved) << " -> " << st.to << ": " << st.metric << "\n";
  }
  std::map<std::string, int> per_level;
  for (const auto& [layer, lvl] : layer_levels) per_level[lvl]++;
  s << "  layers:";
  for (const auto& [lvl, n] : per_level) s << " " << n << " at " << lvl;
  s << "\n";
  return s.str();
}

}  // namespace tq::graph
