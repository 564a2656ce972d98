#pragma once
// Cross-layer equalization on a frozen graph, before observers go in (prepare with
// GraphQuantizeOptions::equalize). Not installed.
#include <string>
#include <unordered_map>
#include <vector>

#include "observed_model_impl.h"

namespace tq::graph::detail {

// Folds each eval-mode batch norm into the convolution before it, turns a ReLU6 between two
// convolutions into a ReLU (ReLU6 is not scale-equivariant; AIMET does the same), then equalizes
// every convolution -> (ReLU) -> convolution pair until the scales settle, replacing the weight
// and bias constants. Returns the pairs as "first -> second" module paths.
std::vector<std::string> equalize_graph(Graph& g, std::unordered_map<const Node*, Scope>& scopes);

}  // namespace tq::graph::detail
