#pragma once
// Brings a frozen forward graph to the form the matcher reads: dropout removed, in-place ops made
// functional where that is safe, lists that are appended to turned into one list per reader,
// constants folded, dead code removed, shape information erased (traced graphs carry the example
// input's shapes, which an int8 graph must not keep).
#include <memory>

namespace torch::jit {
struct Graph;
}

namespace tq::graph::detail {

void normalize_frozen_graph(std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace tq::graph::detail
