#pragma once
// The weight "observer" of weight-only Linear: group-wise 4- or 8-bit qparams of the weight it
// sees (tq/numerics/groupwise_weight.h; one scale and zero point per output channel and group of
// input features). quant::weight_only_qconfig puts it in a QConfig; graph mode's convert then
// stores the weight packed and calls tq::linear_weight_only. The qparams it records are
// round-to-nearest's; with the gptq option, convert takes GPTQ's weights and qparams instead.
#include "tq/numerics/groupwise_weight.h"
#include "tq/observers/observer_base.h"

namespace tq::observers {

struct GroupwiseWeightObserverOptions {
  TQ_OPTION(GroupwiseWeightObserverOptions, int64_t, bits) = 4;         // 4 or 8
  TQ_OPTION(GroupwiseWeightObserverOptions, int64_t, group_size) = 128;  // a multiple of 32
  // Weights chosen by GPTQ (tq/ptq/gptq.h) from the inputs the layer sees in calibration, rather
  // than rounded to nearest: graph mode collects each layer's input Hessian while calibrating.
  TQ_OPTION(GroupwiseWeightObserverOptions, bool, gptq) = false;
  TQ_OPTION(GroupwiseWeightObserverOptions, double, gptq_damp) = 0.01;  // GPTQ's damping (GptqOptions::damp)
  TQ_OPTION(GroupwiseWeightObserverOptions, bool, gptq_act_order) = false;  // GptqOptions::act_order
};

class GroupwiseWeightObserver : public ObserverBase {
 public:
  explicit GroupwiseWeightObserver(const GroupwiseWeightObserverOptions& options = {});
  // Records the qparams of x, a 2-D float weight [out, in]; throws if the group size does not fit.
  at::Tensor forward(const at::Tensor& x) override;
  // scale and zero_point, float32 [out, in / group_size] each (zero points integer-valued).
  QParams calculate_qparams() override;
  QScheme qscheme() const override { return QScheme::PerChannelAffine; }  // per channel and group
  int64_t ch_axis() const override { return 0; }
  bool has_observed() const override { return scales_.defined(); }
  std::string extra_repr() const override;
  // A weight is the same on every rank.
  void merge_across_processes(Collective&, const std::string&) override {}
  const GroupwiseWeightObserverOptions& options() const { return options_; }

 private:
  GroupwiseWeightObserverOptions options_;
  at::Tensor scales_, zero_points_;
};

}  // namespace tq::observers
