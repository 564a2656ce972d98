#pragma once
// Weight-only Linear on raw buffers: float32 activations times weights stored as 4- or 8-bit
// unsigned integers with one float scale and one integer zero point per group of `group_size`
// consecutive input features of an output channel (GPTQ's and torchao's group-wise layout):
//
//   w[n, k] = (q[n, k] - zero_point[n, g]) * scale[n, g],  g = k / group_size
//   y[m, n] = bias[n] + sum_g scale[n, g] * (sum_{k in g} x[m, k] * q[n, k] - zero_point[n, g] * sum_{k in g} x[m, k])
//
// Storage of q, row by row (in_features / 2 bytes a row at 4 bits, in_features at 8):
//   8 bits: one byte per value.
//   4 bits: in blocks of 32 values, byte i of a block (i < 16) holds value i in its low nibble and
//           value i + 16 in its high nibble, so one 16-byte load unpacks into 32 consecutive values
//           with a mask and a shift.
// group_size is a multiple of 32 that divides in_features.
//
// The kernel is linear_weight_only in kernel_table.h: the reference sums in double; each CPU copy
// is vectorized and parallel, its float32 sums differing from the reference only by rounding.
#include <cstdint>

namespace tq::kernels {

struct GroupwiseWeightView {
  const uint8_t* packed;      // [out_features, in_features * bits / 8]
  const float* scales;        // [out_features, in_features / group_size]
  const float* zero_points;   // [out_features, in_features / group_size], integers in [0, 2^bits - 1]
  int64_t out_features;
  int64_t in_features;
  int64_t group_size;
  int bits;                   // 4 or 8
};

}  // namespace tq::kernels
