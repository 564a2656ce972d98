// Int8 Linears with a float32 output scaled straight from exact integer sums: per-token dynamic
// (tq::linear_dynamic_per_token) and static input qparams (tq::linear_int8_float_output). tq's
// integer formulas (Int8Backend's defaults) and the functions behind the TorchScript operators
// (torchscript_operators.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <algorithm>
#include <cmath>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_backend.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/kernels/kernel_table.h"
#include "tq/kernels/tensor_kernels.h"

namespace tq::kernels::int8 {
namespace {

// aten::_int_mm (int8 x int8 -> int32), found by schema: LibTorch 2.x has it, 1.13 not. Used only
// where oneDNN's effective ISA has VNNI: PyTorch 2.13's answers were measured wrong (saturated) on a
// VNNI CPU with oneDNN capped at AVX2, exact and about 3x float32's speed uncapped.
const c10::optional<c10::OperatorHandle>& int_mm() {
  static const auto op = [] {
    auto found = c10::Dispatcher::singleton().findSchema({"aten::_int_mm", ""});
    const auto isa = int8_isa("onednn");
    return isa.vnni && !isa.saturates ? found : c10::optional<c10::OperatorHandle>();
  }();
  return op;
}

// Each weight row's exact integer sum times `offset`, rounded once to float32: what the input's
// zero point (less the shift) contributes to each output channel. One pass over the int8 weight.
at::Tensor weight_row_offsets(const at::Tensor& values, int64_t offset) {
  const int64_t out = values.size(0), in = values.size(1);
  const auto w = values.contiguous();
  auto offsets = at::empty({out}, at::kFloat);
  const int8_t* wd = w.data_ptr<int8_t>();
  float* od = offsets.data_ptr<float>();
  at::parallel_for(0, out, 64, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const int8_t* __restrict row = wd + j * in;
      int64_t sum = 0;
      for (int64_t k = 0; k < in; ++k) sum += row[k];
      od[j] = static_cast<float>(sum * offset);
    }
  });
  return offsets;
}

// The exact sums: int32 from the int8 GEMM, or float32 from the exact float blocks.
at::Tensor exact_sums(const at::Tensor& a, const at::Tensor& b, bool int_gemm) {
  constexpr const char* who = "int8::int8_matmul_exact";
  TQ_CHECK(a.dim() == 2 && b.dim() == 2 && a.scalar_type() == at::kChar && b.scalar_type() == at::kChar, who,
           "expected two 2-D int8 tensors, got ", a.sizes(), " ", a.scalar_type(), " and ", b.sizes(), " ",
           b.scalar_type());
  TQ_CHECK(a.size(1) == b.size(1), who, "a has ", a.size(1), " columns, b ", b.size(1));
  if (int_gemm && int_mm() && a.numel() > 0 && b.numel() > 0) {
    torch::jit::Stack stack{a.contiguous(), b.t()};
    int_mm()->callBoxed(&stack);
    return stack[0].toTensor();
  }
  // A float32 product of integer-valued matrices is exact while every partial sum stays below
  // 2^24, which 1024 products of |a| <= 128 and |b| <= 128 do; longer rows are summed in blocks of
  // 1024, the blocks' sums added in float64 (exact) and rounded once.
  constexpr int64_t kExactBlock = 1024;
  const int64_t in = a.size(1);
  const auto af = a.to(at::kFloat), bf = b.to(at::kFloat);
  if (in <= kExactBlock) return at::matmul(af, bf.t());
  at::Tensor sum;
  for (int64_t k = 0; k < in; k += kExactBlock) {
    const int64_t n = std::min(kExactBlock, in - k);
    const auto part = at::matmul(af.narrow(1, k, n), bf.narrow(1, k, n).t()).to(at::kDouble);
    sum = sum.defined() ? sum.add_(part) : part;
  }
  return sum.to(at::kFloat);
}

// The operands' checks common to both Linears: float32 x, 2-D int8 symmetric weights, one scale
// per channel (or one), a bias per channel.
void check_operands(const char* who, const at::Tensor& x, const WeightParts& w, const c10::optional<at::Tensor>& bias) {
  TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat && x.dim() >= 1, who, "input must be float32, got ",
           x.defined() ? c10::toString(x.scalar_type()) : "an undefined tensor");
  TQ_CHECK(w.values.dim() == 2 && w.values.scalar_type() == at::kChar, who, "the weight must be 2-D int8, got ",
           w.values.sizes(), " ", w.values.scalar_type());
  const int64_t out = w.values.size(0), in = w.values.size(1);
  TQ_CHECK(x.size(-1) == in, who, "the input has ", x.size(-1), " features, the weight takes ", in);
  // |sum| <= in * 128 * 128 must fit the int32 sums.
  TQ_CHECK(in <= 131072, who, "the weight takes ", in, " input features; int32 sums hold at most 131072");
  TQ_CHECK(w.scales.numel() == out || w.scales.numel() == 1, who, "the weight has ", out, " channels and ",
           w.scales.numel(), " scales");
  TQ_CHECK(!w.zero_points.defined() || !w.zero_points.any().item<bool>(), who,
           "weights must be symmetric (zero points 0)");
  TQ_CHECK(!bias || !bias->defined() || bias->numel() == out, who, "the bias has ", bias ? bias->numel() : 0,
           " values for ", out, " channels");
}

