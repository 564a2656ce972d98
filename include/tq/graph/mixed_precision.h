#pragma once
// Mixed precision with an accuracy target, in the manner of Intel Neural Compressor: start with
// every quantized layer at the most aggressive precision asked for, rank the layers by how much
// quantization hurts them, and move the most sensitive
// layer up one precision level (the last level may be float) until the model's metric is within
// the tolerance of the float model's, or no layer can move up. Each step re-calibrates and
// converts; the report says what was chosen and how many evaluations it took.
//
//   tq::graph::MixedPrecisionOptions o;
//   o.levels = {{"W4A8", w4}, {"W8A8", w8}, {"float", std::nullopt}};
//   o.max_drop = 0.5;   // in the metric's units (accuracy points)
//   auto r = tq::graph::search_mixed_precision(model, options, calibration, evaluate, o);
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/jit/api/module.h>

#include "tq/graph/graph_quantizer.h"

namespace tq::graph {

struct PrecisionLevel {
  std::string name;                   // "W4A8"
  std::optional<nn::QConfig> qconfig;  // nullopt: float
};

// How layers are ranked:
//   OutputSqnr: each layer's output SQNR (int8 against float) in the start model, lowest first;
//               no evaluation, but errors accumulate towards the output, so late layers rank high.
//   Metric:     the metric gained by moving that layer alone to the top level, highest first
//               (Intel Neural Compressor's fallback ranking); one evaluation per layer.
enum class SensitivityRanking { OutputSqnr, Metric };

struct MixedPrecisionOptions {
  std::vector<PrecisionLevel> levels;  // from the most aggressive up; at least one
  double max_drop = 1.0;               // tolerated metric drop from the float model's
  int64_t max_evaluations = 200;
  SensitivityRanking ranking = SensitivityRanking::OutputSqnr;
};

// Higher is better (accuracy); called with the float model first, then each candidate.
using EvaluateFn = std::function<double(torch::jit::Module& model)>;

struct MixedPrecisionResult {
  std::map<std::string, std::string> layer_levels;  // conv / linear (module path) -> level name
  // The groups that move together, most sensitive first: layers whose pattern ends in the same
  // module share its qconfig ("conv1+conv2" when both ReLUs are the parent's functional calls).
  std::vector<std::string> layers;
  double float_metric = 0, metric = 0;              // the float model's; the chosen model's
  bool met = false;                                 // metric >= float_metric - max_drop
  int64_t evaluations = 0;                          // the float model's included
  torch::jit::Module model;                         // the chosen int8 model
  struct Step {
    std::string moved;  // "" for the start
    std::string to;
    double metric;
  };
  std::vector<Step> steps;
  std::string to_string() const;
};

// `base` gives the patterns and the qconfig of everything that is not a weighted layer. When the
// tolerance cannot be met, the best configuration found is returned with met = false.
MixedPrecisionResult search_mixed_precision(const torch::jit::Module& model, const GraphQuantizeOptions& base,
                                            const std::vector<at::Tensor>& calibration, const EvaluateFn& evaluate,
                                            const MixedPrecisionOptions& options);

}  // namespace tq::graph
