#pragma once
// Group-wise weight quantization for weight-only Linear (4 or 8 bits): each output channel's input
// features are cut into groups of `group_size`, and each group gets its own scale and integer zero
// point, chosen as GPTQ's quantizer chooses them (asymmetric, the range widened to hold 0):
//
//   lo = min(min(w_group), 0), hi = max(max(w_group), 0)   (both 0: lo = -1, hi = 1)
//   scale = (hi - lo) / (2^bits - 1) (at least float32's smallest normal), zero_point = round(-lo / scale)
//   q = clamp(round(w / scale) + zero_point, 0, 2^bits - 1)     (float32, round half to even)
//   w ~ (q - zero_point) * scale
//
// The integers are stored packed as the kernels read them (tq/kernels/weight_only_kernels.h).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace tq {

struct GroupwiseWeight {
  at::Tensor packed;       // uint8 [out_features, in_features * bits / 8]
  at::Tensor scales;       // float32 [out_features, in_features / group_size]
  at::Tensor zero_points;  // float32, integer-valued, same shape
  int64_t bits = 4;
  int64_t group_size = 128;
  int64_t in_features = 0;
  int64_t out_features() const { return packed.size(0); }
};

// Throws unless bits is 4 or 8, group_size a positive multiple of 32 and in_features (weight
// [out, in], float32) a multiple of group_size; the error starts "[op] " and names `layer` if given.
void check_groupwise_shape(int64_t in_features, int64_t bits, int64_t group_size, const char* op,
                           const std::string& layer = "");

// Each group's scale and zero point (float32 [out, in / group_size] each), from the weight's ranges.
void groupwise_qparams(const at::Tensor& weight, int64_t bits, int64_t group_size, at::Tensor& scales,
                       at::Tensor& zero_points);
// The integers q (uint8 [out, in]) of `weight` under the given group qparams.
at::Tensor quantize_groupwise(const at::Tensor& weight, const at::Tensor& scales, const at::Tensor& zero_points,
                              int64_t bits, int64_t group_size);
// Packs integers q (uint8 [out, in], values < 2^bits) into the kernels' layout, and back.
at::Tensor pack_groupwise(const at::Tensor& q, int64_t bits);
at::Tensor unpack_groupwise(const at::Tensor& packed, int64_t bits, int64_t in_features);
// Round-to-nearest: qparams from the ranges, integers, packed.
GroupwiseWeight quantize_weight_groupwise(const at::Tensor& weight, int64_t bits, int64_t group_size);
// From integers already chosen (GPTQ) and their qparams.
GroupwiseWeight make_groupwise_weight(const at::Tensor& q, const at::Tensor& scales, const at::Tensor& zero_points,
                                      int64_t bits, int64_t group_size);
// (q - zero_point) * scale, float32 [out, in].
at::Tensor dequantize_groupwise(const GroupwiseWeight& w);

}  // namespace tq
