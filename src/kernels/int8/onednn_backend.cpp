// The "onednn" int8 backend: plain uint8 activations and int8 weights run by the oneDNN operators
// PyTorch 2.x itself lowers quantized models to (onednn::qlinear_pointwise, onednn::qconv_pointwise,
// with their prepack ops), reached through the dispatcher by schema, so the same source builds on
// every LibTorch and the backend registers only where the operators exist (LibTorch 2.x; not
// 1.13). No ATen quantized dtype is made or read anywhere on this path.
//
// Quantize, dequantize and the elementwise ops are ATen float32 arithmetic on the plain values, as
// PyTorch 2.x's decomposed quantize / dequantize are (they keep channels-last layouts as they
// are); batch norm, embeddings and float16 Linear are the reference backend's formulas.
//
// oneDNN without VNNI sums pairs of uint8 x int8 products in int16 (tq/kernels/int8_saturation.h):
// on such a CPU a Linear or convolution whose input holds values above 127 is computed by the
// reference formulas instead (exact; slower; warned once), never answered wrong.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "tq/core/check.h"
#include "tq/kernels/int8_backend.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/numerics/qparams.h"

namespace tq::kernels::int8 {
namespace {

constexpr const char* kName = "onednn";

// Found once, when the backend is made (an OperatorHandle has no empty state: hence optional).
struct OnednnOps {
  c10::optional<c10::OperatorHandle> linear_prepack, linear, conv_prepack, conv;
};

// The operator named `name` with overload `overload`, or an empty optional.
c10::optional<c10::OperatorHandle> find_op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchema({name, overload});
}

// The schemas the backend calls, as LibTorch 2.x defines them (checked by name and argument count:
// a LibTorch whose operators take other arguments does not get the backend).
struct Needed {
  const char* name;
  size_t arguments;
};
constexpr Needed kNeeded[] = {{"onednn::qlinear_prepack", 2},
                              {"onednn::qlinear_pointwise", 13},
                              {"onednn::qconv_prepack", 9},
                              {"onednn::qconv_pointwise", 17}};

std::string missing_ops(OnednnOps* ops) {
  c10::optional<c10::OperatorHandle>* slots[] = {ops ? &ops->linear_prepack : nullptr, ops ? &ops->linear : nullptr,
                                  ops ? &ops->conv_prepack : nullptr, ops ? &ops->conv : nullptr};
  std::string missing;
  for (size_t i = 0; i < 4; ++i) {
    const auto op = find_op(kNeeded[i].name, "");
    if (!op || op->schema().arguments().size() != kNeeded[i].arguments) {
      missing += (missing.empty() ? "" : ", ") + std::string(kNeeded[i].name);
    } else if (slots[i]) {
      *slots[i] = *op;
    }
  }
  return missing;
}

c10::IValue int_list(const std::vector<int64_t>& v) { return c10::IValue(v); }

c10::IValue no_scalars() { return c10::IValue(c10::List<c10::optional<c10::Scalar>>()); }
c10::IValue one_none_scalar() {
  c10::List<c10::optional<c10::Scalar>> l;
  l.push_back(c10::nullopt);
  return c10::IValue(l);
}

at::Tensor call(const c10::optional<c10::OperatorHandle>& op, torch::jit::Stack stack) {
  op->callBoxed(&stack);
  TQ_CHECK(stack.size() == 1 && stack[0].isTensor(), "int8", op->schema().name(), " returned no tensor");
  return stack[0].toTensor();
}

void check_values(const QTensor& x, const char* op) {
  TQ_CHECK(x.values.defined() && x.values.scalar_type() == at::kByte, op, "activations must be uint8 values, got ",
           x.values.defined() ? toString(x.values.scalar_type()) : "undefined");
}

// PyTorch 2.x's decomposed quantize: clamp(round(x * (1 / scale)) + zero_point), float32, ties to
// even; the same numbers as tq's quantize_per_tensor.
at::Tensor quantize_values(const at::Tensor& x, double scale, int64_t zero_point, bool signed_int8 = false) {
  const float inv_scale = 1.0f / static_cast<float>(scale);
  return x.mul(inv_scale)
      .round_()
      .add_(static_cast<float>(zero_point))
      .clamp_(signed_int8 ? -128 : 0, signed_int8 ? 127 : 255)
      .to(signed_int8 ? at::kChar : at::kByte);
}

// (q - zero_point) * scale in float32: ATen's dequantize order.
at::Tensor real(const QTensor& x) {
  return (x.values.to(at::kFloat) - static_cast<float>(x.zero_point)) * static_cast<float>(x.scale);
}

QTensor requantize(const at::Tensor& y, double scale, int64_t zero_point) {
  return {quantize_values(y, scale, zero_point), scale, zero_point};
}

struct OnednnPacked : PackedWeight::Handle {
  at::Tensor packed;        // oneDNN's blocked layout (in memory only)
  at::Tensor scales;        // float32 [out]
  at::Tensor zero_points;   // int64 [out], zeros
  c10::optional<at::Tensor> bias;
  bool conv = false;
  ConvGeometry geometry;
  PackedWeight exact;  // the reference backend's, for inputs oneDNN would saturate on
};

const OnednnPacked& unpack(const PackedWeight& w, const char* op) {
  const auto* p = dynamic_cast<const OnednnPacked*>(&w.handle());
  TQ_CHECK(p != nullptr, op, "the weight was packed by the '", w.handle().backend, "' int8 backend, not by ", kName);
  return *p;
}

// oneDNN takes symmetric int8 weights with one float32 scale per output channel.
void per_channel_scales(const WeightParts& w, const char* op, OnednnPacked& p) {
  TQ_CHECK(w.values.defined() && w.values.scalar_type() == at::kChar, op, "weights must be int8 values");
  TQ_CHECK(!w.zero_points.defined() || w.zero_points.eq(0).all().item<bool>(), op,
           "the onednn backend takes symmetric int8 weights (zero point 0); this weight has zero points ",
           w.zero_points.reshape({-1}).slice(0, 0, 4));
  const int64_t out = w.values.size(0);
  auto s = w.scales.to(at::kFloat).reshape({-1});
  TQ_CHECK(s.numel() == 1 || s.numel() == out, op, "expected 1 or ", out, " weight scales, got ", s.numel());
  p.scales = (s.numel() == 1 ? s.expand({out}) : s).contiguous();
  p.zero_points = at::zeros({out}, at::kLong);
}

class OnednnBackend final : public Int8Backend {
 public:
  explicit OnednnBackend(OnednnOps ops)
      : ops_(std::move(ops)), reference_(make_reference_backend()), saturates_(int8_isa("onednn").saturates) {}

