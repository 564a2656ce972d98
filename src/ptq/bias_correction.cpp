#include "tq/ptq/bias_correction.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <iomanip>
#include <sstream>

#include "tq/core/check.h"

namespace tq::ptq {
namespace {

// Per-channel sum of the pre-activation output over samples and positions, in chunks.
at::Tensor channel_sums(const WeightedLayer& layer, const at::Tensor& w, const at::Tensor& x) {
  constexpr int64_t kChunk = 256;
  at::Tensor sums;
  for (int64_t s = 0; s < x.size(0); s += kChunk) {
    auto y = layer.forward(x.slice(0, s, std::min(x.size(0), s + kChunk)), w).to(at::kDouble);
    // [N, C, ...] -> per C; Linear outputs [N, ..., C].
    y = layer.kind == WeightedLayer::Kind::Linear ? y.reshape({-1, y.size(-1)}).sum(0)
                                                  : y.transpose(0, 1).reshape({y.size(1), -1}).sum(1);
    sums = sums.defined() ? sums + y : y;
  }
  return sums;
}

}  // namespace

at::Tensor bias_correction_shift(const WeightedLayer& layer_in, const at::Tensor& quantized_weight,
                                 const at::Tensor& float_inputs, const at::Tensor& quantized_inputs) {
  const char* op = "bias_correction";
  layer_in.check_input(float_inputs, op);
  layer_in.check_input(quantized_inputs, op);
  TQ_CHECK(float_inputs.sizes() == quantized_inputs.sizes(), op, layer_in.name,
           ": float and quantized inputs differ in shape: ", float_inputs.sizes(), " vs ", quantized_inputs.sizes());
  TQ_CHECK(quantized_weight.sizes() == layer_in.weight.sizes(), op, layer_in.name, ": the quantized weight has shape ",
           quantized_weight.sizes(), ", the layer's ", layer_in.weight.sizes());
  WeightedLayer layer = layer_in;
  layer.relu = false;  // the mean shifts before the activation, where the bias acts
  at::NoGradGuard no_grad;
  const auto q = channel_sums(layer, quantized_weight, quantized_inputs);
  const auto f = channel_sums(layer, layer.weight, float_inputs);
  const int64_t channels = q.numel();
  const double count = static_cast<double>(
      layer.forward(quantized_inputs.slice(0, 0, 1), quantized_weight).numel() / channels * quantized_inputs.size(0));
  return ((q - f) / count).to(at::kFloat);
}

std::string BiasCorrectionReport::to_string() const {
  std::ostringstream s;
  s << "bias correction on " << layers.size() << " layer(s), " << samples << " samples, " << std::fixed
    << std::setprecision(1) << seconds << " s\n";
  for (const auto& l : layers) {
    s << "  " << std::left << std::setw(28) << (l.layer.empty() ? "(top)" : l.layer) << std::right
      << " mean |shift| " << std::scientific << std::setprecision(3) << l.mean_abs_shift << ", max " << l.max_abs_shift
      << "\n";
  }
  for (const auto& k : skipped) s << "  skipped " << k << "\n";
  return s.str();
}

}  // namespace tq::ptq
