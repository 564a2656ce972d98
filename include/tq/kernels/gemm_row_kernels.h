#pragma once
// The passes around an int8 GEMM whose output is float32 (tq's float-output and per-token Linears,
// src/kernels/int8/float_output_linear.cpp), on raw buffers:
//
//   quantize_rows_static: each row of x [rows, cols], optionally times a float32 factor per column
//       (SmoothQuant's 1 / s; the product rounded to float32 as a separate multiply would be), to
//       static codes
//         q = clamp(round(v * (1 / scale)) + zero_point, quant_min, quant_max) - shift
//       (round half to even, as ATen's quantize); the shift (0 or 128) keeps [0, 255] codes in int8.
//       row_scales[i] = scale, or NaN where row i holds a NaN (that row's codes are then
//       meaningless and its outputs NaN); a finite positive factor makes no NaN of a number.
//   quantize_rows_per_token: each row of x [rows, cols] to symmetric int8 with its own scale, as
//       torchao quantizes a token: scale = max(max|row| / 127, 1e-5) in float32, then
//         q = clamp(round(x * (1 / scale)), -127, 127)   (round half to even).
//       A row holding a NaN gets scale NaN and codes 0; a NaN product (an infinite row) takes -127.
//   scale_int32_sums: in place over sums [rows, cols], each int32 sum replaced by the float32
//         (float32(sum) + offsets[j]) * row_scales[i] * channel_scales[j] + bias[j]
//       in that order, each step rounded to float32 (offsets and bias may be null: then no add).
//       The result overwrites its sum's four bytes, so the pass reads and writes one buffer.
//
// Both are in kernel_table.h: every CPU copy equals the scalar reference bit for bit.
#include <cstdint>

namespace tq::kernels {

struct StaticRowQuantization {
  float scale;
  int32_t zero_point;
  int32_t quant_min, quant_max;
  int32_t shift;  // subtracted from each code: 128 for [0, 255], else 0
};

}  // namespace tq::kernels
