#include "observe_op.h"

#include <torch/csrc/jit/ir/ir.h>
#include <torch/library.h>

#include <cstring>
#include <mutex>
#include <unordered_map>

#include "tq/core/check.h"

namespace tq::graph::detail {
namespace {

struct SlotTable {
  std::mutex mutex;
  int64_t next = 1;
  std::unordered_map<int64_t, ObserveFn> fns;
};
SlotTable& table() {
  static SlotTable t;
  return t;
}

at::Tensor observe(const at::Tensor& x, int64_t slot) {
  ObserveFn fn;
  {
    auto& t = table();
    std::lock_guard<std::mutex> lock(t.mutex);
    auto it = t.fns.find(slot);
    TQ_CHECK(it != t.fns.end(), "tq::observe", "no observer is registered for slot ", slot,
             ": an observed model was saved and loaded without tq::graph::load_observed");
    fn = it->second;
  }
  fn(x);
  return x;
}

}  // namespace

const char* const kObserveOp = "tq::observe";

TORCH_LIBRARY(tq, m) {
  m.def(torch::schema("tq::observe(Tensor(a) x, int slot) -> Tensor(a)", c10::AliasAnalysisKind::FROM_SCHEMA),
        &observe);
}

int64_t register_observer_slot(ObserveFn fn) {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  const int64_t slot = t.next++;
  t.fns.emplace(slot, std::move(fn));
  return slot;
}

void release_observer_slot(int64_t slot) {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  t.fns.erase(slot);
}

torch::jit::Value* insert_observe(torch::jit::Graph& g, torch::jit::Value* v, int64_t slot) {
  torch::jit::Node* after = v->node();
  torch::jit::WithInsertPoint guard(after->kind() == c10::prim::Param ? g.block()->nodes().front()
                                                                       : after->next());
  auto* out = g.insert(c10::Symbol::fromQualString(kObserveOp), {v, slot});
  out->setType(v->type());
  if (after->kind() == c10::prim::Param) {
    v->replaceAllUsesWith(out);
    out->node()->replaceInput(0, v);
  } else {
    v->replaceAllUsesAfterNodeWith(out->node(), out);
  }
  return out;
}

bool is_observe_node_kind(const char* qualified_kind) { return std::strcmp(qualified_kind, kObserveOp) == 0; }

}  // namespace tq::graph::detail
