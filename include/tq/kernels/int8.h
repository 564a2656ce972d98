#pragma once
// tq's int8 operations as eager modules call them. Each runs on the int8 backend in use
// (tq/kernels/int8_backend.h; LibTorch's quantized engines by default): this header converts
// between the eager carrier and the backend's plain values, nothing more.
//
// The eager carrier: between eager modules, int8 activations are quint8 quantized tensors (the
// tensor has to carry its scale and zero point from module to module, as in PyTorch's eager
// mode); weights are qint8 (per tensor, or per channel along axis 0). The backend never sees
// either: it gets uint8 / int8 values with their qparams (to_qtensor / from_qtensor, no copy).
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "tq/kernels/int8_backend.h"
#include "tq/numerics/qparams.h"

namespace tq::kernels::int8 {

// The libtorch-quantized backend's engine ("onednn", "qnnpack", "fbgemm", "x86") and those this
// LibTorch has. Throws, naming the available ones, if `engine` is missing.
std::string current_engine();
std::vector<std::string> available_engines();
void set_engine(const std::string& engine);

// The eager carrier and the backend's values, converted without a copy (the tensors share memory).
QTensor to_qtensor(const at::Tensor& x_q);    // a quint8 tensor
at::Tensor from_qtensor(const QTensor& x);    // uint8 values -> quint8 tensor

// Activations in and out of int8 (QuantStub, DeQuantStub, a module's float edge).
at::Tensor quantize_activation(const at::Tensor& x, double scale, int64_t zero_point);
at::Tensor dequantize(const at::Tensor& x_q);

// A float weight quantized for the engines: qint8, per tensor, or per channel along axis 0 when
// qparams.scale has one value per output channel.
at::Tensor quantize_weight(const at::Tensor& weight, const QParams& qparams, bool per_channel);

// A qint8 weight from its integer values and qparams (per channel along axis 0 when scales holds
// more than one value), and taken apart again: how modules and files keep weights as plain tensors.
at::Tensor make_quantized_weight(const at::Tensor& values, const at::Tensor& scales, const at::Tensor& zero_points);
WeightParts split_quantized_weight(const at::Tensor& weight_q);

// Embedding rows quantized with per-row float qparams (quint8, or quint4x2 when four_bit): the
// values a float model computes with in reference mode.
at::Tensor quantize_embedding_weight(const at::Tensor& weight, const QParams& qparams, bool four_bit);

PackedWeight prepack_linear(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias);
at::Tensor linear(const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point, bool relu);
// Dynamic quantization: float in, float out, activations quantized on the fly.
at::Tensor linear_dynamic(const at::Tensor& x, const PackedWeight& w, bool reduce_range);
// float16 weights (fbgemm / x86 engines only; throws naming the engines otherwise).
PackedWeight prepack_linear_fp16(const at::Tensor& weight, const c10::optional<at::Tensor>& bias);
at::Tensor linear_dynamic_fp16(const at::Tensor& x, const PackedWeight& w);
// Per-token dynamic Linear (Int8Backend::linear_dynamic_per_token): int8 weight values [out, in]
// with their float64 scales [out] (zero points 0). Int8 TorchScript calls it as the operator
// tq::linear_dynamic_per_token, registered by tq's library.
at::Tensor linear_dynamic_per_token(const at::Tensor& x, const at::Tensor& weight_values, const at::Tensor& weight_scales,
                                    const c10::optional<at::Tensor>& bias);
// Static-input Linear with float32 output (Int8Backend::linear_int8_float_output): the input's
// per-tensor qparams and range, int8 weight values [out, in] with their float64 scales [out], and
// optionally a float32 factor per input channel that x is multiplied by first (SmoothQuant's 1 / s).
// Int8 TorchScript calls it as the operator tq::linear_int8_float_output.
at::Tensor linear_int8_float_output(const at::Tensor& x, double scale, int64_t zero_point, int64_t quant_min,
                                    int64_t quant_max, const at::Tensor& weight_values, const at::Tensor& weight_scales,
                                    const c10::optional<at::Tensor>& bias,
                                    const c10::optional<at::Tensor>& input_factors = c10::nullopt);
// The exact int32 sums of int8 values, a [M, K] times b [N, K] transposed, each rounded once to
// float32 ([M, N]): what per-token Linear scales. With `int_gemm`, where LibTorch has an int8 GEMM
// that cannot saturate on this machine (aten::_int_mm, LibTorch 2.x, on oneDNN with VNNI: about 3x
// float32's speed) it runs that; otherwise, or without `int_gemm`, float32 products in blocks short
// enough to be exact. Both give the same numbers.
at::Tensor int8_matmul_exact(const at::Tensor& a, const at::Tensor& b, bool int_gemm = true);

// Convolutions in 1, 2 and 3 dimensions (weights [out, in/groups, k...]).
PackedWeight prepack_conv(int dims, const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias,
                          std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                          int64_t groups);
at::Tensor conv(int dims, const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                bool relu);

at::Tensor batch_norm2d(const at::Tensor& x_q, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean,
                        const at::Tensor& var, double eps, double out_scale, int64_t out_zero_point);

// Embeddings with 8-bit or 4-bit rows, per-row float qparams.
PackedWeight prepack_embedding(const at::Tensor& weight, const QParams& qparams, bool four_bit);
at::Tensor embedding(const PackedWeight& w, const at::Tensor& indices);
// mode: 0 sum, 1 mean, 2 max (torch.nn.EmbeddingBag's order).
at::Tensor embedding_bag(const PackedWeight& w, const at::Tensor& indices, const c10::optional<at::Tensor>& offsets,
                         int64_t mode, const c10::optional<at::Tensor>& per_sample_weights, bool include_last_offset);

// Int8 batched matmul of two quint8 activations times alpha (Int8Backend::matmul). Int8
// TorchScript calls it as the operator tq::matmul_int8, registered by tq's library.
at::Tensor matmul(const at::Tensor& a_q, const at::Tensor& b_q, double alpha, double out_scale, int64_t out_zero_point);
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