  std::string name() const override { return kName; }

  QTensor quantize(const at::Tensor& x, double scale, int64_t zero_point, bool signed_int8) const override {
    TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, "int8::quantize", "expects float32 input, got ",
             x.defined() ? toString(x.scalar_type()) : "undefined");
    TQ_CHECK(scale > 0 && std::isfinite(scale), "int8::quantize", "scale must be positive and finite, got ", scale);
    TQ_CHECK(signed_int8 ? (zero_point >= -128 && zero_point <= 127) : (zero_point >= 0 && zero_point <= 255),
             "int8::quantize", "zero_point (", zero_point, ") is outside the range of ",
             signed_int8 ? "qint8" : "quint8");
    return {quantize_values(x, scale, zero_point, signed_int8), scale, zero_point};
  }
  at::Tensor dequantize(const QTensor& x) const override {
    check_values(x, "int8::dequantize");
    return real(x);
  }

  PackedWeight prepack_linear(const WeightParts& w, const c10::optional<at::Tensor>& bias) const override {
    TQ_CHECK(w.values.dim() == 2, "int8::prepack_linear", "a linear weight is 2-D, got ", w.values.sizes());
    auto p = std::make_shared<OnednnPacked>();
    per_channel_scales(w, "int8::prepack_linear", *p);
    p->backend = kName;
    p->packed = call(ops_.linear_prepack, {w.values.contiguous(), c10::IValue()});
    if (bias && bias->defined()) p->bias = bias->to(at::kFloat).contiguous();
    p->exact = reference_->prepack_linear(w, bias);
    return PackedWeight(std::move(p));
  }

  QTensor linear(const QTensor& x, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                 bool relu) const override {
    check_values(x, "int8::linear");
    const auto& p = unpack(w, "int8::linear");
    TQ_CHECK(!p.conv, "int8::linear", "the weight was packed for a convolution");
    if (would_saturate(x)) return reference_->linear(x, p.exact, out_scale, out_zero_point, relu);
    auto y = call(ops_.linear, {x.values.contiguous(), x.scale, x.zero_point, p.packed, p.scales, p.zero_points,
                                bias_value(p), out_scale, out_zero_point, c10::IValue(),
                                std::string(relu ? "relu" : "none"), relu ? one_none_scalar() : no_scalars(),
                                std::string("")});
    return {std::move(y), out_scale, out_zero_point};
  }

