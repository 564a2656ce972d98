#pragma once
// The int8 backend seam. Every int8 computation tq runs outside a TorchScript graph goes through
// the backend in use: eager modules call the free functions of tq/kernels/int8.h, which call it.
// A backend sees int8 values as plain tensors (uint8 activations, int8 weights) with their scale
// and zero point, never ATen's quantized dtypes (deprecated in LibTorch 2.13); a backend built on
// LibTorch's quantized operators converts at its own edge. What a backend must implement, and the
// conformance suite it must pass: src/kernels/README.md.
//
// Backends are chosen at run time by name. set_backend() sets the process-wide default;
// ScopedInt8Backend switches the calling thread only, so two backends run side by side in one
// process (tests, benchmarks). "libtorch-quantized" (LibTorch's quantized engines) is the default;
// "onednn" (LibTorch 2.x only) runs plain tensors with the oneDNN int8 operators PyTorch 2.x lowers
// to, no quantized dtype involved; "reference" is tq's integer reference, written from the
// quantization formulas (slow; the conformance suite's yardstick).
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tq::kernels::int8 {

// Quantized values with their affine qparams: real = (values - zero_point) * scale.
struct QTensor {
  at::Tensor values;  // uint8 for activations
  double scale = 1.0;
  int64_t zero_point = 0;
};

// A weight as integers: int8 values [out, ...], one scale and zero point per output channel (or
// one for the whole tensor).
struct WeightParts {
  at::Tensor values;       // int8
  at::Tensor scales;       // float64, [out] or [1]
  at::Tensor zero_points;  // int64, same shape; undefined where all are 0 (symmetric weights)
};

// An input quantized with static per-tensor qparams on [quant_min, quant_max] (an 8-bit range).
struct StaticInput {
  double scale = 1.0;
  int64_t zero_point = 0;
  int64_t quant_min = 0, quant_max = 255;
  // float32 [in], or undefined: each input channel multiplied by its factor (in float32) before
  // it is quantized, as a separate multiply would (SmoothQuant's 1 / s, folded in).
  at::Tensor channel_factors;
};

// An embedding table to quantize by rows with per-row float qparams (PyTorch's
// float_qparams_weight_only): q = clamp(round(w / scale + zero_point)), 8 or 4 bits.
struct EmbeddingWeight {
  at::Tensor weight;       // float32 [rows, dim]
  at::Tensor scales;       // float [rows]
  at::Tensor zero_points;  // float [rows]
  bool four_bit = false;
};

// Prepacked weights: each backend's own layout, opaque above it.
class PackedWeight {
 public:
  struct Handle {
    virtual ~Handle() = default;
    std::string backend;  // who packed it: a weight only runs on the backend that packed it
  };
  PackedWeight() = default;
  explicit PackedWeight(std::shared_ptr<const Handle> handle) : handle_(std::move(handle)) {}
  bool defined() const { return handle_ != nullptr; }
  const Handle& handle() const;  // throws when undefined

 private:
  std::shared_ptr<const Handle> handle_;
};

struct ConvGeometry {
  int dims = 2;  // 1, 2 or 3
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
};

class Int8Backend {
 public:
  virtual ~Int8Backend() = default;
  virtual std::string name() const = 0;

  // Activations. quantize: float -> uint8 (or int8 with signed_int8) by PyTorch's rounding
  // (nearest, ties to even); dequantize: back to float32.
  virtual QTensor quantize(const at::Tensor& x, double scale, int64_t zero_point, bool signed_int8) const = 0;
  virtual at::Tensor dequantize(const QTensor& x) const = 0;

  // Weighted layers. Biases are float32 and added before requantizing; relu fuses max(0, .).
  virtual PackedWeight prepack_linear(const WeightParts& w, const c10::optional<at::Tensor>& bias) const = 0;
  virtual QTensor linear(const QTensor& x, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                         bool relu) const = 0;
  virtual PackedWeight prepack_conv(const WeightParts& w, const c10::optional<at::Tensor>& bias,
                                    const ConvGeometry& geometry) const = 0;
  virtual QTensor conv(const QTensor& x, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                       bool relu) const = 0;
  // Dynamic: float in, float out; the input's qparams are chosen per call from its range
  // (reduce_range: 7-bit activations, as fbgemm's saturation-free path wants).
  virtual at::Tensor linear_dynamic(const at::Tensor& x, const PackedWeight& w, bool reduce_range) const = 0;
  // float16 weights, float activations.
  virtual PackedWeight prepack_linear_fp16(const at::Tensor& weight, const c10::optional<at::Tensor>& bias) const = 0;
  virtual at::Tensor linear_dynamic_fp16(const at::Tensor& x, const PackedWeight& w) const = 0;
  // Dynamic with one scale per token (per row of x's last dimension), as torchao's int8
  // dynamic-activation configuration: each row quantized symmetrically to int8 on [-127, 127]
  // (scale = max|row| / 127 in float32, at least 1e-5), times int8 weights with one scale per
  // output channel and zero points 0; the exact int32 sums scaled back in float32. The default is
  // tq's integer formula (exact sums from float32 products of at most 1024 terms): every backend
  // has it; one with a faster kernel overrides it and passes the conformance suite against it.
  virtual at::Tensor linear_dynamic_per_token(const at::Tensor& x, const WeightParts& w,
                                              const c10::optional<at::Tensor>& bias) const;
  // Static input qparams, float32 out: x quantized with `input` (round(x * (1 / scale)) + zero
  // point, ties to even, clamped), times int8 weights with one scale per output channel and zero
  // points 0; the exact integer sums (zero point taken out per channel) scaled to float32 with
  // input scale x channel scale, plus the bias. No output quantization: for a Linear whose output
  // only float ops read. A row holding a NaN gives NaN. `input.channel_factors` scale x's channels
  // first. Default: tq's integer formula, as above.
  virtual at::Tensor linear_int8_float_output(const at::Tensor& x, const StaticInput& input, const WeightParts& w,
                                              const c10::optional<at::Tensor>& bias) const;

  // Two int8 activations multiplied as torch.matmul multiplies them (a [..., M, K] times
  // b [..., K, N], batch dimensions broadcast), times `alpha` (attention's 1 / sqrt(d), folded in),
  // requantized once: q = clamp(round(S * m) + out_zero_point, 0, 255), where S is the exact
  // integer sum of (a - a.zero_point)(b - b.zero_point) rounded once to float32 and
  // m = float32(alpha * a.scale * b.scale / out_scale); ties to even. The attention's q k^T and
  // P V, which neither LibTorch quantized engine runs in int8. Default: tq's formula, the exact
  // sums from float32 products of at most 256 terms.
  virtual QTensor matmul(const QTensor& a, const QTensor& b, double alpha, double out_scale,
                         int64_t out_zero_point) const;

  virtual QTensor batch_norm2d(const QTensor& x, const at::Tensor& weight, const at::Tensor& bias,
                               const at::Tensor& mean, const at::Tensor& var, double eps, double out_scale,
                               int64_t out_zero_point) const = 0;

  // Embeddings: float rows out. mode: 0 sum, 1 mean, 2 max (torch.nn.EmbeddingBag's order).
  virtual PackedWeight prepack_embedding(const EmbeddingWeight& w) const = 0;
  virtual at::Tensor embedding(const PackedWeight& w, const at::Tensor& indices) const = 0;
  virtual at::Tensor embedding_bag(const PackedWeight& w, const at::Tensor& indices,
                                   const c10::optional<at::Tensor>& offsets, int64_t mode,
                                   const c10::optional<at::Tensor>& per_sample_weights,
                                   bool include_last_offset) const = 0;

  // Elementwise and joining ops; each requantizes to the given output qparams.
  virtual QTensor add(const QTensor& a, const QTensor& b, double out_scale, int64_t out_zero_point,
                      bool relu) const = 0;
  virtual QTensor mul(const QTensor& a, const QTensor& b, double out_scale, int64_t out_zero_point) const = 0;
  virtual QTensor cat(const std::vector<QTensor>& xs, int64_t dim, double out_scale, int64_t out_zero_point) const = 0;
  // relu6 keeps the input's qparams.
  virtual QTensor relu6(const QTensor& x) const = 0;
  virtual QTensor hardswish(const QTensor& x, double out_scale, int64_t out_zero_point) const = 0;
  virtual QTensor elu(const QTensor& x, double alpha, double out_scale, int64_t out_zero_point) const = 0;
  virtual QTensor leaky_relu(const QTensor& x, double negative_slope, double out_scale,
                             int64_t out_zero_point) const = 0;
  virtual QTensor sigmoid(const QTensor& x, double out_scale, int64_t out_zero_point) const = 0;
};

// The backend in use on this thread (the thread's scoped choice, else the process default).
const Int8Backend& backend();
// Registered names, and the process-wide default by name (throws naming the registered ones).
std::vector<std::string> available_backends();
void set_backend(const std::string& name);
// Adds a backend under its name() (replacing one of that name).
void register_backend(std::shared_ptr<const Int8Backend> backend);
// The backend registered under `name` (throws naming the registered ones, or why a backend tq
// ships is not available with this LibTorch).
std::shared_ptr<const Int8Backend> find_backend(const std::string& name);

// Runs this thread on another backend until destroyed.
class ScopedInt8Backend {
 public:
  explicit ScopedInt8Backend(const std::string& name);
  ~ScopedInt8Backend();
  ScopedInt8Backend(const ScopedInt8Backend&) = delete;
  ScopedInt8Backend& operator=(const ScopedInt8Backend&) = delete;

 private:
  std::shared_ptr<const Int8Backend> previous_;
};

// The backends tq ships (registered on first use of the registry). make_onednn_backend throws
// where LibTorch lacks the operators; onednn_backend_unavailable_reason() says which ("" if none).
std::shared_ptr<const Int8Backend> make_libtorch_quantized_backend();
std::shared_ptr<const Int8Backend> make_reference_backend();
std::shared_ptr<const Int8Backend> make_onednn_backend();
std::string onednn_backend_unavailable_reason();

}  // namespace tq::kernels::int8
