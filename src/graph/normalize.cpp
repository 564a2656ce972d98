#include "normalize.h"

#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/remove_dropout.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/passes/shape_analysis.h>

#include <vector>

namespace tq::graph::detail {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// Scripted DenseNet builds `features = [x]` and appends each layer's output, with torch.cat reading
// the list between appends; LibTorch's RemoveListMutation leaves such lists alone. When every use
// is in the same block and is an append (whose result is unused) or a reader that does not
// mutate, each reader gets its own prim::ListConstruct of the elements at that point.
bool snapshot_list(Node* list) {
  Value* v = list->output();
  std::vector<Node*> users;
  for (const auto& use : v->uses()) users.push_back(use.user);
  for (auto* u : users) {
    if (u->owningBlock() != list->owningBlock()) return false;
    const std::string k = u->kind().toQualString();
    if (k == "aten::append") {
      if (u->input(0) != v || u->output()->hasUses()) return false;
    } else if (k != "aten::cat" && k != "aten::stack" && k != "aten::len" && k != "aten::__getitem__") {
      return false;
    }
  }
  std::sort(users.begin(), users.end(), [](Node* a, Node* b) { return a->isBefore(b); });
  std::vector<Value*> elements(list->inputs().begin(), list->inputs().end());
  auto* g = list->owningGraph();
  for (auto* u : users) {
    if (u->kind().toQualString() == std::string("aten::append")) {
      elements.push_back(u->input(1));
      continue;
    }
    torch::jit::WithInsertPoint guard(u);
    auto* snapshot = g->insertNode(g->createList(v->type()->containedType(0), elements))->output();
    for (size_t i = 0; i < u->inputs().size(); ++i) {
      if (u->input(i) == v) u->replaceInput(i, snapshot);
    }
  }
  for (auto* u : users) {
    if (u->kind().toQualString() == std::string("aten::append")) u->destroy();
  }
  return true;
}

void snapshot_appended_lists(torch::jit::Graph& g) {
  std::vector<Node*> lists;
  for (auto* n : g.nodes()) {
    if (n->kind() == c10::prim::ListConstruct) lists.push_back(n);
  }
  for (auto* n : lists) snapshot_list(n);
}

}  // namespace

void normalize_frozen_graph(std::shared_ptr<torch::jit::Graph>& g) {
  torch::jit::removeDropout(g);
  torch::jit::RemoveListMutation(g);
  torch::jit::RemoveTensorMutation(g);
  snapshot_appended_lists(*g);
  torch::jit::ConstantPropagation(g);
  torch::jit::EliminateDeadCode(g);
  torch::jit::EraseShapeInformation(g);
}

}  // namespace tq::graph::detail
