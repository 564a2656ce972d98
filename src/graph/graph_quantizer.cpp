// Graph-mode quantization on TorchScript: prepare (freeze, match, observe, calibrate). Convert
// (emitting the int8 graph), the summary, the observed model's file and compare_layers have files
// of their own.
#include "tq/graph/graph_quantizer.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <optional>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "decompose_attention.h"
#include "equalize.h"
#include "layer_args.h"
#include "normalize.h"
#include "observe_op.h"
#include "observed_model_impl.h"
#include "smooth_quant.h"
#include "tq/core/check.h"
#include "tq/core/config_error.h"
#include "tq/core/torch_version.h"
#include "tq/core/error_message.h"
#include "tq/kernels/int8_graph.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/nn/qconfig.h"
#include "tq/numerics/fake_quantize.h"
#include "tq/numerics/groupwise_weight.h"
#include "tq/observers/groupwise_weight_observer.h"
#include "tq/observers/observer_base.h"
#include "tq/observers/quantizer.h"
#include "tq/ptq/gptq.h"

namespace tq::graph {

namespace {

size_t value_users(const Value* v) {
  return std::count_if(v->uses().begin(), v->uses().end(), [](const torch::jit::Use& u) { return !is_shape_query(u.user); });
}


// The child of `parent` a call stack entry names: the submodule itself, or, when the call went
// through a container without a forward of its own (a ModuleList, whose call stack records only
// the element's name), that container's element of the called class ("encoder.layer" + "0").
std::optional<std::pair<std::string, torch::jit::Module>> child_called(const torch::jit::Module& parent,
                                                                       const std::string& name,
                                                                       const c10::ClassTypePtr& type) {
  for (const auto& c : parent.named_children()) {
    if (c.name == name) return std::make_pair(name, c.value);
  }
  for (const auto& c : parent.named_children()) {
    for (const auto& e : c.value.named_children()) {
      if (e.name == name && (!type || e.value.type()->name()->name() == type->name()->name())) return std::make_pair(c.name + "." + name, e.value);
    }
  }
  return std::nullopt;
}

// The module chain a node came from, named as model.named_modules() names it.
Scope scope_of(const Node* n, const torch::jit::Module& top, const std::string& top_type) {
  Scope s;
  s.type = top_type;
  auto cs = n->callstack();
  if (!cs) return s;
  std::optional<torch::jit::Module> current = top;
  for (const auto& entry : (*cs)->vec()) {
    const auto& info = std::get<2>(entry);
    if (!info) continue;
    if (info->class_type()) s.type = info->class_type()->name()->name();
    if (info->instance_name() == "SELF") continue;  // a method called on the same module
    std::string step = info->instance_name();
    if (current) {
      auto child = child_called(*current, step, info->class_type());
      current = child ? std::optional<torch::jit::Module>(child->second) : std::nullopt;
      if (child) step = child->first;
    }
    s.path = s.path.empty() ? step : s.path + "." + step;
    s.chain.emplace_back(s.path, s.type);
  }
  return s;
}

// The Linears written out of a fused attention node are named under its module, as PyTorch names
// their parameters: "<attention>.in_proj" and "<attention>.out_proj" (a submodule).
void name_attention_projections(ObservedModel::Impl& impl, const std::vector<detail::AttentionProjection>& projections) {
  if (projections.empty()) return;
  std::map<std::string, std::string> types;  // qualified module name -> class name
  for (const auto& m : impl.source.named_modules()) types[m.name] = m.value.type()->name()->name();
  for (const auto& p : projections) {
    auto& s = impl.scopes[p.linear];
    s.path = s.path.empty() ? p.name : s.path + "." + p.name;
    const auto it = types.find(s.path);
    s.type = it != types.end() ? it->second : "Linear";
    s.chain.emplace_back(s.path, s.type);
  }
}

}  // namespace

const char* const detail::kLayerPrefix = "tq_layer__";
std::string detail::layer_value_name(const std::string& module_path) {
  std::string name = kLayerPrefix;
  for (char c : module_path.empty() ? std::string("top") : module_path) {
    if (c == '.') {
      name += "__";
    } else {
      name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    }
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// The observed model

ObservedModel::ObservedModel(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> ObservedModel::named_observers() const {
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> out;
  const auto& points = impl_->points;
  for (size_t i = 0; i < points.size(); ++i) {
    out.emplace_back(c10::str(points[i].kind, " ", i, " (%", points[i].value->debugName(), ")"), points[i].observer);
  }
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].smoothing) {
      out.emplace_back(c10::str("smoothing ", i, " (%", points[i].value->debugName(), ")"), points[i].smoothing->range);
    }
  }
  return out;
}

namespace {

using Impl = ObservedModel::Impl;

std::optional<nn::QConfig> qconfig_for(const quant::QConfigMapping& mapping, const Scope& s, const std::string& op,
                                       const std::string& top_type) {
  auto q = mapping.resolve("", top_type, std::nullopt);
  for (const auto& [name, type] : s.chain) q = mapping.resolve(name, type, q);
  // By operator ("add" or "aten::add"), unless the module itself is named.
  const std::string unqualified = op.substr(op.find("::") + 2);
  for (const auto& [name, qc] : mapping.module_names()) {
    if (name == s.path && !s.path.empty()) return q;
  }
  const auto& types = mapping.object_types();
  for (auto it = types.rbegin(); it != types.rend(); ++it) {
    if (it->first == op || it->first == unqualified) return it->second;
  }
  return q;
}

// Names in the mapping must exist in the model: a typo would silently quantize everything.
void check_mapping(const torch::jit::Module& model, const Graph& g, const Impl& impl) {
  std::set<std::string> names{""}, types{impl.top_type};
  for (const auto& nm : model.named_modules()) {
    names.insert(nm.name);
    types.insert(nm.value.type()->name()->name());
  }
  for (const auto& [node, scope] : impl.scopes) names.insert(scope.path);  // "<attention>.in_proj"
  for (const auto* n : g.nodes()) {
    const std::string k = kind_of(n);
    types.insert(k);
    types.insert(k.substr(k.find("::") + 2));
  }
  for (const auto& [name, q] : impl.options.mapping.module_names()) {
    TQ_CHECK_CONFIG(names.count(name), "prepare", "the qconfig mapping names module '", name,
                    "', which the model does not have");
  }
  for (const auto& [type, q] : impl.options.mapping.object_types()) {
    TQ_CHECK_CONFIG(types.count(type), "prepare", "the qconfig mapping names module type or operator '", type,
                    "', which the model does not use");
  }
}

// Seed 004's matches(): the node fits the pattern element, inner nodes have one user, and the
// producers of the leading inputs fit the sub-patterns.
bool matches(Impl& impl, const Node* node, const Pattern& p, size_t max_uses) {
  if (node->outputs().size() != 1) return false;
  // Tensor overloads only: aten::add and aten::mul also add and multiply ints.
  if (!detail::is_tensor(node->output()) && !detail::is_tensor_list(node->output())) return false;
  if (value_users(node->output()) > max_uses) return false;
  if (impl.match_of.count(node)) return false;
  auto sc = impl.scopes.find(node);
  if (!p.accepts(*node, sc == impl.scopes.end() ? impl.top_type : sc->second.type)) return false;
  if (p.inputs().size() > node->inputs().size()) return false;
  for (size_t i = 0; i < p.inputs().size(); ++i) {
    const Node* producer = node->input(i)->node();
    if (producer->owningBlock() != node->owningBlock()) return false;
    if (!matches(impl, producer, p.inputs()[i], 1)) return false;
  }
  return true;
}

void collect(const Node* node, const Pattern& p, std::vector<Node*>& out) {
  out.push_back(const_cast<Node*>(node));
  for (size_t i = 0; i < p.inputs().size(); ++i) collect(node->input(i)->node(), p.inputs()[i], out);
}

// Seed 004's _find_matches: nodes in reverse order; a node is matched once; where several
// patterns fit, the one registered last wins.
void find_matches(Impl& impl) {
  const auto& entries = impl.options.patterns.entries();
  std::vector<Node*> nodes(impl.graph->nodes().begin(), impl.graph->nodes().end());
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    Node* node = *it;
    if (impl.match_of.count(node) || node->kind() == c10::prim::Constant) continue;
    const auto& scope = impl.scopes[node];
    for (auto e = entries.rbegin(); e != entries.rend(); ++e) {
      if (!matches(impl, node, e->pattern, std::numeric_limits<size_t>::max())) continue;
      auto qconfig = qconfig_for(impl.options.mapping, scope, kind_of(node), impl.top_type);
      std::vector<Node*> nodes;
      collect(node, e->pattern, nodes);
      // As in FX, a fused pattern is quantized only if none of its nodes has a None qconfig
      // (excluding conv4 keeps conv4 + bn4 + relu4 float).
      const bool excluded = std::any_of(nodes.begin(), nodes.end(), [&](Node* n) {
        return !qconfig_for(impl.options.mapping, impl.scopes[n], kind_of(n), impl.top_type);
      });
      if (!qconfig || excluded) {
        for (auto* n : nodes) impl.unmatched_reason[n] = "its qconfig is None";
        break;
      }
      Impl::MatchInfo info;
      info.match.root = node;
      info.match.nodes = nodes;
      info.match.module_path = scope.path;
      info.match.pattern = &e->pattern;
      info.handler = e->handler;
      info.qconfig = qconfig;
      try {
        info.why_float = e->handler->why_float(info.match);
      } catch (const std::exception& ex) {
        TQ_FAIL("prepare", "the handler ", e->handler->name(), " failed on ", kind_of(node), " in '",
                scope.path, "': ", error_message(ex));
      }
      const bool float_io = e->handler->output_qparams() == OutputQParams::kFloat;
      if (info.why_float.empty() && !float_io && !qconfig->activation) {
        info.why_float = "its qconfig has no activation observer";
      }
      if (info.why_float.empty() && !float_io) {
        auto probe = qconfig->activation();
        if (nn::quantizer_is_dynamic(*probe)) {
          info.why_float = "dynamic qconfig (graph mode quantizes dynamically only Linear / LSTM / GRU modules)";
        } else if (nn::quantizer_dtype(*probe) != QDType::QUInt8) {
          info.why_float = "activation dtype " + to_string(nn::quantizer_dtype(*probe)) + " (int8 kernels take quint8)";
        }
      }
      const size_t index = impl.matches.size();
      for (auto* n : info.match.nodes) impl.match_of[n] = index;
      impl.matches.push_back(std::move(info));
      break;
    }
  }
  std::reverse(impl.matches.begin(), impl.matches.end());
  // Handlers rewrite the float graph (batch-norm folding) once every match is known.
  for (auto& info : impl.matches) {
    if (info.why_float.empty() && !(impl.qat && detail::trains_batch_norm(info.match))) {
      info.handler->prepare(info.match, *impl.graph);
    }
  }
  impl.match_of.clear();
  for (size_t i = 0; i < impl.matches.size(); ++i) {
    for (auto* n : impl.matches[i].match.nodes) impl.match_of[n] = i;
  }
}

bool produces_int8(const Impl& impl, const Value* v) {
  // Elements of an int8 list (x.chunk(2, 1) unpacked) are int8 too.
  if (v->node()->kind() == c10::prim::ListUnpack) v = v->node()->input();
  auto it = impl.match_of.find(v->node());
  if (it == impl.match_of.end()) return false;
  const auto& info = impl.matches[it->second];
  return info.why_float.empty() && info.match.root == v->node();
}

void add_point(Impl& impl, Value* v, const nn::QConfig& q, std::string kind, std::string consumer) {
  if (impl.point_of.count(v)) return;
  Impl::Point p;
  p.value = v;
  p.observer = q.activation();
  p.kind = std::move(kind);
  p.consumer = std::move(consumer);
  impl.point_of[v] = impl.points.size();
  impl.points.push_back(std::move(p));
}

}  // namespace

