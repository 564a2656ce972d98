// Int8 batched matmul of two activations (Int8Backend::matmul's default, tq's formula): the
// attention's q k^T and P V. The exact integer sums come from float32 products of the centred
// values, in blocks short enough that every partial sum is an integer float32 holds exactly.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "tq/core/check.h"
#include "tq/kernels/int8_backend.h"

namespace tq::kernels::int8 {
namespace {

constexpr const char* kWho = "int8::matmul";

void check_operand(const QTensor& x, const char* name) {
  TQ_CHECK(x.values.defined() && x.values.scalar_type() == at::kByte, kWho, name, " must hold uint8 values, got ",
           x.values.defined() ? c10::toString(x.values.scalar_type()) : "an undefined tensor");
  TQ_CHECK(x.values.dim() >= 2, kWho, name, " must have at least 2 dimensions, got ", x.values.sizes());
  TQ_CHECK(x.scale > 0 && std::isfinite(x.scale), kWho, name, "'s scale must be positive and finite, got ", x.scale);
  TQ_CHECK(0 <= x.zero_point && x.zero_point <= 255, kWho, name, "'s zero point ", x.zero_point,
           " is outside [0, 255]");
}

// x's values minus its zero point as float32, in x's layout (a transposed view stays one, so the
// GEMM reads it transposed instead of a copy being made): one pass over the bytes.
at::Tensor centred(const QTensor& x) {
  const at::Tensor v = x.values.is_non_overlapping_and_dense() ? x.values : x.values.contiguous();
  auto out = at::empty_strided(v.sizes(), v.strides(), v.options().dtype(at::kFloat));
  const uint8_t* __restrict in = v.data_ptr<uint8_t>();
  float* __restrict f = out.data_ptr<float>();
  const float zero = static_cast<float>(x.zero_point);
  at::parallel_for(0, v.numel(), 1 << 15, [in, f, zero](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) f[i] = static_cast<float>(in[i]) - zero;
  });
  return out;
}

// sum_k (a - za)(b - zb), each rounded once to float32. Centred values lie in [-255, 255], so 256
// products sum to at most 255^2 * 256 < 2^24: every partial sum of a block is exact in float32,
// whatever order the GEMM adds in. Longer rows add their blocks in float64 (exact).
at::Tensor exact_sums(const QTensor& a, const QTensor& b) {
  constexpr int64_t kExactBlock = 256;
  const auto ac = centred(a), bc = centred(b);
  const int64_t k = ac.size(-1);
  if (k <= kExactBlock) return at::matmul(ac, bc);
  at::Tensor sum;
  for (int64_t i = 0; i < k; i += kExactBlock) {
    const int64_t n = std::min(kExactBlock, k - i);
    const auto part = at::matmul(ac.narrow(-1, i, n), bc.narrow(-2, i, n)).to(at::kDouble);
    sum = sum.defined() ? sum.add_(part) : part;
  }
  return sum.to(at::kFloat);
}

}  // namespace

QTensor Int8Backend::matmul(const QTensor& a, const QTensor& b, double alpha, double out_scale,
                            int64_t out_zero_point) const {
  check_operand(a, "a");
  check_operand(b, "b");
  TQ_CHECK(a.values.size(-1) == b.values.size(-2), kWho, "a ", a.values.sizes(), " and b ", b.values.sizes(),
           " do not multiply (a's last dimension must be b's second to last)");
  // Batch dimensions broadcast as torch.matmul's: aligned from the right, equal or 1.
  const auto sa = a.values.sizes(), sb = b.values.sizes();
  for (size_t i = 3; i <= std::min(sa.size(), sb.size()); ++i) {
    const int64_t x = sa[sa.size() - i], y = sb[sb.size() - i];
    TQ_CHECK(x == y || x == 1 || y == 1, kWho, "a ", sa, " and b ", sb, " have batch dimensions that do not broadcast");
  }
  TQ_CHECK(std::isfinite(alpha), kWho, "alpha must be finite, got ", alpha);
  TQ_CHECK(out_scale > 0 && std::isfinite(out_scale), kWho, "the output scale must be positive and finite, got ",
           out_scale);
  TQ_CHECK(0 <= out_zero_point && out_zero_point <= 255, kWho, "the output zero point ", out_zero_point,
           " is outside [0, 255]");
  const auto sums = exact_sums(a, b).contiguous();
  auto out = at::empty(sums.sizes(), sums.options().dtype(at::kByte));
  const float m = static_cast<float>(alpha * a.scale * b.scale / out_scale);
  const float zp = static_cast<float>(out_zero_point);
  const float* s = sums.data_ptr<float>();
  uint8_t* q = out.data_ptr<uint8_t>();
  at::parallel_for(0, sums.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    // Constants as locals: every uint8 store may alias a captured reference, which would stop the
    // loop vectorizing. Clamped to [-zp, 255 - zp] before rounding (integers, so rounding stays
    // inside: the same as clamping after), rounded by adding and subtracting 1.5 * 2^23 (ties to
    // even in float32's default rounding).
    const float scale = m, zero = zp, lo = -zp, hi = 255.0f - zp;
    const float* __restrict in = s;
    uint8_t* __restrict codes = q;
    constexpr float kRound = 12582912.0f;
    for (int64_t i = begin; i < end; ++i) {
      float v = in[i] * scale;
      v = v < lo ? lo : v;
      v = v > hi ? hi : v;
      v = (v + kRound) - kRound + zero;
      codes[i] = static_cast<uint8_t>(static_cast<int>(v));
    }
  });
  return {out, out_scale, out_zero_point};
}

}  // namespace tq::kernels::int8
