// Graph-mode convert: the int8 (or reference) TorchScript emitted from a calibrated observed model,
// each match through its handler (ConvertContext), then lowered to the onednn form if asked.
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

using Impl = ObservedModel::Impl;

namespace {

class Emitter : public ConvertContext {
 public:
  Emitter(const Impl& impl, torch::jit::Module& out, bool reference)
      : impl_(impl), out_(out), reference_(reference), g_(std::make_shared<Graph>()) {}

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
    Value* x = in.value;
    if (in.channel_factors.defined()) {  // SmoothQuant: X / s enters int8 (its Linears' weights take s)
      auto& smoothed = smoothed_inputs_[original];
      if (smoothed == nullptr) {
        smoothed = g_->insert(c10::Symbol::fromQualString("aten::mul"), {x, g_->insertConstant(in.channel_factors)});
      }
      x = smoothed;
    }
    return env_q_[original] = kernels::int8::graph::quantize(*g_, x, in.qparams.scale, in.qparams.zero_point);
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
    in.value = float_value(original);
    if (point.smoothing && point.value == original) {
      in.channel_factors = detail::smoothing_factors(impl_, point).reciprocal();
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
    if (conv_weights_.empty() || !kernels::int8::graph::conv_weights_follow_input_shape()) return;
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
  std::shared_ptr<Graph> g_;
  Value* self_ = nullptr;
  std::unordered_map<const Value*, Value*> env_f_, env_q_, env_fq_, shape_alias_;
  std::unordered_map<const Value*, Value*> smoothed_inputs_;  // SmoothQuant: X / s, once per input
  std::unordered_set<const Value*> int8_lists_;  // reference form: float lists of int8 values
  std::vector<Node*> deferred_;
  int packed_count_ = 0;
  std::map<std::string, kernels::int8::ConvGeometry> conv_weights_;  // packed conv weights by attribute
};

}  // namespace

void detail::check_int8_backend(const GraphQuantizeOptions& options) {
  const auto& b = options.int8_backend;
  TQ_CHECK(b == "libtorch-quantized" || b == "onednn", "quantize", "int8_backend '", b,
           "' has no TorchScript form: 'libtorch-quantized' or 'onednn'");
  if (b == "onednn") {
    const auto unavailable = kernels::int8::graph::onednn_form_unavailable_reason();
    TQ_CHECK(unavailable.empty(), "quantize", "int8_backend 'onednn': ", unavailable);
  }
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
  Emitter emitter(impl, out, reference);
  emitter.run();
  kernels::int8::graph::replace_forward(out, emitter.result());
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
