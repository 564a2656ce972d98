// Observers merging their statistics across the ranks of a distributed calibration
// (Quantizer::merge_across_processes; the rules are in tq/distributed/observer_sync.h).
// Placeholder, fixed-qparams and no-op observers merge nothing (inline in their headers); any
// other quantizer refuses, naming itself.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Type.h>

#include <limits>
#include <typeinfo>

#include "tq/core/check.h"
#include "tq/core/collective.h"
#include "tq/observers/histogram_observer.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"

namespace tq {
namespace {

constexpr const char* kOp = "sync_observers";
constexpr float kInf = std::numeric_limits<float>::infinity();

void reduce_min_max(at::Tensor min_val, at::Tensor max_val, Collective& group) {
  std::vector<at::Tensor> lo{min_val}, hi{max_val};
  group.all_reduce(lo, ReduceOp::Min);
  group.all_reduce(hi, ReduceOp::Max);
}

// Mean of the running ranges over the ranks that have one.
void average_min_max(at::Tensor min_val, at::Tensor max_val, Collective& group) {
  const auto has = at::isfinite(min_val).logical_and(at::isfinite(max_val)).to(at::kFloat);
  std::vector<at::Tensor> sums{at::where(has > 0, min_val, at::zeros_like(min_val)),
                               at::where(has > 0, max_val, at::zeros_like(max_val)), has};
  group.all_reduce(sums, ReduceOp::Sum);
  const auto seen = sums[2] > 0;
  min_val.copy_(at::where(seen, sums[0] / sums[2], at::full_like(min_val, kInf)));
  max_val.copy_(at::where(seen, sums[1] / sums[2], at::full_like(max_val, -kInf)));
}

// Per-channel ranges: ranks that saw no data hold empty tensors; give them the agreed length.
// Returns whether any rank saw data.
bool agree_on_channels(const std::string& name, at::Tensor min_val, at::Tensor max_val, Collective& group) {
  const auto lengths = group.all_gather(at::tensor({min_val.numel()}, at::kLong));
  int64_t channels = 0;
  for (const auto& l : lengths) {
    const int64_t c = l.item<int64_t>();
    TQ_CHECK(c == 0 || channels == 0 || c == channels, kOp, "'", name, "' saw ", channels, " channels on one rank and ",
             c, " on another");
    if (c != 0) channels = c;
  }
  if (min_val.numel() == 0 && channels > 0) {
    min_val.resize_({channels}).fill_(kInf);
    max_val.resize_({channels}).fill_(-kInf);
  }
  return channels > 0;
}

}  // namespace

void Quantizer::merge_across_processes(Collective&, const std::string& name) {
  TQ_FAIL(kOp, "'", name, "' is a ", c10::demangle(typeid(*this).name()),
          ", which cannot be synchronized yet (MinMax, PerChannelMinMax, their moving averages and Histogram "
          "observers can)");
}

namespace observers {

void MinMaxObserver::merge_across_processes(Collective& group, const std::string&) {
  at::NoGradGuard no_grad;
  reduce_min_max(min_val_, max_val_, group);
}

void MovingAverageMinMaxObserver::merge_across_processes(Collective& group, const std::string&) {
  at::NoGradGuard no_grad;
  average_min_max(min_val_, max_val_, group);
}

void PerChannelMinMaxObserver::merge_across_processes(Collective& group, const std::string& name) {
  at::NoGradGuard no_grad;
  if (agree_on_channels(name, min_val_, max_val_, group)) reduce_min_max(min_val_, max_val_, group);
}

void MovingAveragePerChannelMinMaxObserver::merge_across_processes(Collective& group, const std::string& name) {
  at::NoGradGuard no_grad;
  if (agree_on_channels(name, min_val_, max_val_, group)) average_min_max(min_val_, max_val_, group);
}

void HistogramObserver::merge_across_processes(Collective& group, const std::string&) {
  at::NoGradGuard no_grad;
  const auto hists = group.all_gather(histogram_);
  const auto ranges = group.all_gather(at::stack({min_val_, max_val_}));
  histogram_.copy_(hists[0]);
  min_val_.fill_(ranges[0][0].item<float>());
  max_val_.fill_(ranges[0][1].item<float>());
  for (size_t r = 1; r < hists.size(); ++r) merge(hists[r], ranges[r][0].item<float>(), ranges[r][1].item<float>());
}

}  // namespace observers
}  // namespace tq