int64_t detail::qparams_point(const Impl& impl, const Value* v) {
  for (;;) {
    v = impl.unalias(const_cast<Value*>(v));
    if (auto p = impl.point_of.find(v); p != impl.point_of.end()) return static_cast<int64_t>(p->second);
    if (v->node()->kind() == c10::prim::ListUnpack) {
      v = v->node()->input();
      continue;
    }
    auto m = impl.match_of.find(v->node());
    if (m == impl.match_of.end()) return -1;
    const auto& info = impl.matches[m->second];
    if (!info.why_float.empty() || info.match.root != v->node() ||
        info.handler->output_qparams() != OutputQParams::kSharedWithInput) {
      return -1;
    }
    v = info.handler->quantized_inputs(info.match).at(0);
  }
}

namespace {

// A static Linear that can run as tq's float-output operator: symmetric weights (zero points 0),
// as PyTorch's default weight observers give.
bool float_output_candidate(const Impl::MatchInfo& info) {
  const Node* lin = detail::weighted_node(info.match);
  if (!info.why_float.empty() || lin == nullptr || kind_of(lin) != "aten::linear" || info.handler->name() != "Linear" ||
      info.handler->output_qparams() != OutputQParams::kObserved) {
    return false;
  }
  const auto weight_observer = info.qconfig && info.qconfig->weight ? info.qconfig->weight() : nullptr;
  const auto* wq = dynamic_cast<const Quantizer*>(weight_observer.get());
  return wq != nullptr && is_symmetric(wq->qscheme());
}

// options.float_linear_outputs: static Linears whose output no quantized match reads.
void choose_float_outputs(Impl& impl) {
  if (!impl.options.float_linear_outputs || impl.qat) return;
  // Ops that pass int8 values on (reshape, transpose, chunk) but lead to no int8 op that computes
  // (the heads of q, k and v on their way to a float matmul) stay float, so the Linear before them
  // returns float: an int8 detour there would only be dequantized. A float-output Linear reads
  // float32 and quantizes it itself, so the ops before it (the attention's context on its way to
  // the output projection) stay float too.
  std::unordered_map<const Node*, const Impl::MatchInfo*> root_match;
  for (const auto& info : impl.matches) {
    if (info.why_float.empty()) root_match[info.match.root] = &info;
  }
  std::unordered_map<const Value*, bool> feeds;  // each value answered once: branches meet again downstream
  std::function<bool(const Value*)> feeds_int8_compute;
  const auto answer = [&](const Value* v) {
    for (const auto& use : v->uses()) {
      const Node* u = use.user;
      if (u->kind() == c10::prim::ListConstruct) return true;  // cat's inputs: read in int8
      if (u->kind() == c10::prim::ListUnpack) {
        for (const auto* e : u->outputs()) {
          if (feeds_int8_compute(e)) return true;
        }
        continue;
      }
      const auto it = root_match.find(u);
      if (it == root_match.end()) continue;
      const auto ins = it->second->handler->quantized_inputs(it->second->match);
      if (std::find(ins.begin(), ins.end(), v) == ins.end()) continue;
      if (float_output_candidate(*it->second) && !feeds_int8_compute(u->output())) continue;
      if (it->second->handler->output_qparams() != OutputQParams::kSharedWithInput || feeds_int8_compute(u->output())) {
        return true;
      }
    }
    return false;
  };
  feeds_int8_compute = [&](const Value* v) {
    if (const auto it = feeds.find(v); it != feeds.end()) return it->second;
    const bool result = answer(v);
    return feeds[v] = result;
  };
  for (auto& info : impl.matches) {
    if (info.why_float.empty() && info.handler->output_qparams() == OutputQParams::kSharedWithInput &&
        info.match.root->outputs().size() == 1 && !feeds_int8_compute(info.match.root->output())) {
      info.why_float = "no int8 op reads its output (options.float_linear_outputs)";
    }
  }
  std::unordered_set<const Value*> read_in_int8;
  for (const auto& info : impl.matches) {
    if (!info.why_float.empty()) continue;
    for (auto* v : info.handler->quantized_inputs(info.match)) read_in_int8.insert(v);
  }
  for (const auto& info : impl.matches) {
    if (float_output_candidate(info) && !read_in_int8.count(info.match.root->output())) {
      impl.float_output_roots.insert(info.match.root);
    }
  }
}

// Inputs that only float-output Linears read in int8 (directly or through ops that keep their
// input's qparams, such as reshape) take the full 8-bit range whatever the qconfig's reduce_range:
// those Linears sum exact integer products on every CPU, so the headroom that keeps u8 x s8 kernels
// without VNNI from saturating guards nothing there.
void widen_exact_inputs(Impl& impl) {
  if (impl.float_output_roots.empty()) return;
  std::unordered_map<const Value*, std::vector<const Impl::MatchInfo*>> readers;
  for (const auto& info : impl.matches) {
    if (!info.why_float.empty()) continue;
    for (auto* v : info.handler->quantized_inputs(info.match)) readers[v].push_back(&info);
  }
  std::function<bool(const Value*)> exact = [&](const Value* v) {
    const auto it = readers.find(v);
    if (it == readers.end()) return false;
    for (const auto* info : it->second) {
      if (impl.float_output_roots.count(info->match.root)) continue;
      const bool passes_on = info->handler->output_qparams() == OutputQParams::kSharedWithInput &&
                             info->handler->quantized_inputs(info->match).size() == 1;
      if (!passes_on || !exact(info->match.root->output())) return false;
    }
    return true;
  };
  for (auto& p : impl.points) {
    if (p.kind != "input" || !exact(p.value)) continue;
    if (auto* o = dynamic_cast<observers::UniformQuantizationObserverBase*>(p.observer.get())) o->use_full_range();
  }
}

// Where the seed observes: each quantized match's output (unless its qparams come from its input
// or its kernel) and each input that enters it from float. Ops whose inputs and output share
// qparams (cat) join their inputs' observers into one, as FX does, so no input is requantized.
// The quantization points: each quantized match's inputs that are not int8 already, and its
// output where the handler observes it.
void add_points(Impl& impl) {
  choose_float_outputs(impl);
  for (auto& info : impl.matches) {
    if (!info.why_float.empty()) continue;
    for (auto* v : info.handler->quantized_inputs(info.match)) {
      if (!produces_int8(impl, v)) add_point(impl, v, *info.qconfig, "input", kind_of(info.match.root));
    }
    const auto out = info.handler->output_qparams();
    if ((out == OutputQParams::kObserved || out == OutputQParams::kSharedWithAllInputs) &&
        !impl.float_output_roots.count(info.match.root)) {
      add_point(impl, info.match.root->output(), *info.qconfig, "output", "");
    }
  }
  widen_exact_inputs(impl);
}

// Graph order, for the summary.
void sort_points_in_graph_order(Impl& impl) {
  std::unordered_map<const Node*, size_t> order;
  size_t k = 0;
  for (auto* n : impl.graph->nodes()) order[n] = ++k;
  auto pos = [&](const Impl::Point& p) { return p.value->node()->kind() == c10::prim::Param ? 0 : order[p.value->node()]; };
  std::stable_sort(impl.points.begin(), impl.points.end(),
                   [&](const Impl::Point& a, const Impl::Point& b) { return pos(a) < pos(b); });
  impl.point_of.clear();
  for (size_t i = 0; i < impl.points.size(); ++i) impl.point_of[impl.points[i].value] = i;
}

// Shared observers: union-find over points, the earliest point of a group keeps its observer.
void share_observers(Impl& impl) {
  std::vector<size_t> parent(impl.points.size());
  for (size_t i = 0; i < parent.size(); ++i) parent[i] = i;
  std::function<size_t(size_t)> find = [&](size_t i) { return parent[i] == i ? i : parent[i] = find(parent[i]); };
  auto unite = [&](size_t a, size_t b) {
    a = find(a), b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  };
  for (auto& info : impl.matches) {
    if (!info.why_float.empty() || info.handler->output_qparams() != OutputQParams::kSharedWithAllInputs) continue;
    const size_t out = impl.point_of.at(info.match.root->output());
    for (auto* v : info.handler->quantized_inputs(info.match)) {
      const auto p = detail::qparams_point(impl, v);
      if (p >= 0) unite(out, static_cast<size_t>(p));
    }
  }
  for (size_t i = 0; i < impl.points.size(); ++i) impl.points[i].observer = impl.points[find(i)].observer;
}

// GPTQ's layers: the Hessian of each one's input, accumulated while calibrating (layers that
// share an input share it).
void add_gptq_hessians(Impl& impl) {
  for (auto& info : impl.matches) {
    const Node* w = detail::weighted_node(info.match);
    if (!info.why_float.empty() || w == nullptr || !info.qconfig) continue;
    const auto groupwise = detail::groupwise_weight_options(*info.qconfig);
    if (groupwise && detail::gptq_options(*groupwise)) {
      auto& h = impl.input_hessians[impl.unalias(w->input(0))];
      if (!h) h = std::make_shared<ptq::GptqHessian>();
    }
  }
}

std::shared_ptr<ptq::GptqHessian> hessian_of(const Impl& impl, const Value* v) {
  auto it = impl.input_hessians.find(v);
  return it == impl.input_hessians.end() ? nullptr : it->second;
}

// One observe call per point: it runs the point's observer (and GPTQ's Hessian, SmoothQuant's
// range) while calibrating, and records values while a capture is active.
void insert_point_observers(Impl& impl) {
  for (size_t i = 0; i < impl.points.size(); ++i) {
    auto& p = impl.points[i];
    auto obs = p.observer;
    auto flag = p.saw_non_float;
    auto capture = impl.capture;
    auto hessian = hessian_of(impl, p.value);
    auto smoothing = p.smoothing;
    p.slot = detail::register_observer_slot([obs, flag, capture, hessian, smoothing, i](const at::Tensor& x) {
      if (capture->active) {
        if (capture->simulate && x.scalar_type() == at::kFloat && i < capture->qparams.size() && capture->qparams[i]) {
          const auto& qp = *capture->qparams[i];
          x.detach().copy_(tq::fake_quantize_per_tensor_affine(x.detach(), qp.scale, qp.zero_point, 0, 255));
        }
        if (capture->wanted.empty() || capture->wanted.count(i)) capture->values[i].push_back(x.detach().clone());
      } else if (x.scalar_type() == at::kFloat) {
        nn::run_quantizer(*obs, x);
        if (hessian) hessian->add(x.detach());
        if (smoothing) nn::run_quantizer(*smoothing->range, x);
      } else {
        *flag = true;  // int8 holds float32 values only: an index, a mask or a float64 value stays as it is
      }
    });
    auto* out = detail::insert_observe(*impl.graph, p.value, p.slot);
    impl.observed_alias[out] = p.value;
  }
}

// Taps where a weighted layer's input is no quantization point (a Linear after flatten): AdaRound
// reads every such input. They record while a capture is active, and otherwise feed GPTQ's
// Hessian where the layer asks for one.
void insert_layer_input_taps(Impl& impl) {
  for (auto& info : impl.matches) {
    const Node* w = detail::weighted_node(info.match);
    if (!info.why_float.empty() || !w) continue;
    Value* in = impl.unalias(w->input(0));
    if (impl.point_of.count(in) || impl.tap_of.count(in)) continue;
    const size_t index = impl.points.size() + impl.taps.size();
    auto capture = impl.capture;
    auto hessian = hessian_of(impl, in);
    const int64_t slot = detail::register_observer_slot([capture, hessian, index](const at::Tensor& x) {
      if (capture->active) {
        if (capture->wanted.empty() || capture->wanted.count(index)) capture->values[index].push_back(x.detach().clone());
      } else if (hessian && x.is_floating_point()) {
        hessian->add(x.detach());
      }
    });
    impl.taps.push_back(slot);
    impl.tap_of[in] = index;
    impl.observed_alias[detail::insert_observe(*impl.graph, in, slot)] = in;
  }
}

void insert_observers(Impl& impl) {
  add_points(impl);
  sort_points_in_graph_order(impl);
  share_observers(impl);
  if (impl.options.smooth_quant) detail::choose_smoothed_inputs(impl);
  add_gptq_hessians(impl);
  insert_point_observers(impl);
  insert_layer_input_taps(impl);
}

}  // namespace

