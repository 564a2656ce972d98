#pragma once
// Patterns and handlers of graph-mode quantization: seed 004's register_pattern /
// _DEFAULT_QUANTIZATION_PATTERNS, on TorchScript graphs.
//
// A pattern names operators ("aten::conv2d"), optionally only where they run inside a module of a
// given type (the innermost module whose forward produced the node, e.g. "Conv2d"), and
// sub-patterns for the node's leading inputs. The seed's (relu, (batch_norm, conv)) is
//
//   Pattern({"aten::relu"}, {Pattern({"aten::batch_norm"}, {Pattern({"aten::conv2d"})})})
//
// A handler decides how a match is observed and what int8 code it becomes:
//
//   struct MyAdd : tq::graph::QuantizeHandler {
//     std::string name() const override { return "MyAdd"; }
//     torch::jit::Value* quantize(tq::graph::ConvertContext& ctx, const tq::graph::Match& m) const override;
//   };
//   auto patterns = tq::graph::default_patterns();
//   patterns.register_pattern(tq::graph::Pattern({"aten::add"}), std::make_shared<MyAdd>());
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tq/kernels/int8.h"
#include "tq/kernels/int8_graph.h"
#include "tq/nn/qconfig.h"
#include "tq/numerics/groupwise_weight.h"

namespace torch::jit {
struct Graph;
struct Node;
struct Value;
}  // namespace torch::jit

namespace tq::graph {

class Pattern {
 public:
  // `ops`: qualified operator names, any of which matches; `inputs`: sub-patterns that the
  // producers of the node's leading inputs must match, in order.
  explicit Pattern(std::vector<std::string> ops, std::vector<Pattern> inputs = {});
  // Only nodes produced inside a module of this type (its class name, e.g. "ReLU", "Conv2d").
  Pattern& inside(std::string module_type);
  // An extra condition on the node; `description` is shown by to_string().
  Pattern& where(std::function<bool(const torch::jit::Node&)> condition, std::string description);

  const std::vector<std::string>& ops() const { return ops_; }
  const std::vector<Pattern>& inputs() const { return inputs_; }
  const std::string& module_type() const { return module_type_; }
  // True if `node` itself (not its inputs) fits this element.
  bool accepts(const torch::jit::Node& node, const std::string& node_module_type) const;
  std::string to_string() const;  // "(aten::relu, (aten::batch_norm, aten::conv2d))"

