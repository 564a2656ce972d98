#include "tq/numerics/groupwise_weight.h"

#include <ATen/ATen.h>

#include <limits>

#include "tq/core/check.h"

namespace tq {
namespace {

constexpr const char* kWho = "groupwise_weight";

// [out, in] -> [out, groups, group_size]
at::Tensor grouped(const at::Tensor& t, int64_t group_size) {
  return t.reshape({t.size(0), t.size(1) / group_size, group_size});
}

void check_weight(const at::Tensor& weight, int64_t bits, int64_t group_size) {
  TQ_CHECK(weight.defined() && weight.dim() == 2 && weight.scalar_type() == at::kFloat, kWho,
           "the weight must be a 2-D float32 tensor [out_features, in_features]");
  check_groupwise_shape(weight.size(1), bits, group_size, kWho);
  TQ_CHECK(weight.isfinite().all().item<bool>(), kWho, "the weight holds NaN or infinite values");
}

}  // namespace

void check_groupwise_shape(int64_t in_features, int64_t bits, int64_t group_size, const char* op,
                           const std::string& layer) {
  const std::string who = layer.empty() ? "" : "'" + layer + "': ";
  TQ_CHECK(bits == 4 || bits == 8, op, who, "weight-only quantization takes 4 or 8 bits, got ", bits);
  TQ_CHECK(group_size > 0 && group_size % 32 == 0, op, who, "the group size must be a positive multiple of 32, got ",
           group_size);
  TQ_CHECK(in_features > 0, op, who, "a weight needs at least one input feature");
  TQ_CHECK(in_features % group_size == 0, op, who, "the group size ", group_size, " does not divide the ",
           in_features, " input features");
}

namespace {

// The two steps of round-to-nearest on a weight already checked by check_weight.
void qparams_of_checked(const at::Tensor& weight, int64_t bits, int64_t group_size, at::Tensor& scales,
                        at::Tensor& zero_points) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  const auto g = grouped(weight, group_size);
  auto lo = at::clamp_max(std::get<0>(g.min(2)), 0.0f);
  auto hi = at::clamp_min(std::get<0>(g.max(2)), 0.0f);
  const auto empty = at::logical_and(lo == 0, hi == 0);
  lo = at::where(empty, at::full_like(lo, -1.0f), lo);
  hi = at::where(empty, at::full_like(hi, 1.0f), hi);
  // A range too narrow for a normal float32 step (subnormal weights) would give scale 0 and NaN zero
  // points: the smallest normal step keeps them finite (those weights quantize to the zero point).
  scales = at::clamp_min((hi - lo) / maxq, std::numeric_limits<float>::min());
  zero_points = at::round(-lo / scales);
}

at::Tensor quantize_checked(const at::Tensor& weight, const at::Tensor& scales, const at::Tensor& zero_points,
                            int64_t bits, int64_t group_size) {
  const int64_t groups = weight.size(1) / group_size;
  TQ_CHECK(scales.sizes() == at::IntArrayRef({weight.size(0), groups}) && scales.sizes() == zero_points.sizes(), kWho,
           "expected scales and zero points of shape [", weight.size(0), ", ", groups, "], got ", scales.sizes(),
           " and ", zero_points.sizes());
  const float maxq = static_cast<float>((1 << bits) - 1);
  const auto q = at::clamp(at::round(grouped(weight, group_size) / scales.unsqueeze(2)) + zero_points.unsqueeze(2),
                           0.0f, maxq);
  return q.reshape(weight.sizes()).to(at::kByte);
}

}  // namespace

void groupwise_qparams(const at::Tensor& weight, int64_t bits, int64_t group_size, at::Tensor& scales,
                       at::Tensor& zero_points) {
  check_weight(weight, bits, group_size);
  qparams_of_checked(weight, bits, group_size, scales, zero_points);
}

at::Tensor quantize_groupwise(const at::Tensor& weight, const at::Tensor& scales, const at::Tensor& zero_points,
                              int64_t bits, int64_t group_size) {
  check_weight(weight, bits, group_size);
  return quantize_checked(weight, scales, zero_points, bits, group_size);
}

at::Tensor pack_groupwise(const at::Tensor& q, int64_t bits) {
  TQ_CHECK(q.dim() == 2 && q.scalar_type() == at::kByte, kWho, "packing takes uint8 integers [out, in]");
  if (bits == 8) return q.contiguous();
  TQ_CHECK(bits == 4 && q.size(1) % 32 == 0, kWho, "4-bit packing takes rows of a multiple of 32 values");
  TQ_CHECK(q.max().item<int64_t>() < 16, kWho, "a 4-bit integer is above 15");
  // Blocks of 32: value i in the low nibble of byte i, value i + 16 in its high nibble.
  const auto blocks = q.reshape({q.size(0), q.size(1) / 32, 2, 16});
  const auto packed = blocks.select(2, 0).bitwise_or(blocks.select(2, 1).__lshift__(4));
  return packed.reshape({q.size(0), q.size(1) / 2}).contiguous();
}

at::Tensor unpack_groupwise(const at::Tensor& packed, int64_t bits, int64_t in_features) {
  if (bits == 8) return packed;
  const auto blocks = packed.reshape({packed.size(0), in_features / 32, 1, 16});
  return at::cat({blocks.bitwise_and(0x0F), blocks.__rshift__(4)}, 2).reshape({packed.size(0), in_features});
}

GroupwiseWeight make_groupwise_weight(const at::Tensor& q, const at::Tensor& scales, const at::Tensor& zero_points,
                                      int64_t bits, int64_t group_size) {
  check_groupwise_shape(q.size(1), bits, group_size, kWho);
  return GroupwiseWeight{pack_groupwise(q, bits), scales.to(at::kFloat).contiguous(),
                         zero_points.to(at::kFloat).contiguous(), bits, group_size, q.size(1)};
}

GroupwiseWeight quantize_weight_groupwise(const at::Tensor& weight, int64_t bits, int64_t group_size) {
  check_weight(weight, bits, group_size);
  at::Tensor scales, zero_points;
  qparams_of_checked(weight, bits, group_size, scales, zero_points);
  return make_groupwise_weight(quantize_checked(weight, scales, zero_points, bits, group_size), scales, zero_points,
                               bits, group_size);
}

at::Tensor dequantize_groupwise(const GroupwiseWeight& w) {
  const auto q = unpack_groupwise(w.packed, w.bits, w.in_features).to(at::kFloat);
  return ((grouped(q, w.group_size) - w.zero_points.unsqueeze(2)) * w.scales.unsqueeze(2))
      .reshape({q.size(0), w.in_features});
}

}  // namespace tq
