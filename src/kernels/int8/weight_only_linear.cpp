#include "tq/kernels/int8_weight_only.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "tq/core/check.h"
#include "tq/kernels/tensor_kernels.h"

namespace tq::kernels {
namespace {

constexpr const char* kWho = "linear_weight_only";
constexpr int64_t kDequantizeBlock = 1024;  // channels dequantized at once on the BLAS path

void check_arguments(const at::Tensor& x, const GroupwiseWeight& w, const c10::optional<at::Tensor>& bias) {
  TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat && x.dim() >= 1, kWho, "the input must be float32, got ",
           x.defined() ? c10::toString(x.scalar_type()) : "an undefined tensor");
  check_groupwise_shape(w.in_features, w.bits, w.group_size, kWho);
  TQ_CHECK(w.packed.defined() && w.packed.dim() == 2 && w.packed.scalar_type() == at::kByte &&
               w.packed.size(1) == w.in_features * w.bits / 8,
           kWho, "the packed weight must be uint8 [out_features, ", w.in_features * w.bits / 8, "]");
  const int64_t out = w.packed.size(0), groups = w.in_features / w.group_size;
  for (const at::Tensor* t : {&w.scales, &w.zero_points}) {
    TQ_CHECK(t->defined() && t->scalar_type() == at::kFloat && t->sizes() == at::IntArrayRef({out, groups}), kWho,
             "scales and zero points must be float32 [", out, ", ", groups, "]");
  }
  check_kernels_exist(x, kWho);
  for (const at::Tensor* t : {&w.packed, &w.scales, &w.zero_points}) {
    TQ_CHECK(t->device() == x.device(), kWho, "the weight is on ", t->device(), ", the input on ", x.device());
  }
  TQ_CHECK(!bias || !bias->defined() || bias->device() == x.device(), kWho, "the bias is on ", bias->device(),
           ", the input on ", x.device());
  TQ_CHECK(x.size(-1) == w.in_features, kWho, "the input has ", x.size(-1), " features, the weight takes ",
           w.in_features);
  TQ_CHECK(!bias || !bias->defined() || bias->numel() == out, kWho, "the bias has ", bias ? bias->numel() : 0,
           " values for ", out, " output features");
}

// Channels [first, first + count) of the weight as float32, (q - zero point) * scale in float32:
// dequantize_groupwise's numbers, in one pass over the packed bytes (ATen's ops would take six).
void dequantize_channels(const GroupwiseWeightView& w, int64_t first, int64_t count, float* out) {
  const int64_t in = w.in_features, row_bytes = in * w.bits / 8, groups = in / w.group_size;
  at::parallel_for(0, count, 16, [&](int64_t begin, int64_t end) {
    float q[32];
    for (int64_t c = begin; c < end; ++c) {
      const int64_t n = first + c;
      const uint8_t* row = w.packed + n * row_bytes;
      float* o = out + c * in;
      for (int64_t block = 0; block < in; block += 32) {
        if (w.bits == 8) {
          for (int i = 0; i < 32; ++i) q[i] = static_cast<float>(row[block + i]);
        } else {  // byte i of a block: value i in the low nibble, value i + 16 in the high one
          const uint8_t* b = row + block / 2;
          for (int i = 0; i < 16; ++i) {
            q[i] = static_cast<float>(b[i] & 0x0F);
            q[i + 16] = static_cast<float>(b[i] >> 4);
          }
        }
        const int64_t g = n * groups + block / w.group_size;  // a group is a whole number of blocks
        const float zero_point = w.zero_points[g], scale = w.scales[g];
        for (int i = 0; i < 32; ++i) o[block + i] = (q[i] - zero_point) * scale;
      }
    }
  });
}

}  // namespace

at::Tensor linear_weight_only(const at::Tensor& x, const GroupwiseWeight& w, const c10::optional<at::Tensor>& bias) {
  check_arguments(x, w, bias);
  const int64_t out = w.packed.size(0);
  const auto rows = x.reshape({-1, w.in_features}).contiguous();
  const int64_t m = rows.size(0);
  const bool has_bias = bias && bias->defined();
  const auto b = has_bias ? bias->to(at::kFloat).reshape({-1}).contiguous() : at::Tensor();
  auto y = at::empty({m, out}, x.options());
  const auto packed = w.packed.contiguous();
  const auto scales = w.scales.contiguous();
  const auto zero_points = w.zero_points.contiguous();
  const GroupwiseWeightView view{packed.data_ptr<uint8_t>(), scales.data_ptr<float>(), zero_points.data_ptr<float>(),
                                 out, w.in_features, w.group_size, static_cast<int>(w.bits)};
  // The block-dequantizing path is host code: other devices run their kernel at every size.
  if (m <= kWeightOnlyKernelMaxRows || !x.device().is_cpu()) {
    kernels_for(x.device(), "linear_weight_only")
        .linear_weight_only(rows.data_ptr<float>(), m, view, has_bias ? b.data_ptr<float>() : nullptr,
                            y.data_ptr<float>());
  } else {
    auto weight = at::empty({std::min(kDequantizeBlock, out), w.in_features}, x.options());
    for (int64_t n = 0; n < out; n += kDequantizeBlock) {
      const int64_t count = std::min(kDequantizeBlock, out - n);
      const auto block = weight.narrow(0, 0, count);
      dequantize_channels(view, n, count, block.data_ptr<float>());
      auto y_block = y.narrow(1, n, count);
      if (has_bias) {
        at::addmm_out(y_block, b.narrow(0, n, count), rows, block.t());
      } else {
        at::mm_out(y_block, rows, block.t());
      }
    }
  }
  auto shape = x.sizes().vec();
  shape.back() = out;
  return y.reshape(shape);
}

}  // namespace tq::kernels