TensorQParams detail::point_qparams(const ObservedModel::Impl& impl, const ObservedModel::Impl::Point& p) {
  TQ_CHECK(nn::quantizer_has_observed(*p.observer), "convert", "the observer of ", p.kind, " ",
           p.value->node()->kind() == c10::prim::Param ? std::string("graph input") : kind_of(p.value->node()),
           " saw no data (was that part of the model ever run?)");
  if (p.smoothing) return detail::smoothed_qparams(impl, p);
  const auto qp = nn::quantizer_qparams(*p.observer);
  return {qp.scale.item<double>(), qp.zero_point.item<int64_t>()};
}

std::shared_ptr<Impl> detail::prepare_impl(const torch::jit::Module& model, const GraphQuantizeOptions& options,
                                           bool qat) {
  TQ_CHECK(model.find_method("forward").has_value(), "prepare", "the module has no forward method");
  check_int8_backend(options);
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->qat = qat;
  impl->top_type = model.type()->name()->name();
  try {
    impl->source = model.clone();
    auto copy = impl->source.clone();
    copy.eval();
    impl->module = torch::jit::freeze_module(copy);
  } catch (const std::exception& e) {
    TQ_FAIL("prepare", "cannot freeze the model (", impl->top_type, "): ", error_message(e));
  }
  impl->graph = impl->module.get_method("forward").graph();
  auto& g = impl->graph;
  detail::normalize_frozen_graph(g);
  const auto projections = detail::decompose_self_attention(*g);
  for (auto* n : g->nodes()) impl->scopes[n] = scope_of(n, impl->source, impl->top_type);
  name_attention_projections(*impl, projections);
  if (options.smooth_quant) {
    const double alpha = options.smooth_quant->alpha;
    TQ_CHECK_CONFIG(alpha >= 0.0 && alpha <= 1.0, "prepare", "SmoothQuant's alpha must be in [0, 1], got ", alpha);
    TQ_CHECK_CONFIG(!qat, "prepare_qat", "SmoothQuant is post-training; leave options.smooth_quant unset");
  }
  if (options.equalize) impl->equalized = detail::equalize_graph(*g, impl->scopes);
  check_mapping(model, *g, *impl);
  find_matches(*impl);
  insert_observers(*impl);
  return impl;
}

