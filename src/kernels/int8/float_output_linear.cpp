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
#include <cstring>
#include <limits>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_backend.h"
#include "tq/kernels/int8_saturation.h"

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

// max |x| over a row, and whether it holds a NaN. On the bits: |x| is x's bits without the sign,
// and for those the integer order is the float order, NaNs above infinity (an integer maximum,
// which GCC vectorizes; a float one it does not without -ffast-math).
float row_max_abs(const float* __restrict x, int64_t n, bool& nan) {
  int32_t m = 0;
  for (int64_t k = 0; k < n; ++k) {
    int32_t bits;
    std::memcpy(&bits, x + k, sizeof(bits));
    bits &= 0x7fffffff;
    m = bits > m ? bits : m;
  }
  nan = m > 0x7f800000;
  float out;
  std::memcpy(&out, &m, sizeof(out));
  return out;
}

// Each row's symmetric int8 values and scale, as torchao quantizes a token: scale = max|row| / 127
// (float32, at least 1e-5), then clamp(round(x * (1 / scale)), -127, 127), ties to even. One read
// of the row for its maximum and one to quantize it (ATen's ops would make eight passes). A row
// with a NaN gets a NaN scale, so its outputs are NaN, as float32's Linear gives.
void quantize_rows(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* r = x + i * cols;
      int8_t* out = q + i * cols;
      bool nan;
      const float scale = std::max(row_max_abs(r, cols, nan) / 127.0f, 1e-5f);
      if (nan) {
        std::memset(out, 0, cols);
        scales[i] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      const float inv = 1.0f / scale;
      // |x * inv| <= 127 (plus rounding), far below 2^22: adding and subtracting 1.5 * 2^23 rounds
      // to the nearest integer, ties to even, in float32's default rounding (a loop GCC vectorizes).
      constexpr float kRound = 12582912.0f;
      for (int64_t k = 0; k < cols; ++k) {
        float v = (r[k] * inv + kRound) - kRound;
        v = v < -127.f ? -127.f : v;
        v = v > 127.f ? 127.f : v;
        out[k] = static_cast<int8_t>(static_cast<int>(v));
      }
      scales[i] = scale;
    }
  });
}

// In float32 and this order: (float32(sum) + offset) * row scale * channel scale (+ bias). One
// pass from the sums (int32 or float32) to the output. `offsets` (per column) may be null.
template <typename Sum>
void scale_sums(const Sum* sums, int64_t rows, int64_t cols, const float* row_scales, const float* channel_scales,
                const float* offsets, const float* bias, float* out) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Sum* a = sums + i * cols;
      float* r = out + i * cols;
      const float s = row_scales[i];
      if (offsets != nullptr) {
        for (int64_t j = 0; j < cols; ++j) r[j] = (static_cast<float>(a[j]) + offsets[j]) * s * channel_scales[j];
      } else {
        for (int64_t j = 0; j < cols; ++j) r[j] = static_cast<float>(a[j]) * s * channel_scales[j];
      }
      if (bias != nullptr) {
        for (int64_t j = 0; j < cols; ++j) r[j] += bias[j];
      }
    }
  });
}

// Static qparams: each value's code clamp(round(x * (1 / scale)) + zero_point, quant_min,
// quant_max) (ties to even, as ATen's quantize), stored minus `shift` so that it fits int8. A row
// holding a NaN gets row_scales[i] = NaN (its outputs NaN), the others `scale`.
void quantize_rows_static(const float* x, int64_t rows, int64_t cols, float scale, int32_t zero_point,
                          int32_t quant_min, int32_t quant_max, int32_t shift, int8_t* q, float* row_scales) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    // Locals, not captured references: the int8 stores may alias anything, so a captured constant
    // would be reloaded for every element and the loop would not vectorize.
    const float inv = 1.0f / scale;
    // Clamped before rounding, one step outside the range, so the magic number rounds exactly.
    const float lo = static_cast<float>(quant_min - zero_point - 1), hi = static_cast<float>(quant_max - zero_point + 1);
    const float qmin = static_cast<float>(quant_min - shift), qmax = static_cast<float>(quant_max - shift);
    const float offset = static_cast<float>(zero_point - shift);
    const int64_t n = cols;
    for (int64_t i = begin; i < end; ++i) {
      const float* __restrict r = x + i * n;
      int8_t* __restrict out = q + i * n;
      bool nan;
      row_max_abs(r, n, nan);
      row_scales[i] = nan ? std::numeric_limits<float>::quiet_NaN() : scale;
      constexpr float kRound = 12582912.0f;  // 1.5 * 2^23, as quantize_rows
      for (int64_t k = 0; k < n; ++k) {
        float v = r[k] * inv;
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        v = (v + kRound) - kRound + offset;
        v = v < qmin ? qmin : v;
        v = v > qmax ? qmax : v;
        out[k] = static_cast<int8_t>(static_cast<int>(v));
      }
    }
  });
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
  TQ_CHECK(w.scales.numel() == out || w.scales.numel() == 1, who, "the weight has ", out, " channels and ",
           w.scales.numel(), " scales");
  TQ_CHECK(!w.zero_points.defined() || !w.zero_points.any().item<bool>(), who,
           "weights must be symmetric (zero points 0)");
  TQ_CHECK(!bias || !bias->defined() || bias->numel() == out, who, "the bias has ", bias ? bias->numel() : 0,
           " values for ", out, " channels");
}

