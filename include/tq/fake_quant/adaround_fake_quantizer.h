#pragma once
// AdaroundFakeQuantizer (AdaRound, https://arxiv.org/pdf/2004.10568.pdf): weights round down or up
// as a learned parameter V decides. Symmetric signed quantization only.
//   h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1)     (soft rounding, zeta 1.1, gamma -0.1)
//   h(V) = (V >= 0)                                              (hard rounding)
//   y    = (clamp(floor(x / scale) + zero_point + h(V), quant_min, quant_max) - zero_point) * scale
// When the observer runs, scale comes from it and V is re-initialised from the rounding residual
// r = x / scale - floor(x / scale) so that h(V) == r: V = -log((zeta - gamma) / (r - gamma) - 1).
// Gradients reach V, not the weight (floor has none).
#include "tq/fake_quant/fake_quantize.h"

namespace tq::fake_quant {

struct AdaroundFakeQuantizerOptions {
  // MinMaxObserver, qint8, per_tensor_symmetric, [-128, 127]; a PerChannelMinMaxObserver with
  // per_channel_symmetric gives per-channel AdaRound along its ch_axis.
  AdaroundFakeQuantizerOptions();
  TQ_OPTION(AdaroundFakeQuantizerOptions, observers::ObserverFactory, observer);
};

class AdaroundFakeQuantizer : public FakeQuantize {
 public:
  explicit AdaroundFakeQuantizer(const AdaroundFakeQuantizerOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  QParams calculate_qparams() override { return {scale_, zero_point_}; }
  std::string extra_repr() const override;
  std::vector<std::string> resizable_buffers() const override { return {"scale", "zero_point"}; }

  // The rectified sigmoid h(V) (soft) or V >= 0 (hard), as float.
  at::Tensor rectified_sigmoid() const;
  void use_soft_rounding(bool soft) { use_soft_rounding_ = soft; }
  bool soft_rounding() const { return use_soft_rounding_; }
  void enable_weight_fake_quant() { enable_fake_quant(true); }
  const at::Tensor& V() const { return V_; }
  static constexpr float kZeta = 1.1f;
  static constexpr float kGamma = -0.1f;

 private:
  void update_scale(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point);

  at::Tensor V_;  // parameter, x's shape once observed
  bool use_soft_rounding_ = true;
};

}  // namespace tq::fake_quant
