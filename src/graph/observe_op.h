#pragma once
// tq::observe(Tensor(a) x, int slot) -> Tensor(a): the operator prepare() inserts where a value is
// observed. It hands x to the observer registered under `slot` and returns x itself, so the
// observed model runs in LibTorch's own interpreter at the float model's speed.
//
// tq::qat(Tensor x, int slot) -> Tensor: the operator graph-mode QAT puts where a value is
// fake-quantized or a layer trains; it returns what the function under `slot` computes from x
// (autograd records the function's own operations).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

namespace torch::jit {
struct Graph;
struct Value;
}  // namespace torch::jit

namespace tq::graph::detail {

using ObserveFn = std::function<void(const at::Tensor&)>;
using QatFn = std::function<at::Tensor(const at::Tensor&)>;

// Slots are unique in the process; release them when their model goes away.
int64_t register_observer_slot(ObserveFn fn);
void release_observer_slot(int64_t slot);
// Inserts the observe op after v's producer and makes every later use of v read its output.
torch::jit::Value* insert_observe(torch::jit::Graph& g, torch::jit::Value* v, int64_t slot);
bool is_observe_node_kind(const char* qualified_kind);
extern const char* const kObserveOp;

int64_t register_qat_slot(QatFn fn);
void release_qat_slot(int64_t slot);
extern const char* const kQatOp;

}  // namespace tq::graph::detail
