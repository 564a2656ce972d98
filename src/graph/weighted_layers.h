#pragma once
// What graph-mode post-training algorithms (AdaRound, bias correction) share: the quantized
// convolution / linear layers of an observed model, and their inputs and outputs captured from
// the model run float or as the int8 model would compute it. Not installed.
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "observed_model_impl.h"
#include "tq/ptq/weighted_layer.h"

namespace tq::graph::detail {

struct GraphLayer {
  const ObservedModel::Impl::MatchInfo* info = nullptr;
  const Node* node = nullptr;
  ptq::WeightedLayer layer;             // float weight and bias (copies)
  at::Tensor graph_weight, graph_bias;  // the constants the frozen graph computes with (bias may be undefined)
  size_t input_index = 0, output_index = 0;  // capture indices (points or taps)
};

// The quantized conv / linear layers (+ fused ReLU) in graph order; the others with the reason
// in `skipped` ("layer: why").
std::vector<GraphLayer> weighted_layers(const ObservedModel::Impl& impl, std::vector<std::string>& skipped);

// The first n samples of `data` as one tensor; throws (naming `op`) if the model was never
// calibrated, takes other than one input, or `data` holds fewer than n float samples.
at::Tensor take_samples(const ObservedModel::Impl& impl, const std::vector<at::Tensor>& data, int64_t n, const char* op);

// Every quantization point's calibrated qparams (none for points without data).
std::vector<std::optional<TensorQParams>> activation_qparams(const ObservedModel::Impl& impl);

// Runs the observed model on `samples` in chunks, returning the values at capture index `index`;
// with `simulate`, activations are quantized and dequantized with these qparams on the way.
at::Tensor capture_values(ObservedModel::Impl& impl, const at::Tensor& samples, size_t index,
                          const std::vector<std::optional<TensorQParams>>* simulate, const char* op);

}  // namespace tq::graph::detail
