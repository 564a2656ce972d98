#pragma once
// Quantized dtypes and quantization schemes, with PyTorch's names and ranges.
#include <c10/core/QScheme.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>

namespace tq {

// torch.finfo(torch.float32).eps: the smallest scale observers and LSQ give.
inline constexpr double kFloat32Eps = 1.1920928955078125e-07;

// The dtype a quantizer emulates. Float16 / Float32 appear only in dynamic and placeholder configs.
enum class QDType { QUInt8, QInt8, QInt32, QUInt4x2, Float16, Float32 };

enum class QScheme {
  PerTensorAffine,
  PerTensorSymmetric,
  PerChannelAffine,
  PerChannelSymmetric,
  PerChannelAffineFloatQParams,
};

// "quint8", "per_tensor_affine": the names PyTorch prints (without the "torch." prefix).
std::string to_string(QDType dtype);
std::string to_string(QScheme qscheme);
QDType qdtype_from_string(const std::string& name);    // throws on an unknown name
QScheme qscheme_from_string(const std::string& name);  // throws on an unknown name

c10::ScalarType to_scalar_type(QDType dtype);  // QUInt8 -> c10::kQUInt8, ...
c10::QScheme to_c10(QScheme qscheme);

bool is_quantized(QDType dtype);  // false for Float16 / Float32
bool is_per_tensor(QScheme qscheme);
bool is_per_channel(QScheme qscheme);
bool is_symmetric(QScheme qscheme);
bool is_float_qparams(QScheme qscheme);

// torch.iinfo(dtype).min / max and .bits (quint4x2 counts 8 bits, as in PyTorch).
int64_t dtype_min(QDType dtype);
int64_t dtype_max(QDType dtype);
int dtype_bits(QDType dtype);

struct QRange {
  int64_t quant_min;
  int64_t quant_max;
};

// PyTorch's calculate_qmin_qmax: the custom range when both bounds are given (halved by
// reduce_range), otherwise the dtype's 8-bit (or 4-/32-bit) default.
QRange calculate_qmin_qmax(const int64_t* quant_min, const int64_t* quant_max, QDType dtype,
                           bool reduce_range);

// PyTorch's _validate_qmin_qmax for a user-given range: includes 0, qmin < qmax, and (unlike
// PyTorch, which only asserts the length) within the dtype's bounds. `op` names the caller.
void validate_qmin_qmax(int64_t quant_min, int64_t quant_max, QDType dtype, const char* op);

}  // namespace tq