// The float32 output [x's shape, out] from the sums [rows, out]: (sum + offset) * row scale *
// channel scale + bias, written over the sums (int32; float32 sums from the exact float blocks are
// integers, converted first). `offsets` may be undefined.
at::Tensor scaled_output(const at::Tensor& x, const at::Tensor& sums, const at::Tensor& row_scales,
                         const at::Tensor& weight_scales, const at::Tensor& offsets, const c10::optional<at::Tensor>& bias) {
  const int64_t m = sums.size(0), out = sums.size(1);
  // The GEMM's own fresh tensor, which no one else holds, or a fresh int32 copy.
  auto acc = sums.scalar_type() == at::kInt ? sums.contiguous() : sums.to(at::kInt).contiguous();
  const auto channel_scales = weight_scales.to(at::kFloat).expand({out}).contiguous();
  const auto b = bias && bias->defined() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  kernels_for(x.device(), "int8::scale_int32_sums")
      .scale_int32_sums(acc.data_ptr<int32_t>(), m, out, row_scales.data_ptr<float>(), channel_scales.data_ptr<float>(),
                        offsets.defined() ? offsets.data_ptr<float>() : nullptr,
                        b.defined() ? b.data_ptr<float>() : nullptr);
  auto shape = x.sizes().vec();
  shape.back() = out;
  return acc.view(at::kFloat).reshape(shape);
}

}  // namespace

at::Tensor int8_matmul_exact(const at::Tensor& a, const at::Tensor& b, bool int_gemm) {
  return exact_sums(a, b, int_gemm).to(at::kFloat);  // int32 sums each rounded once to float32
}

at::Tensor Int8Backend::linear_dynamic_per_token(const at::Tensor& x, const WeightParts& w,
                                                 const c10::optional<at::Tensor>& bias) const {
  constexpr const char* who = "int8::linear_dynamic_per_token";
  check_operands(who, x, w, bias);
  const int64_t in = w.values.size(1);
  const auto rows = x.reshape({-1, in}).contiguous();
  const int64_t m = rows.size(0);
  auto xq = at::empty({m, in}, at::kChar);
  auto scales = at::empty({m}, at::kFloat);
  kernels_for(x.device(), who).quantize_rows_per_token(rows.data_ptr<float>(), m, in, xq.data_ptr<int8_t>(),
                                                       scales.data_ptr<float>());
  const auto sums = exact_sums(xq, w.values, /*int_gemm=*/true).contiguous();
  return scaled_output(x, sums, scales, w.scales, at::Tensor(), bias);
}

at::Tensor Int8Backend::linear_int8_float_output(const at::Tensor& x, const StaticInput& input, const WeightParts& w,
                                                 const c10::optional<at::Tensor>& bias) const {
  constexpr const char* who = "int8::linear_int8_float_output";
  check_operands(who, x, w, bias);
  TQ_CHECK(input.scale > 0 && std::isfinite(input.scale), who, "the input scale must be positive and finite, got ",
           input.scale);
  TQ_CHECK(input.quant_min <= input.zero_point && input.zero_point <= input.quant_max &&
               input.quant_max - input.quant_min <= 255 && input.quant_min >= -128 && input.quant_max <= 255,
           who, "the input range [", input.quant_min, ", ", input.quant_max, "] with zero point ", input.zero_point,
           " is not an 8-bit range holding its zero point");
  const int64_t in = w.values.size(1);
  const auto& f = input.channel_factors;
  TQ_CHECK(!f.defined() || (f.dim() == 1 && f.numel() == in && f.is_floating_point()), who,
           "the input factors must be one float per input feature (", in, "), got ",
           f.defined() ? f.sizes() : at::IntArrayRef{});
  // Codes above 127 (a [0, 255] range) are shifted by 128 into int8; the sums take the shift and
  // the zero point back per output channel: sum (q - zp) w = sum (q - shift) w + (shift - zp) sum w.
  const int32_t shift = input.quant_max > 127 ? 128 : 0;
  const auto rows = x.reshape({-1, in}).contiguous();
  const int64_t m = rows.size(0);
  auto xq = at::empty({m, in}, at::kChar);
  auto row_scales = at::empty({m}, at::kFloat);
  const auto factors = input.channel_factors.defined() ? input.channel_factors.to(at::kFloat).contiguous() : at::Tensor();
  const StaticRowQuantization p{static_cast<float>(input.scale), static_cast<int32_t>(input.zero_point),
                                static_cast<int32_t>(input.quant_min), static_cast<int32_t>(input.quant_max), shift};
  kernels_for(x.device(), who)
      .quantize_rows_static(rows.data_ptr<float>(), factors.defined() ? factors.data_ptr<float>() : nullptr, m, in, p,
                            xq.data_ptr<int8_t>(), row_scales.data_ptr<float>());
  const auto sums = exact_sums(xq, w.values, /*int_gemm=*/true).contiguous();
  // Exact in int64, rounded once to float32; none when the shift is the zero point.
  const int64_t offset = shift - input.zero_point;
  const auto offsets = offset == 0 ? at::Tensor() : weight_row_offsets(w.values, offset);
  return scaled_output(x, sums, row_scales, w.scales, offsets, bias);
}

at::Tensor linear_int8_float_output(const at::Tensor& x, double scale, int64_t zero_point, int64_t quant_min,
                                    int64_t quant_max, const at::Tensor& weight_values, const at::Tensor& weight_scales,
                                    const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& input_factors) {
  // Symmetric weights: no zero points to build and check on every call.
  StaticInput input{scale, zero_point, quant_min, quant_max, input_factors ? *input_factors : at::Tensor()};
  return backend().linear_int8_float_output(x, input,
                                            WeightParts{weight_values, weight_scales, at::Tensor()}, bias);
}

at::Tensor linear_dynamic_per_token(const at::Tensor& x, const at::Tensor& weight_values, const at::Tensor& weight_scales,
                                    const c10::optional<at::Tensor>& bias) {
  return backend().linear_dynamic_per_token(x, WeightParts{weight_values, weight_scales, at::Tensor()}, bias);
}

}  // namespace tq::kernels::int8
