#include "tq/observers/batch_range_reduction.h"

#include <utility>

namespace tq::observers {
namespace {
BatchRangeReduction& installed() {
  static BatchRangeReduction reduction;
  return reduction;
}
}  // namespace

ScopedBatchRangeReduction::ScopedBatchRangeReduction(BatchRangeReduction reduction)
    : previous_(std::exchange(installed(), std::move(reduction))) {}

ScopedBatchRangeReduction::~ScopedBatchRangeReduction() { installed() = std::move(previous_); }

void reduce_batch_range(float* min, float* max, int64_t n) {
  if (installed()) installed()(min, max, n);
}

}  // namespace tq::observers