ObservedModel prepare(const torch::jit::Module& model, const GraphQuantizeOptions& options) {
  return ObservedModel(detail::prepare_impl(model, options, /*qat=*/false));
}

c10::IValue ObservedModel::calibrate(const at::Tensor& batch) { return calibrate(std::vector<c10::IValue>{batch}); }

c10::IValue ObservedModel::calibrate(std::vector<c10::IValue> inputs) {
  auto& impl = *impl_;
  const size_t expected = impl.graph->inputs().size() - 1;
  TQ_CHECK(inputs.size() == expected, "calibrate", "the model's forward takes ", expected, " input(s), got ",
           inputs.size());
  std::string described;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].isTensor()) continue;
    const auto& t = inputs[i].toTensor();
    TQ_CHECK(t.defined(), "calibrate", "input ", i, " of batch ", impl.batches, " is an undefined tensor");
    std::ostringstream d;
    d << (described.empty() ? "" : ", ") << "shape " << t.sizes() << " " << t.scalar_type();
    described += d.str();
  }
  at::NoGradGuard no_grad;
  c10::IValue out;
  try {
    out = impl.module.forward(std::move(inputs));
  } catch (const std::exception& e) {
    TQ_FAIL("calibrate", "batch ", impl.batches, " (", described, ") failed in the model: ", error_message(e));
  }
  ++impl.batches;
  return out;
}

int64_t ObservedModel::batches_seen() const { return impl_->batches; }
const torch::jit::Module& ObservedModel::module() const { return impl_->module; }

// ---------------------------------------------------------------------------------------------
// Convert: seed 004's quantize(), writing a new TorchScript graph.

}  // namespace tq::graph
