// Graph-mode quantization on TorchScript: prepare (freeze, match, observe) and convert (emit).
// The summary, the observed model's file and compare_layers have files of their own.
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

// The first line of a LibTorch error, without its backtrace.


// Reads only a tensor's shape, which an int8 tensor has as well: such uses neither need a float
// copy nor count as users when matching (scripted BatchNorm checks input.dim() first).
bool is_shape_query(const Node* n) {
  const std::string k = kind_of(n);
  return k == "aten::size" || k == "aten::dim" || k == "prim::shape" || k == "aten::len";
}

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

// options.float_linear_outputs: static Linears whose output no quantized match reads.
void choose_float_outputs(Impl& impl) {
  if (!impl.options.float_linear_outputs || impl.qat) return;
  // Ops that pass int8 values on (reshape, transpose, chunk) but lead to no int8 op that computes
  // (the heads of q, k and v on their way to a float matmul) stay float, so the Linear before them
  // returns float: an int8 detour there would only be dequantized.
  std::unordered_map<const Node*, const Impl::MatchInfo*> root_match;
  for (const auto& info : impl.matches) {
    if (info.why_float.empty()) root_match[info.match.root] = &info;
  }
  std::function<bool(const Value*)> feeds_int8_compute = [&](const Value* v) {
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
      if (it->second->handler->output_qparams() != OutputQParams::kSharedWithInput || feeds_int8_compute(u->output())) {
        return true;
      }
    }
    return false;
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
    const Node* lin = detail::weighted_node(info.match);
    if (!info.why_float.empty() || lin == nullptr || kind_of(lin) != "aten::linear" ||
        info.handler->name() != "Linear" || info.handler->output_qparams() != OutputQParams::kObserved) {
      continue;
    }
    // The operator takes symmetric weights (zero points 0), as PyTorch's default weight observers give.
    const auto weight_observer = info.qconfig && info.qconfig->weight ? info.qconfig->weight() : nullptr;
    const auto* wq = dynamic_cast<const Quantizer*>(weight_observer.get());
    if (wq == nullptr || !is_symmetric(wq->qscheme())) continue;
    if (!read_in_int8.count(info.match.root->output())) impl.float_output_roots.insert(info.match.root);
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
void insert_observers(Impl& impl) {
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
  // Graph order for the summary.
  std::unordered_map<const Node*, size_t> order;
  size_t k = 0;
  for (auto* n : impl.graph->nodes()) order[n] = ++k;
  auto pos = [&](const Impl::Point& p) { return p.value->node()->kind() == c10::prim::Param ? 0 : order[p.value->node()]; };
  std::stable_sort(impl.points.begin(), impl.points.end(),
                   [&](const Impl::Point& a, const Impl::Point& b) { return pos(a) < pos(b); });
  impl.point_of.clear();
  for (size_t i = 0; i < impl.points.size(); ++i) impl.point_of[impl.points[i].value] = i;

  // Shared observers: union-find over points, the earliest point of a group keeps its observer.
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
  if (impl.options.smooth_quant) detail::choose_smoothed_inputs(impl);

  // GPTQ's layers: the Hessian of each one's input, accumulated while calibrating (layers that
  // share an input share it).
  for (auto& info : impl.matches) {
    const Node* w = detail::weighted_node(info.match);
    if (!info.why_float.empty() || w == nullptr || !info.qconfig) continue;
    const auto groupwise = detail::groupwise_weight_options(*info.qconfig);
    if (groupwise && detail::gptq_options(*groupwise)) {
      auto& h = impl.input_hessians[impl.unalias(w->input(0))];
      if (!h) h = std::make_shared<ptq::GptqHessian>();
    }
  }
  auto hessian_of = [&impl](const Value* v) -> std::shared_ptr<ptq::GptqHessian> {
    auto it = impl.input_hessians.find(v);
    return it == impl.input_hessians.end() ? nullptr : it->second;
  };
  for (size_t i = 0; i < impl.points.size(); ++i) {
    auto& p = impl.points[i];
    auto obs = p.observer;
    auto flag = p.saw_non_float;
    auto capture = impl.capture;
    auto hessian = hessian_of(p.value);
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
  // Taps where a weighted layer's input is no quantization point (a Linear after flatten): AdaRound
  // reads every such input. They record while a capture is active, and otherwise feed GPTQ's
  // Hessian where the layer asks for one.
  for (auto& info : impl.matches) {
    const Node* w = detail::weighted_node(info.match);
    if (!info.why_float.empty() || !w) continue;
    Value* in = impl.unalias(w->input(0));
    if (impl.point_of.count(in) || impl.tap_of.count(in)) continue;
    const size_t index = impl.points.size() + impl.taps.size();
    auto capture = impl.capture;
    auto hessian = hessian_of(in);
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

namespace {

class Emitter : public ConvertContext {
 public:
  Emitter(const Impl& impl, torch::jit::Module& out, bool reference, bool repack_guard)
      : impl_(impl), out_(out), reference_(reference), repack_guard_(repack_guard), g_(std::make_shared<Graph>()) {}

  Graph& graph() override { return *g_; }
  bool reference() const override { return reference_; }

  Value* float_value(Value* original) override {
    original = impl_.unalias(original);
    if (auto it = env_f_.find(original); it != env_f_.end()) return it->second;
    if (auto it = env_q_.find(original); it != env_q_.end()) {
      return env_f_[original] = kernels::int8::graph::dequantize(*g_, it->second);
    }
    if (original->node()->kind() == c10::prim::Constant) {
      auto* c = g_->insertNode(g_->createClone(original->node(), [](Value*) -> Value* { return nullptr; }));
      return env_f_[original] = c->output();
    }
    TQ_FAIL("convert", "internal: value %", original->debugName(), " used before it was computed");
  }

  Value* quantized(Value* original) override {
    original = impl_.unalias(original);
    if (auto it = env_q_.find(original); it != env_q_.end()) return it->second;
    auto p = impl_.point_of.find(original);
    TQ_CHECK(p != impl_.point_of.end(), "convert", "internal: value %", original->debugName(),
             " is needed in int8 but was not observed");
    const auto in = static_input(original);
    return env_q_[original] = kernels::int8::graph::quantize(*g_, in.value, in.qparams.scale, in.qparams.zero_point);
  }

  StaticInput static_input(Value* original) override {
    original = impl_.unalias(original);
    // Its own point, or for an int8 value from ops that keep their input's qparams, that input's.
    const int64_t p = detail::qparams_point(impl_, original);
    TQ_CHECK(p >= 0, "convert", "internal: value %", original->debugName(), " is needed in int8 but was not observed");
    const auto& point = impl_.points[static_cast<size_t>(p)];
    StaticInput in;
    in.qparams = detail::point_qparams(impl_, point);
    const auto* quantizer = dynamic_cast<const Quantizer*>(point.observer.get());
    const auto range = quantizer ? quantizer->quant_range() : c10::nullopt;
    if (range) {
      in.quant_min = range->quant_min;
      in.quant_max = range->quant_max;
    }
    if (auto it = smoothed_inputs_.find(original); it != smoothed_inputs_.end()) {
      in.value = it->second;
      return in;
    }
    in.value = float_value(original);
    if (point.smoothing && point.value == original) {  // SmoothQuant: X / s enters int8 (its Linears' weights take s)
      const auto inverse = detail::smoothing_factors(impl_, point).reciprocal();
      in.value = g_->insert(c10::Symbol::fromQualString("aten::mul"), {in.value, g_->insertConstant(inverse)});
      smoothed_inputs_[original] = in.value;
    }
    return in;
  }

  bool float_output(const Match& m) const override { return impl_.float_output_roots.count(m.root) > 0; }

  c10::IValue constant(Value* original) override {
    auto iv = torch::jit::toIValue(impl_.unalias(original));
    TQ_CHECK(iv.has_value(), "convert", "%", original->debugName(), " (an argument of ", kind_of(original->node()),
             ") is not a constant");
    return *iv;
  }

  TensorQParams output_qparams(const Match& m) override {
    auto p = impl_.point_of.find(m.root->output());
    TQ_CHECK(p != impl_.point_of.end(), "convert", "internal: the output of ", kind_of(m.root), " was not observed");
    return detail::point_qparams(impl_, impl_.points[p->second]);
  }

  const nn::QConfig& qconfig(const Match& m) const override {
    return *impl_.matches[impl_.match_of.at(m.root)].qconfig;
  }

  at::Tensor quantize_weight(const Match& m, const at::Tensor& weight) override {
    if (auto it = impl_.weight_overrides.find(m.root); it != impl_.weight_overrides.end()) return it->second;
    const auto& info = impl_.matches[impl_.match_of.at(m.root)];
    TQ_CHECK(static_cast<bool>(info.qconfig->weight), "convert", kind_of(m.root), " in '", m.module_path,
             "': its qconfig has no weight observer");
    auto obs = info.qconfig->weight();
    return nn::quantize_weight(*obs, smoothed_weight(m, weight), kind_of(m.root) + " in '" + m.module_path + "'");
  }

  GroupwiseWeight groupwise_weight(const Match& m, const at::Tensor& weight) override {
    const auto& qc = qconfig(m);
    const auto o = detail::groupwise_weight_options(qc);
    TQ_CHECK(o.has_value(), "convert", "'", m.module_path, "' has no group-wise weight observer");
    const auto w = weight.to(at::kFloat).contiguous();
    const auto gptq = detail::gptq_options(*o);
    if (!gptq) return quantize_weight_groupwise(w, o->bits(), o->group_size());
    const Node* n = detail::weighted_node(m);
    const auto it = impl_.input_hessians.find(impl_.unalias(n->input(0)));
    TQ_CHECK(it != impl_.input_hessians.end() && it->second->tokens() > 0, "convert", "'", m.module_path,
             "': GPTQ needs the layer's inputs: calibrate the prepared model first");
    return ptq::gptq_quantize(w, *it->second, *gptq, m.module_path);
  }

  // A Linear whose input SmoothQuant divides by s takes W * s (s along the input channels).
  at::Tensor smoothed_weight(const Match& m, const at::Tensor& weight) const {
    const Node* lin = detail::weighted_node(m);
    if (lin == nullptr) return weight;
    auto p = impl_.point_of.find(impl_.unalias(lin->input(0)));
    if (p == impl_.point_of.end()) return weight;
    const auto& point = impl_.points[p->second];
    if (!point.smoothing) return weight;
    const auto& linears = point.smoothing->linears;
    if (std::find(linears.begin(), linears.end(), lin) == linears.end()) return weight;
    return weight * detail::smoothing_factors(impl_, point).unsqueeze(0);
  }

  Value* packed_weight(const kernels::int8::PackedWeight& packed) override {
    const std::string name = "_tq_packed_weight_" + std::to_string(packed_count_++);
    const auto value = kernels::int8::packed_weight_value(packed);
    out_.register_attribute(name, value.type(), value);
    if (auto geometry = kernels::int8::graph::conv_geometry(packed)) conv_weights_.emplace(name, *geometry);
    return g_->insertGetAttr(self_, name);
  }

  // Engines whose convolutions hold weights packed for one input shape (int8_graph.h): each int8
  // convolution repacks its weights when its input's shape changes.
  void repack_convs_on_shape_change() {
    if (!repack_guard_ || conv_weights_.empty() || !kernels::int8::graph::conv_weights_follow_input_shape()) return;
    for (auto* node : g_->nodes()) {
      if (!kernels::int8::graph::is_int8_conv(*node)) continue;
      auto* get = node->input(1)->node();
      if (get->kind() != c10::prim::GetAttr || get->input(0) != self_) continue;
      auto it = conv_weights_.find(get->s(c10::attr::name));
      if (it == conv_weights_.end()) continue;
      const std::string shape_name = it->first + "_input_shape";
      out_.register_attribute(shape_name, c10::ListType::ofInts(), c10::List<int64_t>());
      torch::jit::WithInsertPoint guard(node);
      node->replaceInput(1, kernels::int8::graph::repack_conv_on_shape_change(*g_, self_, it->first, shape_name,
                                                                              node->input(0), it->second));
    }
  }

  void run() {
    Graph& src = *impl_.graph;
    for (size_t i = 0; i < src.inputs().size(); ++i) {
      auto* in = g_->addInput(src.inputs()[i]->debugName());
      in->setType(i == 0 ? c10::TypePtr(out_.type()) : src.inputs()[i]->type());
      env_f_[src.inputs()[i]] = in;
    }
    self_ = g_->inputs()[0];
    for (auto* node : src.nodes()) {
      if (detail::is_observe_node_kind(node->kind().toQualString())) continue;
      auto m = impl_.match_of.find(node);
      if (m == impl_.match_of.end() || !impl_.matches[m->second].why_float.empty()) {
        copy_float_when_ready(node);
        continue;
      }
      const auto& info = impl_.matches[m->second];
      if (info.match.root != node) continue;  // emitted with its root
      Value* q = nullptr;
      info.why_float_at_convert = why_not_ready(info);
      try {
        if (info.why_float_at_convert.empty()) {
          q = reference_ ? emit_reference(info) : info.handler->quantize(*this, info.match);
        }
      } catch (const std::exception& e) {
        TQ_FAIL("convert", "the handler ", info.handler->name(), " failed on ", kind_of(node), " in '",
                info.match.module_path, "': ", error_message(e));
      }
      if (q && (info.handler->output_qparams() == OutputQParams::kFloat || float_output(info.match))) {
        env_f_[node->output()] = q;  // dynamic / weight-only: float out
      } else if (q && reference_ && detail::is_tensor_list(q)) {
        // x.chunk(2, 1) in the reference form: a list of values already on the int8 grid, whose
        // elements are quantized where they are unpacked (copy_float).
        env_f_[node->output()] = q;
        int8_lists_.insert(node->output());
      } else if (q) {
        q->setType(c10::TensorType::get());
        const auto kind = info.handler->output_qparams();
        if (kind == OutputQParams::kObserved || kind == OutputQParams::kSharedWithAllInputs) {
          q->setDebugName(detail::layer_value_name(impl_.scopes.at(info.match.nodes.back()).path));
        }
        env_q_[node->output()] = q;
        // Inner nodes feed only the match and shape queries; their shape is the output's.
        for (auto* n : info.match.nodes) {
          if (n != node) shape_alias_[n->output()] = q;
        }
      } else {
        // The handler chose float (the seed's NotImplemented): its nodes are copied in order.
        for (auto* n : src.nodes()) {
          if (impl_.match_of.count(n) && impl_.match_of.at(n) == m->second) copy_float(n);
          if (n == node) break;
        }
      }
      flush_deferred();
    }
    flush_deferred();
    TQ_CHECK(deferred_.empty(), "convert", "internal: ", kind_of(deferred_.front()), " in '",
             impl_.scopes.count(deferred_.front()) ? impl_.scopes.at(deferred_.front()).path : "",
             "' reads a value that was never computed");
    for (auto* out : src.outputs()) g_->registerOutput(float_value(out));
    repack_convs_on_shape_change();
    torch::jit::EliminateDeadCode(g_);
  }

  std::shared_ptr<Graph> result() const { return g_; }

  Value* fake_quantized(Value* original) override {
    original = impl_.unalias(original);
    if (auto it = env_fq_.find(original); it != env_fq_.end()) return it->second;
    return env_fq_[original] = kernels::int8::graph::dequantize(*g_, quantized(original));
  }

  Value* copy_float(const Match& m, const std::function<Value*(Value*)>& input_map) override {
    std::vector<Node*> nodes(m.nodes.begin(), m.nodes.end());
    std::sort(nodes.begin(), nodes.end(), [](Node* a, Node* b) { return a->isBefore(b); });
    std::unordered_map<const Value*, Value*> local;
    Value* out = nullptr;
    for (auto* n : nodes) {
      auto* c = g_->insertNode(g_->createClone(n, [&](Value* raw) {
        Value* v = impl_.unalias(raw);
        if (auto it = local.find(v); it != local.end()) return it->second;
        // The handler names its inputs as the match reads them: through an observer, raw.
        if (auto* mapped = input_map(raw)) return mapped;
        if (auto* mapped = raw != v ? input_map(v) : nullptr) return mapped;
        return float_value(v);
      }));
      local[n->output()] = c->output();
      if (n == m.root) out = c->output();
    }
    return out;
  }

 private:
  // The reference form of a match: its float ops, then its output quantized and dequantized with
  // the qparams the int8 op would give it.
  Value* emit_reference(const Impl::MatchInfo& info) {
    auto* y = info.handler->reference(*this, info.match);
    if (!y) return nullptr;
    // A list (chunk, split) of an int8 input keeps its input's grid: nothing to quantize.
    if (detail::is_tensor_list(y)) return y;
    y->setType(c10::TensorType::get());
    TensorQParams qp;
    if (float_output(info.match)) return y;
    switch (info.handler->output_qparams()) {
      case OutputQParams::kFloat:
        return y;
      case OutputQParams::kObserved:
      case OutputQParams::kSharedWithAllInputs:
        qp = output_qparams(info.match);
        break;
      case OutputQParams::kSharedWithInput: {
        const auto p = detail::qparams_point(impl_, info.handler->quantized_inputs(info.match).at(0));
        TQ_CHECK(p >= 0, "convert", "internal: no qparams for the input of ", kind_of(info.match.root));
        qp = detail::point_qparams(impl_, impl_.points[static_cast<size_t>(p)]);
        break;
      }
      case OutputQParams::kFromKernel: {
        const auto fixed = kernels::int8::graph::fixed_output_qparams(kind_of(info.match.root));
        qp = TensorQParams{fixed.scale, fixed.zero_point};
        break;
      }
    }
    auto* q = kernels::int8::graph::quantize(*g_, y, qp.scale, qp.zero_point);
    env_f_[info.match.root->output()] = kernels::int8::graph::dequantize(*g_, q);
    return q;
  }

  // "" when every value the match takes in int8 is available (or observed with float data) and
  // its output was observed; otherwise why it stays float.
  std::string why_not_ready(const Impl::MatchInfo& info) const {
    auto check = [&](Value* v) -> std::string {
      v = impl_.unalias(v);
      if (env_q_.count(v)) return "";
      auto p = impl_.point_of.find(v);
      if (p == impl_.point_of.end()) return "an input is not available in int8";
      const auto& pt = impl_.points[p->second];
      if (*pt.saw_non_float) return "a value is not a float32 tensor";
      if (!nn::quantizer_has_observed(*pt.observer)) return "its observer saw no data";
      return "";
    };
    for (auto* v : info.handler->quantized_inputs(info.match)) {
      if (auto why = check(v); !why.empty()) return why;
    }
    const auto out = info.handler->output_qparams();
    if ((out == OutputQParams::kObserved || out == OutputQParams::kSharedWithAllInputs) && !float_output(info.match)) {
      return check(info.match.root->output());
    }
    return "";
  }

  bool available(Value* v) const {
    v = impl_.unalias(v);
    return env_f_.count(v) || env_q_.count(v) || shape_alias_.count(v) || v->node()->kind() == c10::prim::Constant;
  }
  // Every value the node reads, in its blocks too, is already written.
  bool ready(Node* node) const {
    std::unordered_set<const Value*> inner;
    std::function<bool(Node*)> visit = [&](Node* n) {
      for (auto* v : n->inputs()) {
        if (!inner.count(v) && !available(v)) return false;
      }
      for (auto* b : n->blocks()) {
        for (auto* p : b->inputs()) inner.insert(p);
        for (auto* inner_node : b->nodes()) {
          if (!visit(inner_node)) return false;
          for (auto* o : inner_node->outputs()) inner.insert(o);
        }
        for (auto* o : b->outputs()) {
          if (!inner.count(o) && !available(o)) return false;
        }
      }
      return true;
    };
    return visit(node);
  }
  // A float node that reads an inner value of a match not written yet (scripted BatchNorm's
  // input.dim() check sits between a convolution and the batch norm folded into it) waits for it.
  void copy_float_when_ready(Node* node) {
    if (deferred_.empty() && ready(node)) {
      copy_float(node);
    } else {
      deferred_.push_back(node);
      flush_deferred();
    }
  }
  void flush_deferred() {
    while (!deferred_.empty() && ready(deferred_.front())) {
      copy_float(deferred_.front());
      deferred_.erase(deferred_.begin());
    }
  }

  void copy_float(Node* node) {
    // An int8 list is unpacked into int8 tensors.
    if (node->kind() == c10::prim::ListUnpack) {
      auto* list = impl_.unalias(node->input());
      if (!env_f_.count(list) && env_q_.count(list)) {
        auto* c = g_->insertNode(g_->createClone(node, [&](Value*) { return env_q_.at(list); }));
        for (size_t i = 0; i < node->outputs().size(); ++i) {
          c->outputs()[i]->setType(c10::TensorType::get());
          env_q_[node->outputs()[i]] = c->outputs()[i];
        }
        return;
      }
      // The reference form's int8 list: float elements, each quantized with the list's qparams
      // for the readers that take it in int8 (unread quantizations are removed as dead code).
      if (int8_lists_.count(list)) {
        auto* c = g_->insertNode(g_->createClone(node, [&](Value*) { return env_f_.at(list); }));
        for (size_t i = 0; i < node->outputs().size(); ++i) {
          auto* out = node->outputs()[i];
          env_f_[out] = c->outputs()[i];
          const auto p = detail::qparams_point(impl_, out);
          TQ_CHECK(p >= 0, "convert", "internal: no qparams for an element of ", kind_of(list->node()));
          const auto qp = detail::point_qparams(impl_, impl_.points[static_cast<size_t>(p)]);
          env_q_[out] = kernels::int8::graph::quantize(*g_, c->outputs()[i], qp.scale, qp.zero_point);
        }
        return;
      }
    }
    // Shape queries read an int8 tensor as well as a float one: no dequantize for them.
    const bool shape_only = is_shape_query(node);
    auto* c = g_->createClone(node, [&](Value* v) {
      v = impl_.unalias(v);
      if (shape_only && !env_f_.count(v) && env_q_.count(v)) return env_q_.at(v);
      if (shape_only && !env_f_.count(v) && shape_alias_.count(v)) return shape_alias_.at(v);
      return float_value(v);
    });
    g_->insertNode(c);
    for (size_t i = 0; i < node->outputs().size(); ++i) env_f_[node->outputs()[i]] = c->outputs()[i];
  }

  const Impl& impl_;
  torch::jit::Module& out_;
  bool reference_;
  bool repack_guard_;  // false where the graph is lowered to the onednn form, which packs once
  std::shared_ptr<Graph> g_;
  Value* self_ = nullptr;
  std::unordered_map<const Value*, Value*> env_f_, env_q_, env_fq_, shape_alias_;
  std::unordered_map<const Value*, Value*> smoothed_inputs_;  // SmoothQuant: X / s, once per input
  std::unordered_set<const Value*> int8_lists_;  // reference form: float lists of int8 values
  std::vector<Node*> deferred_;
  int packed_count_ = 0;
  std::map<std::string, kernels::int8::ConvGeometry> conv_weights_;  // packed conv weights by attribute
};

void replace_forward(torch::jit::Module& m, const std::shared_ptr<Graph>& g) {
  auto type = m.type();
  auto cu = m._ivalue()->compilation_unit();
  const auto qualname = type->getMethod("forward").qualname();
  type->unsafeRemoveMethod("forward");
  cu->unsafeRemoveMethod(qualname);
  type->addMethod(cu->create_function(qualname, g));
}

}  // namespace

void detail::check_int8_backend(const GraphQuantizeOptions& options) {
  const auto& b = options.int8_backend;
  TQ_CHECK(b == "libtorch-quantized" || b == "onednn", "quantize", "int8_backend '", b,
           "' has no TorchScript form: 'libtorch-quantized' or 'onednn'");
  TQ_CHECK(b != "onednn" || kernels::int8::graph::onednn_form_available(), "quantize",
           "int8_backend 'onednn' needs LibTorch 2.x: this LibTorch lacks onednn::qconv_pointwise / qlinear_pointwise");
}

std::vector<std::string> detail::full_range_layers(const ObservedModel::Impl& impl) {
  std::vector<std::string> layers;
  for (const auto& info : impl.matches) {
    if (!info.why_float.empty() || !info.why_float_at_convert.empty()) continue;
    if (info.handler->output_qparams() == OutputQParams::kFloat) continue;  // dynamic / weight-only
    if (impl.float_output_roots.count(info.match.root)) continue;           // exact integer sums
    const Node* w = detail::weighted_node(info.match);
    if (w == nullptr || w->inputs().empty()) continue;
    const int64_t p = detail::qparams_point(impl, w->inputs()[0]);
    if (p < 0 || !nn::quantizer_full_range_uint8(*impl.points[p].observer)) continue;
    auto sc = impl.scopes.find(w);
    layers.push_back(sc != impl.scopes.end() && !sc->second.path.empty() ? sc->second.path : kind_of(w));
  }
  return layers;
}

torch::jit::Module ObservedModel::convert(bool reference) const {
  const auto& impl = *impl_;
  TQ_CHECK(impl.batches > 0 || impl.points.empty(), "convert", "no calibration batch was run: call calibrate() first");
  const bool onednn = impl.options.int8_backend == "onednn" && !reference;
  detail::check_int8_backend(impl.options);
  auto out = impl.module.clone();
  // The graph's int8 ops are LibTorch's quantized:: operators: their weights are packed by the
  // backend that owns them, whichever backend this thread's eager modules use. The onednn form
  // is lowered from them.
  kernels::int8::ScopedInt8Backend graph_backend("libtorch-quantized");
  Emitter emitter(impl, out, reference, !onednn);
  emitter.run();
  replace_forward(out, emitter.result());
  if (onednn) kernels::int8::graph::lower_to_onednn(out);
  if (!reference) {
    // Kept on the model, so that tq warns again where the saved model is loaded on a CPU whose
    // int8 kernels saturate (load_torchscript).
    const auto layers = detail::full_range_layers(impl);
    if (!layers.empty()) {
      c10::List<std::string> names;
      for (const auto& l : layers) names.push_back(l);
      out.register_attribute(kFullRangeLayersAttribute, c10::ListType::ofStrings(), names);
    }
    kernels::int8::warn_if_layers_saturate(layers, "convert");
  }
  return out;
}

torch::jit::Module quantize(const torch::jit::Module& model, const GraphQuantizeOptions& options,
                            const std::vector<at::Tensor>& calibration, bool reference) {
  TQ_CHECK(!calibration.empty(), "quantize", "no calibration batch given");
  auto observed = prepare(model, options);
  for (const auto& b : calibration) observed.calibrate(b);
  return observed.convert(reference);
}

}  // namespace tq::graph
