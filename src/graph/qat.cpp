// Graph-mode QAT: the observed model's float graph, copied into a training graph where fake
// quantizers replace the observers and trainable tq::nn layers replace the matched convolutions
// and linears; convert writes the trained state back into the float graph and emits int8.
#include "tq/graph/qat.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/expanding_array.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <functional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "layer_args.h"
#include "observe_op.h"
#include "observed_model_impl.h"
#include "tq/core/check.h"
#include "tq/core/error_message.h"
#include "tq/fake_quant/fake_quantize.h"
#include "tq/nn/conv_nd.h"
#include "tq/nn/modules.h"
#include "tq/numerics/batch_norm_folding.h"

namespace tq::graph {

using ObservedImpl = ObservedModel::Impl;

struct QatModel::Impl {
  std::shared_ptr<ObservedImpl> observed;  // the float graph, its matches and quantization points
  struct Layer {
    const ObservedImpl::MatchInfo* info = nullptr;  // null for a layer left float (it trains in float)
    Node* weighted = nullptr;    // the conv / linear node of the float graph
    Node* batch_norm = nullptr;  // its batch norm when it trains live (2-d convolutions)
    std::string name, bn_name;   // module paths: "layer1.0.conv1", "layer1.0.bn1"
    std::shared_ptr<nn::WeightedModule> module;
    std::shared_ptr<nn::Conv2dImpl> conv2d;  // set when a batch norm is attached
    std::shared_ptr<nn::BatchNorm2dImpl> bn;
  };
  std::vector<Layer> layers;
  // Each point's fake quantizer once (shared points: the first), named as FX names them.
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> point_quantizers;
  std::shared_ptr<torch::nn::Module> container = std::make_shared<torch::nn::Module>("QatModel");
  std::shared_ptr<Graph> graph;  // the training graph
  std::unique_ptr<torch::jit::Code> code;
  std::vector<int64_t> slots;
  bool training = true;
  int64_t steps = 0;

