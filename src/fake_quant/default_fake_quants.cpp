#include "tq/fake_quant/default_fake_quants.h"

#include "tq/observers/default_observers.h"

namespace tq::fake_quant {

namespace obs = tq::observers;
using MA = obs::MovingAverageMinMaxObserver;
using MAOpt = obs::MovingAverageMinMaxObserverOptions;
using MAPC = obs::MovingAveragePerChannelMinMaxObserver;
using MAPCOpt = obs::MovingAveragePerChannelMinMaxObserverOptions;

namespace {
template <class FQ>
FakeQuantizeFactory make(obs::ObserverFactory observer) {
  return fake_quantize_with_args<FQ>(FakeQuantizeOptions().observer(std::move(observer)));
}
}  // namespace

FakeQuantizeFactory default_fake_quant() {
  return make<FakeQuantize>(obs::with_args<MA>(MAOpt().quant_min(0).quant_max(255).dtype(QDType::QUInt8)
                                                   .qscheme(QScheme::PerTensorAffine).reduce_range(true)));
}
FakeQuantizeFactory default_weight_fake_quant() {
  return make<FakeQuantize>(obs::with_args<MA>(MAOpt().quant_min(-128).quant_max(127).dtype(QDType::QInt8)
                                                   .qscheme(QScheme::PerTensorSymmetric).reduce_range(false)));
}
FakeQuantizeFactory default_dynamic_fake_quant() {
  return make<FakeQuantize>(obs::with_args<MA>(
      MAOpt().quant_min(0).quant_max(255).is_dynamic(true).dtype(QDType::QUInt8).averaging_constant(1)));
}
FakeQuantizeFactory default_fixed_qparams_range_neg1to1_fake_quant() {
  return fake_quantize_with_args<FixedQParamsFakeQuantize>(obs::default_fixed_qparams_range_neg1to1_observer());
}
FakeQuantizeFactory default_fixed_qparams_range_0to1_fake_quant() {
  return fake_quantize_with_args<FixedQParamsFakeQuantize>(obs::default_fixed_qparams_range_0to1_observer());
}
FakeQuantizeFactory default_symmetric_fixed_qparams_fake_quant() { return default_fixed_qparams_range_neg1to1_fake_quant(); }
FakeQuantizeFactory default_affine_fixed_qparams_fake_quant() { return default_fixed_qparams_range_0to1_fake_quant(); }
FakeQuantizeFactory default_per_channel_weight_fake_quant() {
  return make<FakeQuantize>(obs::with_args<MAPC>(MAPCOpt().quant_min(-128).quant_max(127).dtype(QDType::QInt8)
                                                     .qscheme(QScheme::PerChannelSymmetric).reduce_range(false)
                                                     .ch_axis(0)));
}
FakeQuantizeFactory default_embedding_fake_quant() {
  return make<FakeQuantize>(obs::with_args<MAPC>(MAPCOpt().qscheme(QScheme::PerChannelAffineFloatQParams)
                                                     .dtype(QDType::QUInt8).quant_min(0).quant_max(255)
                                                     .ch_axis(0).averaging_constant(1)));
}
FakeQuantizeFactory default_embedding_fake_quant_4bit() {
  return make<FakeQuantize>(obs::with_args<MAPC>(MAPCOpt().qscheme(QScheme::PerChannelAffineFloatQParams)
                                                     .ch_axis(0).dtype(QDType::QUInt4x2).averaging_constant(1)));
}
FakeQuantizeFactory default_histogram_fake_quant() {
  return make<FakeQuantize>(obs::with_args<obs::HistogramObserver>(
      obs::HistogramObserverOptions().quant_min(0).quant_max(255).dtype(QDType::QUInt8)
          .qscheme(QScheme::PerTensorAffine).reduce_range(true)));
}
FakeQuantizeFactory default_fused_act_fake_quant() {
  return make<FusedMovingAvgObsFakeQuantize>(obs::with_args<MA>(MAOpt().quant_min(0).quant_max(255).dtype(QDType::QUInt8)));
}
FakeQuantizeFactory default_fused_wt_fake_quant() {
  return make<FusedMovingAvgObsFakeQuantize>(obs::with_args<MA>(
      MAOpt().quant_min(-128).quant_max(127).dtype(QDType::QInt8).qscheme(QScheme::PerTensorSymmetric)));
}
FakeQuantizeFactory default_fused_per_channel_wt_fake_quant() {
  return make<FusedMovingAvgObsFakeQuantize>(obs::with_args<MAPC>(
      MAPCOpt().quant_min(-128).quant_max(127).dtype(QDType::QInt8).qscheme(QScheme::PerChannelSymmetric)));
}
FakeQuantizeFactory fused_wt_fake_quant_range_neg_127_to_127() {
  return make<FusedMovingAvgObsFakeQuantize>(obs::with_args<MA>(MAOpt().quant_min(-127).quant_max(127)
                                                                    .dtype(QDType::QInt8)
                                                                    .qscheme(QScheme::PerTensorSymmetric)
                                                                    .eps(1.0 / 4096)));
}
FakeQuantizeFactory fused_per_channel_wt_fake_quant_range_neg_127_to_127() {
  return make<FusedMovingAvgObsFakeQuantize>(obs::with_args<MAPC>(MAPCOpt().quant_min(-127).quant_max(127)
                                                                      .dtype(QDType::QInt8)
                                                                      .qscheme(QScheme::PerChannelSymmetric)
                                                                      .eps(1.0 / 4096)));
}

}  // namespace tq::fake_quant