  PackedWeight prepack_conv(const WeightParts& w, const c10::optional<at::Tensor>& bias,
                            const ConvGeometry& g) const override {
    TQ_CHECK(g.dims >= 1 && g.dims <= 3 && w.values.dim() == g.dims + 2, "int8::prepack_conv", "a ", g.dims,
             "-d convolution weight has ", g.dims + 2, " dimensions, got ", w.values.sizes());
    auto p = std::make_shared<OnednnPacked>();
    per_channel_scales(w, "int8::prepack_conv", *p);
    p->backend = kName;
    p->conv = true;
    p->geometry = g;
    // The input's qparams only steer oneDNN's choice of layout; the packed weight serves any.
    p->packed = call(ops_.conv_prepack, {w.values.contiguous(), p->scales, 1.0, int64_t{0}, int_list(g.stride),
                                         int_list(g.padding), int_list(g.dilation), g.groups, c10::IValue()});
    if (bias && bias->defined()) p->bias = bias->to(at::kFloat).contiguous();
    p->exact = reference_->prepack_conv(w, bias, g);
    return PackedWeight(std::move(p));
  }

  QTensor conv(const QTensor& x, const PackedWeight& w, double out_scale, int64_t out_zero_point,
               bool relu) const override {
    check_values(x, "int8::conv");
    const auto& p = unpack(w, "int8::conv");
    const auto& g = p.geometry;
    TQ_CHECK(p.conv && x.values.dim() == g.dims + 2, "int8::conv", "input must have ", g.dims + 2,
             " dimensions, got ", x.values.sizes());
    if (would_saturate(x)) return reference_->conv(x, p.exact, out_scale, out_zero_point, relu);
    // oneDNN fuses ReLU into 1- and 2-d convolutions only; on the integers ReLU is max(q, zero point)
    // (quantization is monotonic and maps 0 to the zero point), exact either way.
    const bool fuse_relu = relu && g.dims < 3;
    auto y = call(ops_.conv, {x.values, x.scale, x.zero_point, p.packed, p.scales, p.zero_points, bias_value(p),
                              int_list(g.stride), int_list(g.padding), int_list(g.dilation), g.groups, out_scale,
                              out_zero_point, c10::IValue(), std::string(fuse_relu ? "relu" : "none"),
                              fuse_relu ? one_none_scalar() : no_scalars(), c10::IValue()});
    if (relu && !fuse_relu) y.clamp_min_(out_zero_point);
    return {std::move(y), out_scale, out_zero_point};
  }