  ~Impl() {
    for (auto slot : slots) detail::release_qat_slot(slot);
  }
};

namespace {

using Layer = QatModel::Impl::Layer;

template <size_t D>
torch::ExpandingArray<D> expand(const std::vector<int64_t>& v) {
  return torch::ExpandingArray<D>(at::IntArrayRef(v));
}

template <size_t D, class ConvImpl>
std::shared_ptr<ConvImpl> make_conv(const detail::ConvArgs& a) {
  const auto k = a.weight.sizes().slice(2).vec();
  torch::nn::ConvOptions<D> o(a.weight.size(1) * a.groups, a.weight.size(0), expand<D>(k));
  o.stride(expand<D>(a.stride)).padding(expand<D>(a.padding)).dilation(expand<D>(a.dilation)).groups(a.groups);
  o.bias(a.bias.defined());
  return std::make_shared<ConvImpl>(o);
}

// A float tq::nn layer holding the node's weights (copies: the float graph keeps its own).
std::shared_ptr<nn::WeightedModule> make_layer(const Node* n) {
  std::shared_ptr<nn::WeightedModule> m;
  at::Tensor weight, bias;
  if (kind_of(n) == "aten::linear") {
    weight = detail::optional_tensor(n->input(1));
    bias = detail::optional_tensor(n->input(2));
    m = std::make_shared<nn::LinearImpl>(torch::nn::LinearOptions(weight.size(1), weight.size(0)).bias(bias.defined()));
  } else {
    const auto a = detail::read_conv(n);
    weight = a.weight;
    bias = a.bias;
    if (a.dims == 1) m = make_conv<1, nn::Conv1dImpl>(a);
    if (a.dims == 2) m = make_conv<2, nn::Conv2dImpl>(a);
    if (a.dims == 3) m = make_conv<3, nn::Conv3dImpl>(a);
  }
  m->set_weight(weight);
  if (bias.defined()) m->set_bias(bias);
  return m;
}

// aten::linear with a constant 2-d float weight and a constant (or no) bias.
bool constant_float_linear(const Node* n) {
  const auto w = torch::jit::toIValue(n->input(1));
  const auto b = torch::jit::toIValue(n->input(2));
  return w && w->isTensor() && w->toTensor().dim() == 2 && w->toTensor().scalar_type() == at::kFloat && b &&
         (b->isNone() || b->isTensor());
}

std::shared_ptr<nn::BatchNorm2dImpl> make_batch_norm(const Node* n) {
  const auto a = detail::read_batch_norm(n);
  auto bn = std::make_shared<nn::BatchNorm2dImpl>(a.running_mean.numel(), a.eps, a.momentum);
  at::NoGradGuard no_grad;
  bn->weight.copy_(a.weight);
  bn->bias.copy_(a.bias);
  bn->running_mean.copy_(a.running_mean);
  bn->running_var.copy_(a.running_var);
  return bn;
}

// Every node of a block tree, in order (blocks after their node).
void collect_nodes(torch::jit::Block* b, std::vector<Node*>& out) {
  for (auto* n : b->nodes()) {
    out.push_back(n);
    for (auto* inner : n->blocks()) collect_nodes(inner, out);
  }
}

// Inserts tq::qat(x, slot) before `at` in the training graph; returns its output.
Value* insert_qat_call(Graph& g, Node* at, Value* x, int64_t slot) {
  torch::jit::WithInsertPoint guard(at);
  auto* out = g.insert(c10::Symbol::fromQualString(detail::kQatOp), {x, slot});
  out->setType(c10::TensorType::get());
  return out;
}

std::string point_description(const ObservedImpl& impl, const ObservedImpl::Point& p) {
  const auto* producer = p.value->node();
  std::string where = "the graph input";
  if (producer->kind() != c10::prim::Param) {
    auto it = impl.scopes.find(producer);
    where = kind_of(producer) + " in '" + (it == impl.scopes.end() ? "" : it->second.path) + "'";
  }
  return p.kind == "input" ? "the input of " + p.consumer + " (" + where + ")" : "the output of " + where;
}

// Buffers and parameters of a module tree, to put back after a call that updates them.
std::vector<at::Tensor> snapshot(torch::nn::Module& m) {
  std::vector<at::Tensor> saved;
  for (const auto& t : m.parameters()) saved.push_back(t.detach().clone());
  for (const auto& t : m.buffers()) saved.push_back(t.clone());
  return saved;
}
void restore(torch::nn::Module& m, const std::vector<at::Tensor>& saved) {
  at::NoGradGuard no_grad;
  size_t k = 0;
  for (auto& t : m.parameters()) t.set_data(saved[k++]);
  for (auto& t : m.buffers()) t.set_data(saved[k++]);
}

// Points the node's input `index` at a new constant holding `value` (or None).
void set_constant_input(Graph& g, Node* n, size_t index, const at::Tensor& value) {
  Value* old = n->input(index);
  torch::jit::WithInsertPoint guard(n);
  n->replaceInput(index, value.defined() ? g.insertConstant(value) : g.insertConstant(c10::IValue()));
  if (old->uses().empty() && old->node()->kind() == c10::prim::Constant) old->node()->destroy();
}

// Stage 1 of prepare_qat: the trainable layers, quantized ones in QAT mode, then the convolutions
// and linears left float (a qconfig of None, or no pattern), which train in float as in FX.
void collect_trainable_layers(QatModel::Impl& impl) {
  const auto& obs = *impl.observed;
  std::set<std::string> names;
  auto new_layer = [&](Node* weighted, const ObservedImpl::MatchInfo* info) {
    Layer layer;
    layer.info = info;
    layer.weighted = weighted;
    layer.name = obs.scopes.at(weighted).path;
    TQ_CHECK(names.insert(layer.name).second, "prepare_qat", "module '", layer.name,
             "' runs more than once in forward; graph-mode QAT would train each call's weights apart");
    layer.module = make_layer(weighted);
    return layer;
  };
  std::vector<std::string> weighted_ops = detail::kConvOps;
  weighted_ops.push_back("aten::linear");
  for (const auto& info : obs.matches) {
    if (!info.why_float.empty()) continue;
    Node* w = info.match.find(weighted_ops);
    if (!w) continue;
    Layer layer = new_layer(w, &info);
    if (detail::trains_batch_norm(info.match)) {
      layer.batch_norm = info.match.find({"aten::batch_norm"});
      layer.bn_name = obs.scopes.at(layer.batch_norm).path;
      layer.bn = make_batch_norm(layer.batch_norm);
      layer.conv2d = std::dynamic_pointer_cast<nn::Conv2dImpl>(layer.module);
      layer.conv2d->attach_batch_norm(layer.bn);
    }
    try {
      layer.module->prepare_qat(*info.qconfig);
    } catch (const std::exception& e) {
      TQ_FAIL("prepare_qat", kind_of(w), " in '", layer.name, "': ", error_message(e));
    }
    layer.module->train();
    if (layer.bn) layer.bn->train();
    impl.layers.push_back(std::move(layer));
  }
  for (auto* n : obs.graph->nodes()) {
    const std::string k = kind_of(n);
    if (std::find(weighted_ops.begin(), weighted_ops.end(), k) == weighted_ops.end()) continue;
    const bool conv = k != "aten::linear";
    if (auto m = obs.match_of.find(n); m != obs.match_of.end() && obs.matches[m->second].why_float.empty()) continue;
    if (conv ? !detail::why_conv_float(n).empty() : !constant_float_linear(n)) continue;
    Layer layer = new_layer(n, nullptr);
    layer.module->train();
    impl.layers.push_back(std::move(layer));
  }
}

// The training graph under construction: a copy of the float graph, node for node.
struct TrainingGraph {
  std::vector<Node*> float_nodes;
  std::unordered_map<const Node*, Node*> train_node;             // float graph node -> its copy
  std::unordered_map<const torch::nn::Module*, int64_t> quantizer_slot;  // each fake quantizer's tq::qat slot
};

// Each observe node becomes tq::qat(x, slot) running its point's fake quantizer (one slot per
// quantizer, shared points share it); capture-only taps go.
void replace_observers_with_fake_quantizers(QatModel::Impl& impl, TrainingGraph& t) {
  const auto& obs = *impl.observed;
  std::unordered_map<int64_t, size_t> point_of_slot;
  for (size_t i = 0; i < obs.points.size(); ++i) point_of_slot[obs.points[i].slot] = i;
  for (auto* n : t.float_nodes) {
    if (!detail::is_observe_node_kind(n->kind().toQualString())) continue;
    Node* copy = t.train_node.at(n);
    const int64_t observe_slot = torch::jit::toIValue(n->input(1))->toInt();
    auto p = point_of_slot.find(observe_slot);
    if (p == point_of_slot.end()) {  // a capture-only tap
      copy->output()->replaceAllUsesWith(copy->input(0));
      copy->destroy();
      continue;
    }
    const auto& point = obs.points[p->second];
    auto q = point.observer;
    auto found = t.quantizer_slot.find(q.get());
    if (found == t.quantizer_slot.end()) {
      auto flag = point.saw_non_float;
      const int64_t slot = detail::register_qat_slot([q, flag](const at::Tensor& x) {
        if (x.scalar_type() != at::kFloat) {  // an index or float64 tensor through a shape op stays float, as in PTQ
          *flag = true;
          return x;
        }
        return nn::run_quantizer(*q, x);
      });
      impl.slots.push_back(slot);
      found = t.quantizer_slot.emplace(q.get(), slot).first;
      impl.point_quantizers.emplace_back("activation_post_process_" + std::to_string(impl.point_quantizers.size()), q);
    }
    auto* out = insert_qat_call(*impl.graph, copy, copy->input(0), found->second);
    copy->output()->replaceAllUsesWith(out);
    copy->destroy();
  }
}

// Ops that pass their input's qparams on (max_pool2d, flatten, ...): FX calls the input's fake
// quantizer again on their output, which observes it too (a moving average moves); so does tq.
void requantize_shared_qparams_outputs(QatModel::Impl& impl, TrainingGraph& t) {
  const auto& obs = *impl.observed;
  for (const auto& info : obs.matches) {
    if (!info.why_float.empty() || info.handler->output_qparams() != OutputQParams::kSharedWithInput) continue;
    const auto point = detail::qparams_point(obs, info.match.root->output());
    if (point < 0) continue;
    Node* root = t.train_node.at(info.match.root);
    auto* out = insert_qat_call(*impl.graph, root->next(), root->output(),
                                t.quantizer_slot.at(obs.points[point].observer.get()));
    root->output()->replaceAllUsesAfterNodeWith(out->node(), out);
  }
}

// Each conv / linear (with its live batch norm) becomes one tq::qat call to its trainable module.
void replace_layers_with_modules(QatModel::Impl& impl, TrainingGraph& t) {
  for (auto& layer : impl.layers) {
    Node* w = t.train_node.at(layer.weighted);
    auto module = layer.module;
    const bool quantized = layer.info != nullptr;
    const int64_t slot = detail::register_qat_slot(
        [module, quantized](const at::Tensor& x) { return quantized ? module->qat_compute(x) : module->forward(x); });
    impl.slots.push_back(slot);
    auto* out = insert_qat_call(*impl.graph, w, w->input(0), slot);
    w->output()->replaceAllUsesWith(out);
    if (layer.batch_norm) {
      Node* bn = t.train_node.at(layer.batch_norm);
      bn->output()->replaceAllUsesWith(out);
      bn->destroy();
    }
    w->destroy();
  }
}

// Stage 2: the training graph, the float graph with tq::qat calls.
void build_training_graph(QatModel::Impl& impl) {
  impl.graph = impl.observed->graph->copy();
  TrainingGraph t;
  std::vector<Node*> copies;
  collect_nodes(impl.observed->graph->block(), t.float_nodes);
  collect_nodes(impl.graph->block(), copies);
  TQ_CHECK(t.float_nodes.size() == copies.size(), "prepare_qat", "internal: the graph copy differs from its source");
  for (size_t i = 0; i < copies.size(); ++i) t.train_node[t.float_nodes[i]] = copies[i];
  replace_observers_with_fake_quantizers(impl, t);
  requantize_shared_qparams_outputs(impl, t);
  replace_layers_with_modules(impl, t);
}

// Stage 3: the trainable modules under the names of the layers they replace.
void register_trainable_modules(QatModel::Impl& impl) {
  auto submodule_name = [](std::string name) {
    std::replace(name.begin(), name.end(), '.', '_');
    return name.empty() ? std::string("top") : name;
  };
  for (auto& layer : impl.layers) {
    impl.container->register_module(submodule_name(layer.name), std::static_pointer_cast<torch::nn::Module>(layer.module));
    if (layer.bn) impl.container->register_module(submodule_name(layer.bn_name), layer.bn);
  }
  for (auto& [name, q] : impl.point_quantizers) impl.container->register_module(name, q);
}

}  // namespace

QatModel::QatModel(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

QatModel prepare_qat(const torch::jit::Module& model, const GraphQuantizeOptions& options) {
  TQ_CHECK(!options.equalize, "prepare_qat", "cross-layer equalization is post-training; leave options.equalize off");
  auto impl = std::make_shared<QatModel::Impl>();
  impl->observed = detail::prepare_impl(model, options, /*qat=*/true);
  for (const auto& p : impl->observed->points) {
    TQ_CHECK(nn::is_fake_quantize(*p.observer), "prepare_qat", point_description(*impl->observed, p),
             " gets an observer, not a fake quantizer: give QAT qconfigs (GraphQuantizeOptions::for_backend_qat)");
  }
  collect_trainable_layers(*impl);
  build_training_graph(*impl);
  register_trainable_modules(*impl);
  try {
    impl->code = std::make_unique<torch::jit::Code>(impl->graph, "qat_forward");
  } catch (const std::exception& e) {
    TQ_FAIL("prepare_qat", "the training graph does not compile: ", error_message(e));
  }
  return QatModel(impl);
}

c10::IValue QatModel::forward(std::vector<c10::IValue> inputs) {
  auto& impl = *impl_;
  const size_t expected = impl.graph->inputs().size() - 1;
  TQ_CHECK(inputs.size() == expected, "QatModel", "the model's forward takes ", expected, " input(s), got ",
           inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    TQ_CHECK(!inputs[i].isTensor() || inputs[i].toTensor().defined(), "QatModel", "input ", i,
             " is an undefined tensor");
  }
  torch::jit::Stack stack;
  stack.reserve(inputs.size() + 1);
  stack.emplace_back(impl.observed->module._ivalue());
  for (auto& v : inputs) stack.push_back(std::move(v));
  try {
    torch::jit::InterpreterState(*impl.code).run(stack);
  } catch (const std::exception& e) {
    TQ_FAIL("QatModel", "step ", impl.steps, " failed in the model: ", error_message(e));
  }
  if (impl.training) ++impl.steps;
  ++impl.observed->batches;
  return stack.back();
}

at::Tensor QatModel::forward(const at::Tensor& x) {
  auto out = forward(std::vector<c10::IValue>{x});
  TQ_CHECK(out.isTensor(), "QatModel", "the model returns ", out.tagKind(), ", not a tensor: use forward({inputs})");
  return out.toTensor();
}

std::vector<std::pair<std::string, at::Tensor>> QatModel::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& l : impl_->layers) {
    out.emplace_back(l.name + ".weight", l.module->weight());
    if (l.module->bias().defined()) out.emplace_back(l.name + ".bias", l.module->bias());
    if (l.bn) {
      out.emplace_back(l.bn_name + ".weight", l.bn->weight);
      out.emplace_back(l.bn_name + ".bias", l.bn->bias);
    }
  }
  for (const auto& [name, q] : named_fake_quantizers()) {
    for (const auto& p : q->named_parameters()) out.emplace_back(name + "." + p.key(), p.value());
  }
  return out;
}