 private:
  std::vector<std::string> ops_;
  std::vector<Pattern> inputs_;
  std::string module_type_;
  std::function<bool(const torch::jit::Node&)> condition_;
  std::string condition_description_;
};

// One matched instance of a pattern.
struct Match {
  torch::jit::Node* root = nullptr;     // the node whose output the pattern produces
  std::vector<torch::jit::Node*> nodes;  // root first, then the sub-patterns' nodes depth first
  std::string module_path;               // innermost module of the root: "layer1.0.relu" ("" = top)
  const Pattern* pattern = nullptr;
  // The first matched node whose operator is one of `ops` (nullptr if none).
  torch::jit::Node* find(const std::vector<std::string>& ops) const;
};

struct TensorQParams {
  double scale = 1.0;
  int64_t zero_point = 0;
};

// How a quantized op gets its output's qparams.
enum class OutputQParams {
  kObserved,         // an activation observer on the output (conv, linear, add, ...)
  kSharedWithInput,  // the input's qparams pass through (relu, max_pool2d, flatten, ...: the seed's CopyNode)
  kFromKernel,       // the int8 kernel fixes them (sigmoid: 1/256, tanh: 2/256 and 128, ...)
  // The inputs and the output share one observer (cat), as FX shares them: the int8 op then
  // needs no requantization.
  kSharedWithAllInputs,
  // Float in, float out (dynamic quantization: activations quantized inside the op at run time;
  // weight-only: int8 weights, float activations). Nothing is observed.
  kFloat,
};

class ConvertContext;

class QuantizeHandler {
 public:
  virtual ~QuantizeHandler() = default;
  virtual std::string name() const = 0;
  virtual OutputQParams output_qparams() const { return OutputQParams::kObserved; }
  // Why this match stays float ("" if it can be quantized), judged on the float graph before
  // calibration (the seed's NotImplemented, decided early so nothing is observed for nothing).
  virtual std::string why_float(const Match& match) const { return ""; }
  // Rewrites the float graph before observers go in, as FX's fusion does before calibration (conv
  // + batch norm folded, so the observer sees the folded convolution's output). It may remove
  // nodes of the match (updating match.nodes and match.root). Default: nothing.
  virtual void prepare(Match& match, torch::jit::Graph& graph) const {}
  // The values the int8 code takes quantized: they are observed where they enter an int8 region.
  // Default: the non-constant tensor inputs of the deepest matched node.
  virtual std::vector<torch::jit::Value*> quantized_inputs(const Match& match) const;
  // Emits the int8 code at ctx.graph()'s insertion point and returns its quantized output, or
  // nullptr to leave the match float.
  virtual torch::jit::Value* quantize(ConvertContext& ctx, const Match& match) const = 0;
  // The reference form of the match: its float ops between quantize / dequantize pairs, weights
  // quantized and dequantized (what PT2E's reference representation expresses). Returns the float
  // output before the output's quantize / dequantize, which the caller adds. Default: the
  // matched nodes copied as they are, reading dequantized inputs.
  virtual torch::jit::Value* reference(ConvertContext& ctx, const Match& match) const;
};

// What a handler can do while the int8 graph is written.
class ConvertContext {
 public:
  virtual ~ConvertContext() = default;
  virtual torch::jit::Graph& graph() = 0;
  // The new graph's value for an original value: quantized (quantize_per_tensor inserted where it
  // enters int8 from float) or float (dequantize inserted where a float consumer needs it).
  virtual torch::jit::Value* quantized(torch::jit::Value* original) = 0;
  virtual torch::jit::Value* float_value(torch::jit::Value* original) = 0;
  // A constant of the original graph (weights, strides, ...); throws naming the node if not constant.
  virtual c10::IValue constant(torch::jit::Value* original) = 0;
  // The observed qparams of the match's output.
  virtual TensorQParams output_qparams(const Match& match) = 0;
  // Whether the match's output leaves it as float32 (GraphQuantizeOptions::float_linear_outputs):
  // then it has no output qparams and the handler returns a float value.
  virtual bool float_output(const Match& match) const = 0;
  // The float value an int8 op quantizes for an original value, with its qparams and integer range:
  // for kernels that take float input and quantize it themselves. Where
  // GraphQuantizeOptions::smooth_quant rescales it, `value` is the value before and
  // `channel_factors` (float32, one per channel of the last dimension) the 1 / s it is multiplied
  // by before it is quantized; otherwise they are undefined.
  struct StaticInput {
    torch::jit::Value* value = nullptr;
    TensorQParams qparams;
    int64_t quant_min = 0, quant_max = 255;
    at::Tensor channel_factors;
  };
  virtual StaticInput static_input(torch::jit::Value* original) = 0;
  // The weight quantized with the match's weight observer (qint8, per tensor or per channel).
  virtual at::Tensor quantize_weight(const Match& match, const at::Tensor& weight) = 0;
  // The match's qconfig.
  virtual const nn::QConfig& qconfig(const Match& match) const = 0;
  // A weight-only layer's group-wise weight (its qconfig's GroupwiseWeightObserver): GPTQ's, from
  // the inputs calibration saw, where the qconfig asks for it; else rounded to nearest. Throws
  // naming the layer (group size, too few calibration inputs).
  virtual GroupwiseWeight groupwise_weight(const Match& match, const at::Tensor& weight) = 0;
  // Stores packed weights on the model and returns their value in the graph.
  virtual torch::jit::Value* packed_weight(const kernels::int8::PackedWeight& packed) = 0;
  // Reference form (float ops between quantize / dequantize pairs) rather than int8 kernels.
  virtual bool reference() const = 0;
  // In the reference form: the value quantized and dequantized again (a float value).
  virtual torch::jit::Value* fake_quantized(torch::jit::Value* original) = 0;
  // Copies the match's nodes in graph order as float ops, each input read through `input_map`
  // (which may return nullptr for "as usual"); returns the copy of the root's output.
  virtual torch::jit::Value* copy_float(const Match& match,
                                        const std::function<torch::jit::Value*(torch::jit::Value*)>& input_map) = 0;
};

// Patterns in priority order. As in the seed, where several patterns match a node the one
// registered last wins (the seed applies every matching pattern in turn): a user's patterns
// registered after the defaults take precedence over them.
class PatternRegistry {
 public:
  struct Entry {
    Pattern pattern;
    std::shared_ptr<const QuantizeHandler> handler;
  };
  PatternRegistry& register_pattern(Pattern pattern, std::shared_ptr<const QuantizeHandler> handler);
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

// tq's patterns for static int8 (those of PyTorch FX's native backend config that the int8
// engines run): conv 1/2/3-d (+ batch_norm) (+ relu), linear (+ relu), add / mul (+ relu), cat,
// batch_norm, hardswish, sigmoid, hardsigmoid, tanh, layer_norm, and the shape and pooling ops
// that run on int8 tensors with their input's qparams.
PatternRegistry default_patterns();
// Adds the attention's batched products in int8: aten::matmul / aten::bmm of two activations
// (q k^T, P V), with a following multiplication or division by a constant number (attention's
// 1 / sqrt(d)) folded in, as tq's operator tq::matmul_int8 (Int8Backend::matmul; the saved model
// needs tq's library). Not part of default_patterns(): PyTorch FX keeps matmul float.
void register_int8_matmul_patterns(PatternRegistry& registry);
// Dynamic quantization: Linear with int8 weights, activations quantized at run time (FX's
// default_dynamic_qconfig); and weight-only Embedding with 8-bit rows (float_qparams_weight_only).
PatternRegistry dynamic_patterns();
// Seed 004's own: Add, CopyNode (ReLU, AvgPool2d, MaxPool2d, AdaptiveAvgPool2d modules) and
// ConvNormRelu (Conv2d (+ BatchNorm2d) (+ ReLU) modules), in the seed's registration order.
PatternRegistry seed_patterns();

}  // namespace tq::graph
