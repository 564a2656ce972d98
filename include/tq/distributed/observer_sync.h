#pragma once
// Distributed calibration: ranks that each observed their own shard of the calibration data
// make their observers hold the statistics of all the data, identically on every rank, so every
// rank converts to the same int8 model. Each observer merges itself
// (Quantizer::merge_across_processes), by these rules:
//   MinMax and PerChannelMinMax observers: min and max all-reduced, exactly the qparams of one
//     process that saw all the data.
//   Moving-average variants: the mean over the ranks that saw data of their running min and max
//     (identical on every rank; not what one process would compute, as an average over batches
//     depends on their order).
//   HistogramObserver: the ranks' states merged in rank order with HistogramObserver::merge.
//   Placeholder / fixed-qparams / no-op observers: nothing to synchronize.
//   Any other observer or fake quantizer: an error naming it.
// Before any statistic moves, the ranks compare a checksum of their observers (names, types,
// dtypes, schemes): ranks holding different models or qconfigs fail with an error naming the
// first rank that differs, instead of exchanging mismatched tensors.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tq/distributed/process_group.h"

namespace torch::nn {
class Module;
}

namespace tq::graph {
class ObservedModel;
}

namespace tq::distributed {

using NamedQuantizer = std::pair<std::string, std::shared_ptr<torch::nn::Module>>;

// The observers of an eager model (prepared with tq::quant::prepare), by qualified name.
std::vector<NamedQuantizer> observers_of(torch::nn::Module& model);
// The observers of a graph-mode observed model, named by observation point.
std::vector<NamedQuantizer> observers_of(graph::ObservedModel& model);

// Synchronizes the given observers across the group (see above); collective: every rank calls it.
void sync_observers(const std::vector<NamedQuantizer>& observers, ProcessGroup& group);
inline void sync_observers(torch::nn::Module& model, ProcessGroup& group) {
  sync_observers(observers_of(model), group);
}
inline void sync_observers(graph::ObservedModel& model, ProcessGroup& group) {
  sync_observers(observers_of(model), group);
}

}  // namespace tq::distributed
