#include "tq/observers/groupwise_weight_observer.h"

#include "tq/core/check.h"

namespace tq::observers {

GroupwiseWeightObserver::GroupwiseWeightObserver(const GroupwiseWeightObserverOptions& o)
    : ObserverBase("GroupwiseWeightObserver", o.bits() == 4 ? QDType::QUInt4x2 : QDType::QUInt8, false), options_(o) {
  TQ_CHECK(o.bits() == 4 || o.bits() == 8, name(), "weight-only quantization takes 4 or 8 bits, got ", o.bits());
  TQ_CHECK(o.group_size() > 0 && o.group_size() % 32 == 0, name(),
           "the group size must be a positive multiple of 32, got ", o.group_size());
  TQ_CHECK(o.gptq_damp() > 0 && o.gptq_damp() < 1, name(), "GPTQ's damping must lie in (0, 1), got ", o.gptq_damp());
}

at::Tensor GroupwiseWeightObserver::forward(const at::Tensor& x) {
  TQ_CHECK(x.defined() && x.dim() == 2, name(), "observes 2-D Linear weights, got ",
           x.defined() ? std::to_string(x.dim()) + "-D" : std::string("an undefined tensor"));
  groupwise_qparams(x.to(at::kFloat).contiguous(), options_.bits(), options_.group_size(), scales_, zero_points_);
  return x;
}

QParams GroupwiseWeightObserver::calculate_qparams() {
  TQ_CHECK(has_observed(), name(), "calculate_qparams before any weight was observed");
  return {scales_, zero_points_};
}

std::string GroupwiseWeightObserver::extra_repr() const {
  std::string repr = "bits=" + std::to_string(options_.bits()) + ", group_size=" + std::to_string(options_.group_size());
  if (options_.gptq()) {
    repr += ", gptq=True, gptq_damp=" + std::to_string(options_.gptq_damp()) +
            ", gptq_act_order=" + (options_.gptq_act_order() ? "True" : "False");
  }
  return repr;
}

}  // namespace tq::observers