  at::Tensor linear_dynamic(const at::Tensor& x, const PackedWeight& w, bool reduce_range) const override {
    TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, "int8::linear_dynamic", "input must be float32");
    const auto& p = unpack(w, "int8::linear_dynamic");
    const auto qp = choose_quantization_params(x.numel() ? x.min().item<float>() : 0.f,
                                               x.numel() ? x.max().item<float>() : 0.f, 0, 255, false, reduce_range);
    const QTensor xq{quantize_values(x.contiguous(), qp.scale, qp.zero_point), qp.scale, qp.zero_point};
    if (would_saturate(xq)) return reference_->linear_dynamic(x, p.exact, reduce_range);
    // Float output: the int32 sums times x_scale * w_scale, plus the bias, in float32.
    return call(ops_.linear, {xq.values, xq.scale, xq.zero_point, p.packed, p.scales, p.zero_points, bias_value(p),
                              1.0, int64_t{0}, c10::IValue(at::kFloat), std::string("none"), no_scalars(),
                              std::string("")});
  }

  PackedWeight prepack_linear_fp16(const at::Tensor& weight, const c10::optional<at::Tensor>& bias) const override {
    return reference_->prepack_linear_fp16(weight, bias);
  }
  at::Tensor linear_dynamic_fp16(const at::Tensor& x, const PackedWeight& w) const override {
    return reference_->linear_dynamic_fp16(x, w);
  }
  QTensor batch_norm2d(const QTensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean,
                       const at::Tensor& var, double eps, double out_scale, int64_t out_zero_point) const override {
    return reference_->batch_norm2d(x, weight, bias, mean, var, eps, out_scale, out_zero_point);
  }
  PackedWeight prepack_embedding(const EmbeddingWeight& w) const override { return reference_->prepack_embedding(w); }
  at::Tensor embedding(const PackedWeight& w, const at::Tensor& indices) const override {
    return reference_->embedding(w, indices);
  }
  at::Tensor embedding_bag(const PackedWeight& w, const at::Tensor& indices, const c10::optional<at::Tensor>& offsets,
                           int64_t mode, const c10::optional<at::Tensor>& per_sample_weights,
                           bool include_last_offset) const override {
    return reference_->embedding_bag(w, indices, offsets, mode, per_sample_weights, include_last_offset);
  }
  QTensor add(const QTensor& a, const QTensor& b, double out_scale, int64_t out_zero_point,
              bool relu) const override {
    check_values(a, "int8::add");
    check_values(b, "int8::add");
    auto y = real(a) + real(b);
    if (relu) y.clamp_min_(0.0f);
    return requantize(y, out_scale, out_zero_point);
  }
  QTensor mul(const QTensor& a, const QTensor& b, double out_scale, int64_t out_zero_point) const override {
    check_values(a, "int8::mul");
    check_values(b, "int8::mul");
    return requantize(real(a) * real(b), out_scale, out_zero_point);
  }
  QTensor cat(const std::vector<QTensor>& xs, int64_t dim, double out_scale, int64_t out_zero_point) const override {
    TQ_CHECK(!xs.empty(), "int8::cat", "needs at least one tensor");
    std::vector<at::Tensor> reals;
    for (const auto& x : xs) {
      check_values(x, "int8::cat");
      reals.push_back(real(x));
    }
    return requantize(at::cat(reals, dim), out_scale, out_zero_point);
  }
  QTensor relu6(const QTensor& x) const override { return reference_->relu6(x); }  // integers only
  QTensor hardswish(const QTensor& x, double out_scale, int64_t out_zero_point) const override {
    check_values(x, "int8::hardswish");
    return requantize(at::hardswish(real(x)), out_scale, out_zero_point);
  }
  QTensor elu(const QTensor& x, double alpha, double out_scale, int64_t out_zero_point) const override {
    check_values(x, "int8::elu");
    return requantize(at::elu(real(x), alpha), out_scale, out_zero_point);
  }
  QTensor leaky_relu(const QTensor& x, double negative_slope, double out_scale,
                     int64_t out_zero_point) const override {
    check_values(x, "int8::leaky_relu");
    return requantize(at::leaky_relu(real(x), negative_slope), out_scale, out_zero_point);
  }
  QTensor sigmoid(const QTensor& x, double out_scale, int64_t out_zero_point) const override {
    check_values(x, "int8::sigmoid");
    return requantize(at::sigmoid(real(x)), out_scale, out_zero_point);
  }

 private:
  static c10::IValue bias_value(const OnednnPacked& p) { return p.bias ? c10::IValue(*p.bias) : c10::IValue(); }

  // Whether oneDNN would sum this input's products in int16 and overflow.
  bool would_saturate(const QTensor& x) const {
    if (!saturates_ || x.values.numel() == 0 || x.values.max().item<int64_t>() <= 127) return false;
    TORCH_WARN_ONCE("tq: oneDNN on this CPU (", int8_isa("onednn").isa,
                    ") would saturate uint8 inputs above 127; those int8 layers are computed by tq's reference "
                    "formulas instead (exact, slower). Quantize with reduce_range to keep them on oneDNN.");
    return true;
  }

  OnednnOps ops_;
  std::shared_ptr<const Int8Backend> reference_;
  bool saturates_;
};

}  // namespace

std::string onednn_backend_unavailable_reason() {
  const auto missing = missing_ops(nullptr);
  return missing.empty() ? "" : "this LibTorch lacks " + missing + " (the onednn backend needs LibTorch 2.x)";
}

std::shared_ptr<const Int8Backend> make_onednn_backend() {
  OnednnOps ops;
  const auto missing = missing_ops(&ops);
  TQ_CHECK(missing.empty(), "int8", "no onednn int8 backend: this LibTorch lacks ", missing,
           " (the onednn backend needs LibTorch 2.x)");
  return std::make_shared<OnednnBackend>(std::move(ops));
}

}  // namespace tq::kernels::int8
