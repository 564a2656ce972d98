// The eager carrier's weights: qint8 tensors (per tensor, or per channel along axis 0) and the
// quint8 / quint4x2 rows of embeddings, made from float weights or plain integers and taken apart
// again. Data layout only: nothing here runs int8 arithmetic.
#include <ATen/ATen.h>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"

namespace tq::kernels::int8 {

at::Tensor quantize_weight(const at::Tensor& weight, const QParams& qp, bool per_channel) {
  const auto w = weight.detach().contiguous();
  if (per_channel) {
    TQ_CHECK(qp.scale.numel() == w.size(0), "int8::quantize_weight", "per-channel weight qparams have ",
             qp.scale.numel(), " channels, the weight has ", w.size(0), " output channels");
    return at::quantize_per_channel(w, qp.scale.to(at::kDouble), qp.zero_point.to(at::kLong), 0, at::kQInt8);
  }
  TQ_CHECK(qp.scale.numel() == 1, "int8::quantize_weight", "per-tensor weight qparams must hold one scale, got ",
           qp.scale.numel());
  return at::quantize_per_tensor(w, qp.scale.item<double>(), qp.zero_point.item<int64_t>(), at::kQInt8);
}

at::Tensor make_quantized_weight(const at::Tensor& values, const at::Tensor& scales, const at::Tensor& zero_points) {
  const char* op = "int8::make_quantized_weight";
  TQ_CHECK(values.scalar_type() == at::kChar, op, "int8 values expected, got ", values.scalar_type());
  TQ_CHECK(scales.numel() >= 1 && zero_points.numel() == scales.numel(), op, "a weight needs as many zero points (",
           zero_points.numel(), ") as scales (", scales.numel(), "), at least one");
  if (scales.numel() > 1) {
    TQ_CHECK(values.dim() >= 1 && values.size(0) == scales.numel(), op, scales.numel(), " per-channel scales for ",
             values.dim() == 0 ? 0 : values.size(0), " output channels");
    return at::_make_per_channel_quantized_tensor(values.contiguous(), scales.to(at::kDouble).reshape({-1}),
                                                  zero_points.to(at::kLong).reshape({-1}), 0);
  }
  return at::_make_per_tensor_quantized_tensor(values.contiguous(), scales.item<double>(), zero_points.item<int64_t>());
}

WeightParts split_quantized_weight(const at::Tensor& w) {
  const char* op = "int8::split_quantized_weight";
  TQ_CHECK(w.is_quantized() && w.scalar_type() == at::kQInt8, op, "a qint8 weight expected, got ", w.scalar_type());
  WeightParts parts;
  parts.values = w.int_repr().clone();
  if (w.qscheme() == at::kPerChannelAffine) {
    TQ_CHECK(w.q_per_channel_axis() == 0, op, "per-channel weights are quantized along axis 0, this one along ",
             w.q_per_channel_axis());
    parts.scales = w.q_per_channel_scales().to(at::kDouble).clone();
    parts.zero_points = w.q_per_channel_zero_points().to(at::kLong).clone();
  } else {
    TQ_CHECK(w.qscheme() == at::kPerTensorAffine || w.qscheme() == at::kPerTensorSymmetric, op,
             "unsupported weight qscheme ", c10::toString(w.qscheme()));
    parts.scales = at::full({1}, w.q_scale(), at::kDouble);
    parts.zero_points = at::full({1}, w.q_zero_point(), at::kLong);
  }
  return parts;
}

at::Tensor quantize_embedding_weight(const at::Tensor& weight, const QParams& qp, bool four_bit) {
  return at::quantize_per_channel(weight.detach().contiguous(), qp.scale.to(at::kDouble), qp.zero_point.to(at::kFloat),
                                  0, four_bit ? at::kQUInt4x2 : at::kQUInt8);
}

}  // namespace tq::kernels::int8
