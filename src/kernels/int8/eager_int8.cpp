// tq/kernels/int8.h: the eager carrier (quint8 activations, qint8 weights) to the int8 backend in
// use and back.
#include <ATen/ATen.h>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"

namespace tq::kernels::int8 {
namespace {

std::vector<QTensor> to_qtensors(const std::vector<at::Tensor>& xs) {
  std::vector<QTensor> out;
  out.reserve(xs.size());
  for (const auto& x : xs) out.push_back(to_qtensor(x));
  return out;
}

}  // namespace

at::Tensor quantize_activation(const at::Tensor& x, double scale, int64_t zero_point) {
  return from_qtensor(backend().quantize(x, scale, zero_point, /*signed_int8=*/false));
}

at::Tensor dequantize(const at::Tensor& x_q) { return backend().dequantize(to_qtensor(x_q)); }

PackedWeight prepack_linear(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias) {
  return backend().prepack_linear(split_quantized_weight(weight_q), bias);
}

at::Tensor linear(const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point, bool relu) {
  return from_qtensor(backend().linear(to_qtensor(x_q), w, out_scale, out_zero_point, relu));
}

at::Tensor linear_dynamic(const at::Tensor& x, const PackedWeight& w, bool reduce_range) {
  return backend().linear_dynamic(x, w, reduce_range);
}

PackedWeight prepack_linear_fp16(const at::Tensor& weight, const c10::optional<at::Tensor>& bias) {
  return backend().prepack_linear_fp16(weight, bias);
}

at::Tensor linear_dynamic_fp16(const at::Tensor& x, const PackedWeight& w) {
  return backend().linear_dynamic_fp16(x, w);
}

PackedWeight prepack_conv(int dims, const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias,
                          std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                          int64_t groups) {
  return backend().prepack_conv(split_quantized_weight(weight_q), bias,
                                {dims, std::move(stride), std::move(padding), std::move(dilation), groups});
}

at::Tensor conv(int dims, const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                bool relu) {
  TQ_CHECK(x_q.dim() == dims + 2, "int8::conv", "input must have ", dims + 2, " dimensions, got ", x_q.sizes());
  return from_qtensor(backend().conv(to_qtensor(x_q), w, out_scale, out_zero_point, relu));
}

at::Tensor batch_norm2d(const at::Tensor& x_q, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean,
                        const at::Tensor& var, double eps, double out_scale, int64_t out_zero_point) {
  return from_qtensor(backend().batch_norm2d(to_qtensor(x_q), weight, bias, mean, var, eps, out_scale, out_zero_point));
}

PackedWeight prepack_embedding(const at::Tensor& weight, const QParams& qparams, bool four_bit) {
  return backend().prepack_embedding({weight.detach().contiguous(), qparams.scale, qparams.zero_point, four_bit});
}

at::Tensor embedding(const PackedWeight& w, const at::Tensor& indices) { return backend().embedding(w, indices); }

at::Tensor embedding_bag(const PackedWeight& w, const at::Tensor& indices, const c10::optional<at::Tensor>& offsets,
                         int64_t mode, const c10::optional<at::Tensor>& per_sample_weights, bool include_last_offset) {
  return backend().embedding_bag(w, indices, offsets, mode, per_sample_weights, include_last_offset);
}

at::Tensor add(const at::Tensor& a_q, const at::Tensor& b_q, double out_scale, int64_t out_zero_point, bool relu) {
  return from_qtensor(backend().add(to_qtensor(a_q), to_qtensor(b_q), out_scale, out_zero_point, relu));
}

at::Tensor mul(const at::Tensor& a_q, const at::Tensor& b_q, double out_scale, int64_t out_zero_point) {
  return from_qtensor(backend().mul(to_qtensor(a_q), to_qtensor(b_q), out_scale, out_zero_point));
}

at::Tensor matmul(const at::Tensor& a_q, const at::Tensor& b_q, double alpha, double out_scale, int64_t out_zero_point) {
  return from_qtensor(backend().matmul(to_qtensor(a_q), to_qtensor(b_q), alpha, out_scale, out_zero_point));
}

at::Tensor cat(const std::vector<at::Tensor>& xs_q, int64_t dim, double out_scale, int64_t out_zero_point) {
  TQ_CHECK(!xs_q.empty(), "int8::cat", "needs at least one tensor");
  return from_qtensor(backend().cat(to_qtensors(xs_q), dim, out_scale, out_zero_point));
}

at::Tensor relu6(const at::Tensor& x_q) { return from_qtensor(backend().relu6(to_qtensor(x_q))); }

at::Tensor hardswish(const at::Tensor& x_q, double out_scale, int64_t out_zero_point) {
  return from_qtensor(backend().hardswish(to_qtensor(x_q), out_scale, out_zero_point));
}

at::Tensor elu(const at::Tensor& x_q, double out_scale, int64_t out_zero_point, double alpha) {
  return from_qtensor(backend().elu(to_qtensor(x_q), alpha, out_scale, out_zero_point));
}

at::Tensor leaky_relu(const at::Tensor& x_q, double negative_slope, double out_scale, int64_t out_zero_point) {
  return from_qtensor(backend().leaky_relu(to_qtensor(x_q), negative_slope, out_scale, out_zero_point));
}

at::Tensor sigmoid(const at::Tensor& x_q, double out_scale, int64_t out_zero_point) {
  return from_qtensor(backend().sigmoid(to_qtensor(x_q), out_scale, out_zero_point));
}

}  // namespace tq::kernels::int8
