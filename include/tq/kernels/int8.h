#pragma once
// tq's int8 execution interface. Today it runs on LibTorch's quantized engines (onednn / qnnpack
// in Debian's build, fbgemm / x86 in pip builds) through the dispatcher; the modules above only
// see this header, so a tq-owned int8 backend (plain int8 tensors + scales) can replace it
// without touching them.
//
// Activations are affine quint8 quantized tensors; weights are qint8 (per tensor or per channel).
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "tq/numerics/qparams.h"

namespace tq::kernels::int8 {

// The engine in use ("onednn", "qnnpack", "fbgemm", "x86") and those this LibTorch has.
std::string current_engine();
std::vector<std::string> available_engines();
// Throws, naming the available ones, if `engine` is missing.
void set_engine(const std::string& engine);

// Opaque prepacked weights: the engine's packed-params object, which only the kernels see.
class PackedWeight {
 public:
  struct Handle;  // defined by the kernels
  PackedWeight() = default;
  explicit PackedWeight(std::shared_ptr<const Handle> handle) : handle_(std::move(handle)) {}
  bool defined() const { return handle_ != nullptr; }
  const Handle& handle() const;  // throws when undefined

 private:
  std::shared_ptr<const Handle> handle_;
};

// A float weight quantized for the engines: qint8, per tensor, or per channel along axis 0 when
// qparams.scale has one value per output channel.
at::Tensor quantize_weight(const at::Tensor& weight, const QParams& qparams, bool per_channel);

// A qint8 weight from its integer values and qparams (per channel along axis 0 when scales holds
// more than one value), and taken apart again: how modules and files keep weights as plain tensors.
at::Tensor make_quantized_weight(const at::Tensor& values, const at::Tensor& scales, const at::Tensor& zero_points);
struct WeightParts {
  at::Tensor values;       // int8
  at::Tensor scales;       // float64, one per output channel or one
  at::Tensor zero_points;  // int64, same shape
};
WeightParts split_quantized_weight(const at::Tensor& weight_q);

// Embedding rows quantized with per-row float qparams (quint8, or quint4x2 when four_bit).
at::Tensor quantize_embedding_weight(const at::Tensor& weight, const QParams& qparams, bool four_bit);

PackedWeight prepack_linear(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias);
at::Tensor linear(const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point, bool relu);
// Dynamic quantization: float in, float out, activations quantized on the fly.
at::Tensor linear_dynamic(const at::Tensor& x, const PackedWeight& w, bool reduce_range);
// float16 weights (fbgemm / x86 engines only; throws naming the engines otherwise).
PackedWeight prepack_linear_fp16(const at::Tensor& weight, const c10::optional<at::Tensor>& bias);
at::Tensor linear_dynamic_fp16(const at::Tensor& x, const PackedWeight& w);

PackedWeight prepack_conv2d(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias,
                            std::vector<int64_t> stride, std::vector<int64_t> padding,
                            std::vector<int64_t> dilation, int64_t groups);
at::Tensor conv2d(const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point, bool relu);

// Convolutions in 1-D and 3-D (weights [out, in/groups, k...]).
PackedWeight prepack_conv(int dims, const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias,
                          std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                          int64_t groups);
at::Tensor conv(int dims, const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                bool relu);

at::Tensor batch_norm2d(const at::Tensor& x_q, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean,
                        const at::Tensor& var, double eps, double out_scale, int64_t out_zero_point);

// Embeddings with 8-bit (quint8) or 4-bit (quint4x2) rows, per-row float qparams.
PackedWeight prepack_embedding(const at::Tensor& weight_q);
at::Tensor embedding(const PackedWeight& w, const at::Tensor& indices, bool four_bit);
// mode: 0 sum, 1 mean, 2 max (torch.nn.EmbeddingBag's order).
at::Tensor embedding_bag(const PackedWeight& w, const at::Tensor& indices, const c10::optional<at::Tensor>& offsets,
                         int64_t mode, const c10::optional<at::Tensor>& per_sample_weights, bool include_last_offset,
                         bool four_bit);

at::Tensor add(const at::Tensor& a_q, const at::Tensor& b_q, double out_scale, int64_t out_zero_point, bool relu);
at::Tensor mul(const at::Tensor& a_q, const at::Tensor& b_q, double out_scale, int64_t out_zero_point);
at::Tensor cat(const std::vector<at::Tensor>& xs_q, int64_t dim, double out_scale, int64_t out_zero_point);

// Activations. relu6 keeps the input's qparams; the others requantize to the given ones.
at::Tensor relu6(const at::Tensor& x_q);
at::Tensor hardswish(const at::Tensor& x_q, double out_scale, int64_t out_zero_point);
at::Tensor elu(const at::Tensor& x_q, double out_scale, int64_t out_zero_point, double alpha);
at::Tensor leaky_relu(const at::Tensor& x_q, double negative_slope, double out_scale, int64_t out_zero_point);
at::Tensor sigmoid(const at::Tensor& x_q, double out_scale, int64_t out_zero_point);

}  // namespace tq::kernels::int8