// The float32 output [x's shape, out] from the sums [rows, out]: (sum + offset) * row scale *
// channel scale + bias. `offsets` may be undefined.
at::Tensor scaled_output(const at::Tensor& x, const at::Tensor& sums, const at::Tensor& row_scales,
                         const at::Tensor& weight_scales, const at::Tensor& offsets, const c10::optional<at::Tensor>& bias) {
  const int64_t m = sums.size(0), out = sums.size(1);
  const auto channel_scales = weight_scales.to(at::kFloat).expand({out}).contiguous();
  const auto b = bias && bias->defined() ? bias->to(at::kFloat).contiguous() : at::Tensor();
  auto acc = at::empty({m, out}, x.options());
  const float* bias_data = b.defined() ? b.data_ptr<float>() : nullptr;
  const float* offset_data = offsets.defined() ? offsets.data_ptr<float>() : nullptr;
  if (sums.scalar_type() == at::kInt) {
    scale_sums(sums.data_ptr<int32_t>(), m, out, row_scales.data_ptr<float>(), channel_scales.data_ptr<float>(),
               offset_data, bias_data, acc.data_ptr<float>());
  } else {
    scale_sums(sums.data_ptr<float>(), m, out, row_scales.data_ptr<float>(), channel_scales.data_ptr<float>(),
               offset_data, bias_data, acc.data_ptr<float>());
  }
  auto shape = x.sizes().vec();
  shape.back() = out;
  return acc.reshape(shape);
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
  quantize_rows(rows.data_ptr<float>(), m, in, xq.data_ptr<int8_t>(), scales.data_ptr<float>());
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
  // Codes above 127 (a [0, 255] range) are shifted by 128 into int8; the sums take the shift and
  // the zero point back per output channel: sum (q - zp) w = sum (q - shift) w + (shift - zp) sum w.
  const int32_t shift = input.quant_max > 127 ? 128 : 0;
  const auto rows = x.reshape({-1, in}).contiguous();
  const int64_t m = rows.size(0);
  auto xq = at::empty({m, in}, at::kChar);
  auto row_scales = at::empty({m}, at::kFloat);
  quantize_rows_static(rows.data_ptr<float>(), m, in, static_cast<float>(input.scale),
                       static_cast<int32_t>(input.zero_point), static_cast<int32_t>(input.quant_min),
                       static_cast<int32_t>(input.quant_max), shift, xq.data_ptr<int8_t>(), row_scales.data_ptr<float>());
  const auto sums = exact_sums(xq, w.values, /*int_gemm=*/true).contiguous();
  // Exact in int64, rounded once to float32; none when the shift is the zero point.
  const int64_t offset = shift - input.zero_point;
  const auto offsets =
      offset == 0 ? at::Tensor() : w.values.sum(1, false, at::kLong).mul_(offset).to(at::kFloat).contiguous();
  return scaled_output(x, sums, row_scales, w.scales, offsets, bias);
}

at::Tensor linear_int8_float_output(const at::Tensor& x, double scale, int64_t zero_point, int64_t quant_min,
                                    int64_t quant_max, const at::Tensor& weight_values, const at::Tensor& weight_scales,
                                    const c10::optional<at::Tensor>& bias) {
  // Symmetric weights: no zero points to build and check on every call.
  return backend().linear_int8_float_output(x, StaticInput{scale, zero_point, quant_min, quant_max},
                                            WeightParts{weight_values, weight_scales, at::Tensor()}, bias);
}

at::Tensor linear_dynamic_per_token(const at::Tensor& x, const at::Tensor& weight_values, const at::Tensor& weight_scales,
                                    const c10::optional<at::Tensor>& bias) {
  return backend().linear_dynamic_per_token(x, WeightParts{weight_values, weight_scales, at::Tensor()}, bias);
}

}  // namespace tq::kernels::int8
