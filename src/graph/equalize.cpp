#include "equalize.h"

#include <torch/csrc/jit/ir/constants.h>

#include <ATen/ATen.h>

#include <cmath>
#include <map>

#include "layer_args.h"
#include "tq/numerics/batch_norm_folding.h"
#include "tq/ptq/equalization.h"

namespace tq::graph::detail {
namespace {

// A convolution from the one list (scripted or traced) whose arguments are all constants.
bool is_conv(const Node* n) { return is_conv_op(kind_of(n)) && why_conv_float(n).empty(); }

at::Tensor optional_constant(const Value* v) {
  auto iv = torch::jit::toIValue(v);
  return iv && iv->isTensor() ? iv->toTensor() : at::Tensor();
}

void set_constant(Graph& g, Node* n, size_t input, const at::Tensor& t) {
  torch::jit::WithInsertPoint guard(n);
  n->replaceInput(input, g.insertConstant(t));
}

void fold_batch_norms(Graph& g, std::unordered_map<const Node*, Scope>& scopes) {
  std::vector<Node*> nodes(g.nodes().begin(), g.nodes().end());
  for (Node* bn : nodes) {
    if (kind_of(bn) != "aten::batch_norm") continue;
    Node* conv = bn->input(0)->node();
    if (!is_conv(conv) || conv->output()->uses().size() != 1) continue;
    bool constant = true;
    for (size_t i = 1; i < bn->inputs().size(); ++i) constant &= torch::jit::toIValue(bn->input(i)).has_value();
    if (!constant || torch::jit::toIValue(bn->input(5))->toBool()) continue;  // training-mode statistics
    const auto folded = fuse_conv_bn_weights(
        optional_constant(conv->input(1)), optional_constant(conv->input(2)), optional_constant(bn->input(3)),
        optional_constant(bn->input(4)), torch::jit::toIValue(bn->input(7))->toDouble(),
        optional_constant(bn->input(1)), optional_constant(bn->input(2)));
    set_constant(g, conv, 1, folded.weight);
    set_constant(g, conv, 2, folded.bias);
    bn->output()->replaceAllUsesWith(conv->output());
    scopes.erase(bn);
    bn->destroy();
  }
}

bool is_relu(const Node* n) { return kind_of(n) == "aten::relu" || kind_of(n) == "aten::relu_"; }

bool is_relu6(const Node* n) {
  const std::string k = kind_of(n);
  if (k != "aten::hardtanh" && k != "aten::hardtanh_") return false;
  auto lo = torch::jit::toIValue(n->input(1)), hi = torch::jit::toIValue(n->input(2));
  if (!lo || !hi || !lo->isScalar() || !hi->isScalar()) return false;
  return lo->toScalar().toDouble() == 0.0 && hi->toScalar().toDouble() == 6.0;
}

ptq::WeightedLayer layer_of(const Node* n) {
  ptq::WeightedLayer l;
  l.kind = ptq::WeightedLayer::Kind::Conv;
  const ConvArgs a = read_conv(n);
  l.weight = a.weight;
  l.bias = a.bias;
  l.groups = a.groups;
  return l;
}

bool can_follow(const ptq::WeightedLayer& first, const ptq::WeightedLayer& second) {
  const bool depthwise = second.groups > 1 && second.weight.size(1) == 1 && second.groups == second.weight.size(0);
  return (second.groups == 1 && second.weight.size(1) == first.weight.size(0)) ||
         (depthwise && second.weight.size(0) == first.weight.size(0));
}

}  // namespace

std::vector<std::string> equalize_graph(Graph& g, std::unordered_map<const Node*, Scope>& scopes) {
  fold_batch_norms(g, scopes);
  // Pairs: first's output has one use, through a ReLU / ReLU6 with one use or directly.
  std::map<Node*, ptq::WeightedLayer> layers;
  std::vector<std::pair<Node*, Node*>> pairs;
  std::vector<Node*> nodes(g.nodes().begin(), g.nodes().end());
  for (Node* second : nodes) {
    if (!is_conv(second)) continue;
    Value* x = second->input(0);
    Node* act = nullptr;
    if ((is_relu(x->node()) || is_relu6(x->node())) && x->uses().size() == 1) {
      act = x->node();
      x = act->input(0);
    }
    Node* first = x->node();
    if (!is_conv(first) || x->uses().size() != 1) continue;
    auto a = layer_of(first), b = layer_of(second);
    if (!can_follow(a, b)) continue;
    if (act && is_relu6(act)) {
      torch::jit::WithInsertPoint guard(act);
      Value* relu = g.insert(c10::Symbol::fromQualString("aten::relu"), {act->input(0)});
      act->output()->replaceAllUsesWith(relu);
      if (scopes.count(act)) scopes[relu->node()] = scopes.at(act);
      scopes.erase(act);
      act->destroy();
    }
    layers.emplace(first, a);
    layers.emplace(second, b);
    pairs.emplace_back(first, second);
  }
  std::vector<std::pair<ptq::WeightedLayer*, ptq::WeightedLayer*>> layer_pairs;
  for (auto& [first, second] : pairs) layer_pairs.emplace_back(&layers.at(first), &layers.at(second));
  ptq::equalize_pairs(layer_pairs);
  std::vector<std::string> described;
  for (auto& [n, l] : layers) {
    set_constant(g, n, 1, l.weight.contiguous());
    if (l.bias.defined()) set_constant(g, n, 2, l.bias.contiguous());
  }
  auto path = [&](Node* n) {
    auto it = scopes.find(n);
    return it == scopes.end() || it->second.path.empty() ? std::string("(top)") : it->second.path;
  };
  for (auto& [first, second] : pairs) described.push_back(path(first) + " -> " + path(second));
  return described;
}

}  // namespace tq::graph::detail
