// Observer synchronization for distributed calibration (rules in observer_sync.h).
#include "tq/distributed/observer_sync.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <functional>
#include <sstream>

#include "tq/graph/graph_quantizer.h"
#include "tq/core/check.h"
#include "tq/observers/quantizer.h"

namespace tq::distributed {
namespace {

constexpr const char* kOp = "sync_observers";

Quantizer& as_quantizer(torch::nn::Module& m) {
  auto* q = dynamic_cast<Quantizer*>(&m);
  TQ_CHECK(q != nullptr, kOp, "'", m.name(), "' is not an observer or fake quantizer");
  return *q;
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
  for (const auto& [name, m] : observers) as_quantizer(*m).merge_across_processes(group, name);
}

}  // namespace tq::distributed
