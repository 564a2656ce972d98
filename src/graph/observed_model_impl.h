#pragma once
// ObservedModel's state, shared by the files of graph mode (prepare / convert in
// graph_quantizer.cpp, its summary, its file, compare_layers, AdaRound). Not installed.
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "observe_op.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/nn/qconfig.h"
#include "tq/observers/groupwise_weight_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"
#include "tq/ptq/gptq.h"

namespace tq::graph {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

inline std::string kind_of(const Node* n) { return n->kind().toQualString(); }

// Reads only a tensor's shape, which an int8 tensor has as well: such uses neither need a float
// copy nor count as users when matching (scripted BatchNorm checks input.dim() first).
inline bool is_shape_query(const Node* n) {
  const std::string k = kind_of(n);
  return k == "aten::size" || k == "aten::dim" || k == "prim::shape" || k == "aten::len";
}

// The module chain a node came from, read from its inlined call stack.
struct Scope {
  std::string path;  // "layer1.0.conv1"
  std::string type;  // innermost module's class name
  std::vector<std::pair<std::string, std::string>> chain;  // (qualified name, class name), outermost first
};

// A Linear input SmoothQuant rescales (GraphQuantizeOptions::smooth_quant) and the Linears that
// read it.
struct SmoothedInput {
  std::vector<const Node*> linears;  // aten::linear nodes, input 0 this value
  std::vector<std::string> layers;   // their module paths
  // Each channel's (the last dimension's) min and max over every batch calibrated: saved with the
  // observed model and merged across processes as the points' observers are.
  std::shared_ptr<observers::PerChannelMinMaxObserver> range;
};

struct ObservedModel::Impl {
  torch::jit::Module source;  // the user's model as given (a clone), for saving the observed form
  torch::jit::Module module;  // frozen clone of it, with observe ops
  std::shared_ptr<Graph> graph;
  GraphQuantizeOptions options;
  std::string top_type;
  // Prepared for QAT: points hold fake quantizers, and 2-d convolutions keep their batch norm
  // (it trains live, as PyTorch's ConvBn2d) instead of folding it before observation.
  bool qat = false;

  struct MatchInfo {
    Match match;
    std::shared_ptr<const QuantizeHandler> handler;
    std::optional<nn::QConfig> qconfig;
    std::string why_float;  // "" = quantized
    mutable std::string why_float_at_convert;  // what calibration showed (non-float data, no data)
  };
  std::vector<MatchInfo> matches;
  std::unordered_map<const Node*, size_t> match_of;  // every matched node -> its match
  std::unordered_map<const Node*, Scope> scopes;
  std::unordered_map<const Node*, std::string> unmatched_reason;

  struct Point {
    Value* value;  // the observed value (before the observe op)
    std::shared_ptr<torch::nn::Module> observer;
    std::string kind;      // "output" / "input"
    std::string consumer;  // for inputs
    int64_t slot;
    // Set when a non-floating-point tensor passed (an index tensor through a shape op): the seed's
    // all_tensors = False, the value stays float.
    std::shared_ptr<std::atomic<bool>> saw_non_float = std::make_shared<std::atomic<bool>>(false);
    std::shared_ptr<SmoothedInput> smoothing;  // set where SmoothQuant rescales this input
  };
  // Static Linear matches (by root) whose output leaves int8 as float32 (options.float_linear_outputs).
  std::unordered_set<const Node*> float_output_roots;
  std::vector<Point> points;
  std::unordered_map<const Value*, size_t> point_of;
  std::unordered_map<const Value*, Value*> observed_alias;  // observe output -> observed value
  int64_t batches = 0;
  std::vector<std::string> equalized;  // pairs cross-layer equalization changed
  // Int8 weights chosen by AdaRound, by the match root they belong to; convert uses them as they are.
  std::unordered_map<const Node*, at::Tensor> weight_overrides;
  // GPTQ layers' input Hessians, by input value (before its observe op), filled by calibration.
  // Not saved with the observed model: a loaded one is calibrated again before GPTQ's convert.
  std::unordered_map<const Value*, std::shared_ptr<ptq::GptqHessian>> input_hessians;
  // While active, observe ops record the values instead of observing (compare_layers, AdaRound):
  // those of the points in `wanted` (all when empty). With `simulate`, each point's value is first
  // quantized and dequantized in place with its qparams, as the int8 model computes it.
  struct Capture {
    bool active = false;
    std::set<size_t> wanted;
    bool simulate = false;
    std::vector<std::optional<TensorQParams>> qparams;  // per point, for simulate
    std::map<size_t, std::vector<at::Tensor>> values;
  };
  std::shared_ptr<Capture> capture = std::make_shared<Capture>();

  // Capture-only taps (slots), indexed after the points.
  std::vector<int64_t> taps;
  std::unordered_map<const Value*, size_t> tap_of;

  ~Impl() {
    for (const auto& p : points) detail::release_observer_slot(p.slot);
    for (auto slot : taps) detail::release_observer_slot(slot);
  }

  Value* unalias(Value* v) const {
    auto it = observed_alias.find(v);
    return it == observed_alias.end() ? v : it->second;
  }
};

namespace detail {
// The linear / convolution node of a match (nullptr if it has none).
const Node* weighted_node(const Match& m);

struct ObservedModelAccess {
  static ObservedModel::Impl& impl(const ObservedModel& m) { return *m.impl_; }
};
inline ObservedModel::Impl& impl_of(const ObservedModel& m) { return ObservedModelAccess::impl(m); }

// prepare() for both workflows: freeze, normalize, match, observe.
std::shared_ptr<ObservedModel::Impl> prepare_impl(const torch::jit::Module& model, const GraphQuantizeOptions& options,
                                                  bool qat);
// The options of a qconfig's group-wise weight observer; nullopt when its weight observer is another kind.
std::optional<observers::GroupwiseWeightObserverOptions> groupwise_weight_options(const nn::QConfig& qconfig);
// GPTQ's options when a group-wise observer asks for GPTQ (quant::weight_only_gptq_qconfig); else nullopt.
std::optional<ptq::GptqOptions> gptq_options(const observers::GroupwiseWeightObserverOptions& options);
// True when graph-mode QAT keeps this match's batch norm live (a 2-d convolution + batch norm).
bool trains_batch_norm(const Match& m);
// The point whose qparams a value carries in int8: its own, or through ops that keep their
// input's qparams, their input's. -1 if none (fixed qparams, float).
int64_t qparams_point(const ObservedModel::Impl& impl, const torch::jit::Value* v);
// A quantization point's qparams; throws, naming the point, if its observer saw no data.
TensorQParams point_qparams(const ObservedModel::Impl& impl, const ObservedModel::Impl::Point& p);
// The debug name of an int8 layer's output ("tq_layer__layer1__0__conv1"): TorchScript keeps it
// as the variable's name when the model is saved, so compare_layers finds it after loading.
extern const char* const kLayerPrefix;
std::string layer_value_name(const std::string& module_path);
// The int8 convolutions and linears whose activation input is quantized on the full uint8 range
// (by module path): their uint8 x int8 products saturate on x86 CPUs without VNNI.
std::vector<std::string> full_range_layers(const ObservedModel::Impl& impl);
// Throws unless options.int8_backend names a form this LibTorch can write.
void check_int8_backend(const GraphQuantizeOptions& options);
}  // namespace detail

}  // namespace tq::graph
