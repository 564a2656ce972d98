// Observer synchronization for distributed calibration (rules in observer_sync.h).
#include "tq/distributed/observer_sync.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

#include "tq/graph/graph_quantizer.h"
#include "tq/core/check.h"
#include "tq/observers/histogram_observer.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"
#include "tq/observers/quantizer.h"
#include "tq/observers/simple_observers.h"

namespace tq::distributed {
namespace {

constexpr const char* kOp = "sync_observers";
constexpr float kInf = std::numeric_limits<float>::infinity();

template <class T>
bool is(const torch::nn::Module& m) {
  return dynamic_cast<const T*>(&m) != nullptr;
}

// What every rank must agree on before statistics move.
int64_t checksum(const std::vector<NamedQuantizer>& observers) {
  std::ostringstream s;
  for (const auto& [name, m] : observers) {
    s << name << '|' << m->name();
    if (const auto* q = dynamic_cast<const Quantizer*>(m.get())) {
      s << '|' << to_string(q->dtype()) << '|' << to_string(q->qscheme()) << '|' << q->ch_axis();
    }
    s << '\n';
  }
  return static_cast<int64_t>(std::hash<std::string>{}(s.str()) & 0x7fffffffffffffffULL);
}

void check_same_observers(const std::vector<NamedQuantizer>& observers, ProcessGroup& group) {
  const auto mine = at::tensor({checksum(observers), static_cast<int64_t>(observers.size())}, at::kLong);
  const auto all = group.all_gather(mine);
  for (int64_t r = 1; r < group.world_size(); ++r) {
    TQ_CHECK(all[r].equal(all[0]), kOp, "rank ", r, " holds different observers than rank 0 (",
             all[r][1].item<int64_t>(), " against ", all[0][1].item<int64_t>(),
             ", or other names, types or qconfigs): every rank must prepare the same model with the same qconfig");
  }
}

// Per-channel ranges: ranks that saw no data hold empty tensors; give them the agreed length.
void agree_on_channels(const std::string& name, at::Tensor min_val, at::Tensor max_val, ProcessGroup& group) {
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
}

void sync_min_max(at::Tensor min_val, at::Tensor max_val, ProcessGroup& group) {
  std::vector<at::Tensor> lo{min_val}, hi{max_val};
  group.all_reduce(lo, ReduceOp::Min);
  group.all_reduce(hi, ReduceOp::Max);
}

// Mean of the running ranges over the ranks that have one.
void sync_moving_average(at::Tensor min_val, at::Tensor max_val, ProcessGroup& group) {
  const auto has = at::isfinite(min_val).logical_and(at::isfinite(max_val)).to(at::kFloat);
  std::vector<at::Tensor> sums{at::where(has > 0, min_val, at::zeros_like(min_val)),
                               at::where(has > 0, max_val, at::zeros_like(max_val)), has};
  group.all_reduce(sums, ReduceOp::Sum);
  const auto seen = sums[2] > 0;
  min_val.copy_(at::where(seen, sums[0] / sums[2], at::full_like(min_val, kInf)));
  max_val.copy_(at::where(seen, sums[1] / sums[2], at::full_like(max_val, -kInf)));
}

void sync_histogram(observers::HistogramObserver& obs, ProcessGroup& group) {
  const auto hists = group.all_gather(obs.histogram());
  const auto ranges = group.all_gather(at::stack({obs.min_val(), obs.max_val()}));
  at::Tensor hist = obs.histogram(), lo = obs.min_val(), hi = obs.max_val();
  hist.copy_(hists[0]);
  lo.fill_(ranges[0][0].item<float>());
  hi.fill_(ranges[0][1].item<float>());
  for (int64_t r = 1; r < group.world_size(); ++r) {
    obs.merge(hists[r], ranges[r][0].item<float>(), ranges[r][1].item<float>());
  }
}

}  // namespace

std::vector<NamedQuantizer> observers_of(torch::nn::Module& model) {
  std::vector<NamedQuantizer> out;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    if (dynamic_cast<const Quantizer*>(item.value().get()) != nullptr) out.emplace_back(item.key(), item.value());
  }
  return out;
}

std::vector<NamedQuantizer> observers_of(graph::ObservedModel& model) { return model.named_observers(); }

void sync_observers(const std::vector<NamedQuantizer>& observers, ProcessGroup& group) {
  check_same_observers(observers, group);
  if (group.world_size() == 1) return;
  at::NoGradGuard no_grad;
  for (const auto& [name, m] : observers) {
    if (auto* mm = dynamic_cast<observers::MovingAverageMinMaxObserver*>(m.get())) {
      sync_moving_average(mm->min_val(), mm->max_val(), group);
    } else if (auto* pm = dynamic_cast<observers::MovingAveragePerChannelMinMaxObserver*>(m.get())) {
      agree_on_channels(name, pm->min_val(), pm->max_val(), group);
      if (pm->min_val().numel() > 0) sync_moving_average(pm->min_val(), pm->max_val(), group);
    } else if (auto* mm = dynamic_cast<observers::MinMaxObserver*>(m.get())) {
      sync_min_max(mm->min_val(), mm->max_val(), group);
    } else if (auto* pm = dynamic_cast<observers::PerChannelMinMaxObserver*>(m.get())) {
      agree_on_channels(name, pm->min_val(), pm->max_val(), group);
      if (pm->min_val().numel() > 0) sync_min_max(pm->min_val(), pm->max_val(), group);
    } else if (auto* h = dynamic_cast<observers::HistogramObserver*>(m.get())) {
      sync_histogram(*h, group);
    } else if (is<observers::FixedQParamsObserver>(*m) || is<observers::PlaceholderObserver>(*m) ||
               is<observers::NoopObserver>(*m)) {
      continue;  // nothing observed
    } else {
      TQ_FAIL(kOp, "'", name, "' is a ", m->name(),
              ", which cannot be synchronized yet (MinMax, PerChannelMinMax, their moving averages and Histogram "
              "observers can)");
    }
  }
}

}  // namespace tq::distributed