std::vector<at::Tensor> QatModel::parameters() const {
  std::vector<at::Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> QatModel::named_fake_quantizers() const {
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> out;
  for (const auto& l : impl_->layers) {
    if (l.info) out.emplace_back(l.name + ".weight_fake_quant", l.module->weight_fake_quant());
  }
  for (const auto& p : impl_->point_quantizers) out.push_back(p);
  return out;
}

void QatModel::train(bool on) {
  for (auto& l : impl_->layers) {
    l.module->train(on);
    if (l.bn) l.bn->train(on);
  }
  impl_->training = on;
}

bool QatModel::is_training() const { return impl_->training; }

void QatModel::freeze_bn_stats(bool freeze) {
  for (auto& l : impl_->layers) {
    if (l.conv2d) l.conv2d->freeze_bn_stats(freeze);
  }
}

void QatModel::enable_observer(bool on) {
  for (auto& [name, q] : named_fake_quantizers()) {
    if (auto* f = dynamic_cast<fake_quant::FakeQuantizeBase*>(q.get())) f->enable_observer(on);
  }
}

void QatModel::enable_fake_quant(bool on) {
  for (auto& [name, q] : named_fake_quantizers()) {
    if (auto* f = dynamic_cast<fake_quant::FakeQuantizeBase*>(q.get())) f->enable_fake_quant(on);
  }
}

int64_t QatModel::steps() const { return impl_->steps; }

torch::nn::Module& QatModel::module() { return *impl_->container; }

torch::jit::Module QatModel::convert(bool reference) const {
  auto& impl = *impl_;
  auto& obs = *impl.observed;
  at::NoGradGuard no_grad;
  auto& g = *obs.graph;
  std::unordered_map<const Node*, at::Tensor> weights;
  for (const auto& l : impl.layers) {
    const auto weight = l.module->weight().detach().clone();
    const auto bias = l.module->bias().defined() ? l.module->bias().detach().clone() : at::Tensor();
    set_constant_input(g, l.weighted, 1, weight);
    if (bias.defined()) set_constant_input(g, l.weighted, 2, bias);
    at::Tensor quantized_from = weight;
    if (l.bn) {
      set_constant_input(g, l.batch_norm, 1, l.bn->weight.detach().clone());
      set_constant_input(g, l.batch_norm, 2, l.bn->bias.detach().clone());
      set_constant_input(g, l.batch_norm, 3, l.bn->running_mean.clone());
      set_constant_input(g, l.batch_norm, 4, l.bn->running_var.clone());
      quantized_from = fuse_conv_bn_weights(weight, bias, l.bn->running_mean, l.bn->running_var, l.bn->eps(),
                                            l.bn->weight.detach(), l.bn->bias.detach())
                           .weight;
    }
    if (!l.info) continue;  // a float layer: its trained weights are all convert needs
    // As convert_fx: the trained weight fake quantizer sees the (folded) weight once more and
    // gives its qparams; its state is put back, so the QAT model can go on training.
    auto& wq = *l.module->weight_fake_quant();
    const auto saved = snapshot(wq);
    weights[l.info->match.root] = nn::quantize_weight(wq, quantized_from, kind_of(l.weighted) + " in '" + l.name + "'");
    restore(wq, saved);
  }
  obs.weight_overrides = std::move(weights);
  return ObservedModel(impl.observed).convert(reference);
}

Summary QatModel::summary() const { return ObservedModel(impl_->observed).summary(); }

}  // namespace tq::graph
