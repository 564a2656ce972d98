#include "tq/fake_quant/adaround_fake_quantizer.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include <sstream>

#include "tq/core/check.h"

namespace tq::fake_quant {

AdaroundFakeQuantizerOptions::AdaroundFakeQuantizerOptions()
    : observer_(observers::with_args<observers::MinMaxObserver>(observers::MinMaxObserverOptions()
                                                                    .dtype(QDType::QInt8)
                                                                    .qscheme(QScheme::PerTensorSymmetric)
                                                                    .quant_min(-128)
                                                                    .quant_max(127))) {}

AdaroundFakeQuantizer::AdaroundFakeQuantizer(const AdaroundFakeQuantizerOptions& options)
    : FakeQuantize("AdaroundFakeQuantizer", FakeQuantizeOptions().observer(options.observer()), c10::kByte) {
  TQ_CHECK(is_symmetric(qscheme_), name(), "only symmetric quantization is supported, got ", to_string(qscheme_));
  TQ_CHECK(dtype_ == QDType::QInt8 || dtype_ == QDType::QInt32, name(),
           "needs a signed dtype (zero point 0), got ", to_string(dtype_));
  // Empty until the observer first runs, as in PyTorch.
  scale_.resize_({0});
  zero_point_.resize_({0});
  V_ = register_parameter("V", at::empty({0}));
}

at::Tensor AdaroundFakeQuantizer::rectified_sigmoid() const {
  if (!use_soft_rounding_) return (V_ >= 0).to(at::kFloat);
  const auto zeta = at::scalar_tensor(kZeta), gamma = at::scalar_tensor(kGamma);
  return at::clamp(at::sigmoid(V_) * (zeta - gamma) + gamma, 0, 1);
}

void AdaroundFakeQuantizer::update_scale(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point) {
  at::NoGradGuard no_grad;
  scale_.resize_(scale.sizes()).copy_(scale);
  zero_point_.resize_(scale.sizes()).zero_();  // symmetric: the zero point is 0
  const auto xq = x / scale_;
  const auto residual = xq - at::floor(xq);
  TQ_CHECK(at::all(residual >= 0).item<bool>(), name(), "rounding residual must be in [0, 1)");
  const auto zeta = at::scalar_tensor(kZeta), gamma = at::scalar_tensor(kGamma);
  const auto v_init = -at::log((zeta - gamma) / (residual - gamma) - 1);
  V_.set_data(v_init.contiguous());
}

at::Tensor AdaroundFakeQuantizer::forward(const at::Tensor& x) {
  const std::string& op = name();
  TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat && x.numel() > 0, op, "input must be a non-empty float32 tensor");
  if (observer_enabled()) {
    const auto xd = x.detach();
    observer_->forward(xd);
    auto qp = observer_->calculate_qparams();
    if (is_per_channel()) {
      // Broadcast [C] along ch_axis.
      std::vector<int64_t> shape(x.dim(), 1);
      const int64_t axis = ch_axis_ < 0 ? ch_axis_ + x.dim() : ch_axis_;
      shape[axis] = qp.scale.numel();
      qp.scale = qp.scale.reshape(shape);
      qp.zero_point = qp.zero_point.reshape(shape);
    }
    update_scale(xd, qp.scale, qp.zero_point);
  }
  if (!fake_quant_enabled()) return x;
  TQ_CHECK(scale_.numel() > 0, op, "no scale yet: run the observer once before fake quantizing");
  TQ_CHECK(V_.sizes() == x.sizes(), op, "V has shape ", V_.sizes(), " but the input has shape ", x.sizes());
  const auto h = rectified_sigmoid();
  const auto zp = zero_point_.to(at::kFloat);
  const auto xq_floor = at::floor(x / scale_) + zp;
  return (at::clamp(xq_floor + h, quant_min_, quant_max_) - zp) * scale_;
}

std::string AdaroundFakeQuantizer::extra_repr() const {
  std::ostringstream s;
  s << FakeQuantize::extra_repr() << ", soft_rounding=" << (use_soft_rounding_ ? "true" : "false")
    << ", V>=0: " << (V_.numel() ? (V_ >= 0).sum().item<int64_t>() : 0) << " of " << V_.numel();
  return s.str();
}

}  // namespace tq::fake_quant
