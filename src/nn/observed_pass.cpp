#include "tq/nn/observed_pass.h"

#include <ATen/ATen.h>

#include "tq/nn/qconfig.h"

namespace tq::nn {

namespace {
thread_local const ObservedPass* current_pass = nullptr;
}  // namespace

ObservedPassGuard::ObservedPassGuard(const ObservedPass& pass) : previous_(current_pass) { current_pass = &pass; }
ObservedPassGuard::~ObservedPassGuard() { current_pass = previous_; }

const ObservedPass* current_observed_pass() { return current_pass; }

at::Tensor observe_output(torch::nn::Module& observer, const at::Tensor& y) {
  const ObservedPass* pass = current_pass;
  if (pass == nullptr) {
    run_quantizer(observer, y.detach());
    return y;
  }
  // An observer without data (the algorithms check calibration first) leaves y as it is.
  if (pass->kind == ObservedPass::Kind::Float || !y.is_floating_point() || !quantizer_has_observed(observer)) return y;
  auto it = pass->qparams.find(&observer);
  if (it == pass->qparams.end()) {
    const auto qp = quantizer_qparams(observer);
    it = pass->qparams.emplace(&observer, std::make_pair(qp.scale.item<double>(), qp.zero_point.item<int64_t>())).first;
  }
  // 0..255: the int8 modules requantize to the full quint8 range whatever the observer's range.
  return at::fake_quantize_per_tensor_affine(y, it->second.first, it->second.second, 0, 255);
}

}  // namespace tq::nn
