#pragma once
// The range of each observed batch, made global: data-parallel training installs a reduction
// (an all-reduce over the ranks, tq/distributed/data_parallel.h) and every min/max-based observer
// and fused fake quantizer then updates its statistics with the range of the whole global batch,
// as one process seeing every rank's shard would (what SyncBatchNorm does for batch norms). With
// none installed, observers use their own batch's range.
#include <cstdint>
#include <functional>

namespace tq::observers {

// Replaces min[i] / max[i] (n values: 1 per tensor, or one per channel) by the global ones.
using BatchRangeReduction = std::function<void(float* min, float* max, int64_t n)>;

// Installs a reduction for the whole process until the returned guard goes out of scope.
class ScopedBatchRangeReduction {
 public:
  explicit ScopedBatchRangeReduction(BatchRangeReduction reduction);
  ~ScopedBatchRangeReduction();
  ScopedBatchRangeReduction(const ScopedBatchRangeReduction&) = delete;
  ScopedBatchRangeReduction& operator=(const ScopedBatchRangeReduction&) = delete;

 private:
  BatchRangeReduction previous_;
};

// Called by observers on each batch's range (after checking it is finite).
void reduce_batch_range(float* min, float* max, int64_t n);

// Runs fn with no reduction: for tensors that are the same on every rank (weights, which
// data-parallel training keeps identical), where a reduction would change nothing but cost a
// round trip.
template <class Fn>
auto same_on_every_rank(Fn fn) -> decltype(fn()) {
  ScopedBatchRangeReduction none{BatchRangeReduction()};
  return fn();
}

}  // namespace tq::observers
