// Per-token dynamic Linear: tq's integer formula (Int8Backend's default) and the function behind
// the TorchScript operator tq::linear_dynamic_per_token (torchscript_operators.cpp).
#include <ATen/ATen.h>

#include <algorithm>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_backend.h"

namespace tq::kernels::int8 {

at::Tensor Int8Backend::linear_dynamic_per_token(const at::Tensor& x, const WeightParts& w,
                                                 const c10::optional<at::Tensor>& bias) const {
  constexpr const char* who = "int8::linear_dynamic_per_token";
  TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat && x.dim() >= 1, who, "input must be float32, got ",
           x.defined() ? c10::toString(x.scalar_type()) : "an undefined tensor");
  TQ_CHECK(w.values.dim() == 2 && w.values.scalar_type() == at::kChar, who, "the weight must be 2-D int8, got ",
           w.values.sizes(), " ", w.values.scalar_type());
  const int64_t out = w.values.size(0), in = w.values.size(1);
  TQ_CHECK(x.size(-1) == in, who, "the input has ", x.size(-1), " features, the weight takes ", in);
  TQ_CHECK(w.scales.numel() == out || w.scales.numel() == 1, who, "the weight has ", out, " channels and ",
           w.scales.numel(), " scales");
  TQ_CHECK(!w.zero_points.defined() || !w.zero_points.any().item<bool>(), who,
           "weights must be symmetric (zero points 0)");
  TQ_CHECK(!bias || !bias->defined() || bias->numel() == out, who, "the bias has ", bias ? bias->numel() : 0,
           " values for ", out, " channels");
  // As torchao quantizes a token: scale = max|row| / 127 (float32, at least 1e-5), then
  // clamp(round(x * (1 / scale)), -127, 127).
  const auto rows = x.reshape({-1, in});
  const auto scales = (rows.abs().amax({1}, true) / 127.0f).clamp_min(1e-5f);
  const auto xq = at::clamp(at::round(rows * at::reciprocal(scales)), -127, 127);
  // The int32 sums, exactly, converted to float32 (as torchao converts _int_mm's int32 output):
  // a float32 product of integer-valued matrices is exact while every partial sum stays below 2^24,
  // which 1024 products of |x| <= 127 and |w| <= 128 do; longer rows are summed in blocks of 1024,
  // the blocks' sums added in float64.
  constexpr int64_t kExactBlock = 1024;
  const auto wf = w.values.to(at::kFloat);
  at::Tensor acc;
  if (in <= kExactBlock) {
    acc = at::matmul(xq, wf.t());
  } else {
    at::Tensor sum;
    for (int64_t k = 0; k < in; k += kExactBlock) {
      const int64_t n = std::min(kExactBlock, in - k);
      const auto part = at::matmul(xq.narrow(1, k, n), wf.narrow(1, k, n).t()).to(at::kDouble);
      sum = sum.defined() ? sum.add_(part) : part;
    }
    acc = sum.to(at::kFloat);
  }
  // Then scaled back in float32: per token, then per output channel.
  acc.mul_(scales).mul_(w.scales.to(at::kFloat).reshape({1, -1}));
  if (bias && bias->defined()) acc.add_(bias->to(at::kFloat));
  auto shape = x.sizes().vec();
  shape.back() = out;
  return acc.reshape(shape);
}

at::Tensor linear_dynamic_per_token(const at::Tensor& x, const at::Tensor& weight_values, const at::Tensor& weight_scales,
                                    const c10::optional<at::Tensor>& bias) {
  return backend().linear_dynamic_per_token(
      x, WeightParts{weight_values, weight_scales, at::zeros_like(weight_scales, at::kLong)}, bias);
}

}  // namespace tq::kernels::int8
