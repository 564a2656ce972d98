#pragma once
// Scale and zero point from observed ranges, exactly as PyTorch's observers compute them
// (torch.ao.quantization.observer.UniformQuantizationObserverBase._calculate_qparams), and plain
// quantize / dequantize to tq's integer representation (an int tensor plus its qparams).
#include <ATen/core/Tensor.h>

#include "tq/core/dtypes.h"

namespace tq {

// Everything _calculate_qparams depends on besides the ranges.
struct QParamsSpec {
  QDType dtype = QDType::QUInt8;
  QScheme qscheme = QScheme::PerTensorAffine;
  int64_t quant_min = 0;
  int64_t quant_max = 255;
  bool has_customized_qrange = false;
  float eps = static_cast<float>(kFloat32Eps);
};

struct QParams {
  at::Tensor scale;       // float32, shape [1] per tensor or [C] per channel
  at::Tensor zero_point;  // int32 (affine), int64 (symmetric) or float32 (float qparams), as PyTorch returns
};

// min_val / max_val: 0-dim or [1] (per tensor) or [C] (per channel), float32.
// Unobserved ranges (empty, or +inf/-inf) give PyTorch's defaults scale=[1.0], zero_point=[0].
// Throws if some min_val > max_val or a range is NaN.
QParams calculate_qparams(const at::Tensor& min_val, const at::Tensor& max_val, const QParamsSpec& spec);

// ATen's quant_utils::ChooseQuantizationParams (fused observer + fake-quant ops, dynamic
// quantization): double-precision scale, scales below 6.1e-5 cut off, zero point from the
// better-conditioned end; preserve_sparsity gives symmetric ranges.
struct ChosenQParams {
  float scale;
  int32_t zero_point;
};
ChosenQParams choose_quantization_params(float min, float max, int32_t quant_min, int32_t quant_max,
                                         bool preserve_sparsity = false, bool reduce_range = false);

// False (PyTorch's "must run observer") for empty or never-updated ranges; throws on min > max.
bool check_min_max_valid(const at::Tensor& min_val, const at::Tensor& max_val, const char* op);

// Integer storage type of a quantized dtype: uint8 for quint8 / quint4x2, int8, int32.
c10::ScalarType storage_type(QDType dtype);

// x (float32) -> integers in [quant_min, quant_max] (the dtype's full range unless given), stored as
// storage_type(dtype). Same values as at::quantize_per_tensor(...).int_repr(). NaN is rejected.
at::Tensor quantize_per_tensor(const at::Tensor& x, double scale, int64_t zero_point, QDType dtype);
at::Tensor dequantize_per_tensor(const at::Tensor& q, double scale, int64_t zero_point);
// Per channel along `axis` with scale [C] (float) and zero_point [C] (integer).
at::Tensor quantize_per_channel(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                int64_t axis, QDType dtype);
at::Tensor dequantize_per_channel(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point,
                                  int64_t axis);

}  // namespace tq
