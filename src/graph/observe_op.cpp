#include "observe_op.h"

#include <torch/csrc/jit/ir/ir.h>
#include <torch/library.h>

#include <cstring>
#include <mutex>
#include <unordered_map>

#include "tq/core/check.h"

namespace tq::graph::detail {
namespace {

template <class Fn>
struct SlotTable {
  std::mutex mutex;
  int64_t next = 1;
  std::unordered_map<int64_t, Fn> fns;

  int64_t add(Fn fn) {
    std::lock_guard<std::mutex> lock(mutex);
    const int64_t slot = next++;
    fns.emplace(slot, std::move(fn));
    return slot;
  }
  void remove(int64_t slot) {
    std::lock_guard<std::mutex> lock(mutex);
    fns.erase(slot);
  }
  Fn find(int64_t slot, const char* op, const char* what, const char* hint) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = fns.find(slot);
    TQ_CHECK(it != fns.end(), op, "no ", what, " is registered for slot ", slot, ": ", hint);
    return it->second;
  }
};
SlotTable<ObserveFn>& table() {
  static SlotTable<ObserveFn> t;
  return t;
}
SlotTable<QatFn>& qat_table() {
  static SlotTable<QatFn> t;
  return t;
}

at::Tensor observe(const at::Tensor& x, int64_t slot) {
  table().find(slot, "tq::observe", "observer",
               "an observed model was saved and loaded without tq::graph::load_observed")(x);
  return x;
}

at::Tensor qat(const at::Tensor& x, int64_t slot) {
  return qat_table().find(slot, "tq::qat", "QAT function", "the QAT model that registered it is gone")(x);
}

}  // namespace

const char* const kObserveOp = "tq::observe";
const char* const kQatOp = "tq::qat";

TORCH_LIBRARY(tq, m) {
  m.def(torch::schema("tq::observe(Tensor(a) x, int slot) -> Tensor(a)", c10::AliasAnalysisKind::FROM_SCHEMA),
        &observe);
  // A composite kernel: autograd records what the slot's function computes.
  m.def(torch::schema("tq::qat(Tensor x, int slot) -> Tensor", c10::AliasAnalysisKind::CONSERVATIVE), &qat);
}

int64_t register_observer_slot(ObserveFn fn) { return table().add(std::move(fn)); }
void release_observer_slot(int64_t slot) { table().remove(slot); }
int64_t register_qat_slot(QatFn fn) { return qat_table().add(std::move(fn)); }
void release_qat_slot(int64_t slot) { qat_table().remove(slot); }

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
