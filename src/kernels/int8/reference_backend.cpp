// The "reference" int8 backend: every op written from the quantization formulas on plain
// tensors, integer products summed exactly (in float64, exact below 2^53), one rounding at the
// end. Slow by design: it is the yardstick of the conformance suite (tests/test_int8_backends.cpp)
// that every backend must pass, and it uses none of ATen's quantized operators or dtypes.
#include <ATen/ATen.h>

#include <cmath>

#include "tq/core/check.h"
#include "tq/kernels/int8_backend.h"
#include "tq/numerics/qparams.h"

namespace tq::kernels::int8 {
namespace {

constexpr const char* kName = "reference";

at::Tensor real(const QTensor& x) { return dequantize_per_tensor(x.values, x.scale, x.zero_point); }

// float values -> uint8 with PyTorch's rounding (tq's numerics: the same as quantize_per_tensor).
QTensor requantize(const at::Tensor& y, double scale, int64_t zero_point) {
  return {quantize_per_tensor(y.to(at::kFloat).contiguous(), scale, zero_point, QDType::QUInt8), scale, zero_point};
}

void check_values(const QTensor& x, const char* op) {
  TQ_CHECK(x.values.defined() && x.values.scalar_type() == at::kByte, op, "activations must be uint8 values, got ",
           x.values.defined() ? toString(x.values.scalar_type()) : "undefined");
}

// Integers minus their zero points, as exact float64.
at::Tensor centered(const QTensor& x) { return x.values.to(at::kDouble) - static_cast<double>(x.zero_point); }

struct WeightedPacked : PackedWeight::Handle {
  WeightParts w;
  at::Tensor bias;  // float32 or undefined
  bool conv = false;
  ConvGeometry geometry;
  at::Tensor fp16_weight;  // linear_prepack_fp16: float16 values widened back to float32
};

std::shared_ptr<WeightedPacked> weighted(const WeightParts& w, const c10::optional<at::Tensor>& bias) {
  auto p = std::make_shared<WeightedPacked>();
  p->backend = kName;
  p->w = w;
  if (bias && bias->defined()) p->bias = bias->to(at::kFloat);
  return p;
}

struct EmbeddingPacked : PackedWeight::Handle {
  at::Tensor rows;  // dequantized rows, float32 [rows, dim]
};

template <typename T>
const T& unpack(const PackedWeight& w, const char* op) {
  const auto* p = dynamic_cast<const T*>(&w.handle());
  TQ_CHECK(p != nullptr, op, "the weight was packed by the '", w.handle().backend, "' int8 backend, not by ", kName);
  return *p;
}

// Shape [1, out, 1, ...] (or [out] for linear outputs) of per-output-channel weight scales.
at::Tensor channel_scales(const WeightParts& w, int64_t out_channels) {
  const auto s = w.scales.to(at::kDouble).reshape({-1});
  return s.numel() == 1 ? s.expand({out_channels}) : s;
}

at::Tensor centered_weight(const WeightParts& w) {
  auto z = w.zero_points.to(at::kDouble).reshape({-1});
  std::vector<int64_t> shape(w.values.dim(), 1);
  shape[0] = z.numel();
  return w.values.to(at::kDouble) - z.reshape(shape);
}

QTensor finish(at::Tensor acc_real, const at::Tensor& bias, int64_t channel_dim, double out_scale,
               int64_t out_zero_point, bool relu) {
  if (bias.defined()) {
    std::vector<int64_t> shape(acc_real.dim(), 1);
    shape[channel_dim] = bias.numel();
    acc_real = acc_real + bias.to(at::kDouble).reshape(shape);
  }
  if (relu) acc_real = acc_real.clamp_min(0.0);
  return requantize(acc_real, out_scale, out_zero_point);
}

class ReferenceBackend final : public Int8Backend {
 public:
  std::string name() const override { return kName; }

  QTensor quantize(const at::Tensor& x, double scale, int64_t zero_point, bool signed_int8) const override {
    TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, "int8::quantize", "expects float32 input, got ",
             x.defined() ? toString(x.scalar_type()) : "undefined");
    return {quantize_per_tensor(x, scale, zero_point, signed_int8 ? QDType::QInt8 : QDType::QUInt8), scale,
            zero_point};
  }

  at::Tensor dequantize(const QTensor& x) const override { return real(x); }

  PackedWeight prepack_linear(const WeightParts& w, const c10::optional<at::Tensor>& bias) const override {
    TQ_CHECK(w.values.dim() == 2, "int8::prepack_linear", "a linear weight is 2-D, got ", w.values.sizes());
    return PackedWeight(weighted(w, bias));
  }

  QTensor linear(const QTensor& x, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                 bool relu) const override {
    check_values(x, "int8::linear");
    const auto& p = unpack<WeightedPacked>(w, "int8::linear");
    const auto acc = at::matmul(centered(x), centered_weight(p.w).t());
    const auto out = p.w.values.size(0);
    return finish(acc * (x.scale * channel_scales(p.w, out)), p.bias, acc.dim() - 1, out_scale, out_zero_point,
                  relu);
  }

  PackedWeight prepack_conv(const WeightParts& w, const c10::optional<at::Tensor>& bias,
                            const ConvGeometry& g) const override {
    TQ_CHECK(g.dims >= 1 && g.dims <= 3 && w.values.dim() == g.dims + 2, "int8::prepack_conv",
             "a ", g.dims, "-d convolution weight has ", g.dims + 2, " dimensions, got ", w.values.sizes());
    auto p = weighted(w, bias);
    p->conv = true;
    p->geometry = g;
    return PackedWeight(std::move(p));
  }

  QTensor conv(const QTensor& x, const PackedWeight& w, double out_scale, int64_t out_zero_point,
               bool relu) const override {
    check_values(x, "int8::conv");
    const auto& p = unpack<WeightedPacked>(w, "int8::conv");
    TQ_CHECK(p.conv && x.values.dim() == p.geometry.dims + 2, "int8::conv", "input must have ", p.geometry.dims + 2,
             " dimensions, got ", x.values.sizes());
    const auto& g = p.geometry;
    // Padding with the input's zero point is padding with real zeros: centered values pad with 0.
    const auto acc = at::convolution(centered(x), centered_weight(p.w), {}, g.stride, g.padding, g.dilation, false,
                                     std::vector<int64_t>(g.dims, 0), g.groups);
    const auto out = p.w.values.size(0);
    std::vector<int64_t> shape(acc.dim(), 1);
    shape[1] = out;
    return finish(acc * (x.scale * channel_scales(p.w, out)).reshape(shape), p.bias, 1, out_scale, out_zero_point,
                  relu);
  }

  at::Tensor linear_dynamic(const at::Tensor& x, const PackedWeight& w, bool reduce_range) const override {
    TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, "int8::linear_dynamic", "input must be float32");
    const auto& p = unpack<WeightedPacked>(w, "int8::linear_dynamic");
    const auto qp = choose_quantization_params(x.numel() ? x.min().item<float>() : 0.f,
                                               x.numel() ? x.max().item<float>() : 0.f, 0, 255, false, reduce_range);
    const QTensor xq{quantize_per_tensor(x.contiguous(), qp.scale, qp.zero_point, QDType::QUInt8), qp.scale,
                     qp.zero_point};
    auto acc = at::matmul(centered(xq), centered_weight(p.w).t()) *
               (static_cast<double>(qp.scale) * channel_scales(p.w, p.w.values.size(0)));
    if (p.bias.defined()) acc = acc + p.bias.to(at::kDouble);
    return acc.to(at::kFloat);
  }

  PackedWeight prepack_linear_fp16(const at::Tensor& weight, const c10::optional<at::Tensor>& bias) const override {
    auto p = weighted(WeightParts{}, bias);
    p->fp16_weight = weight.detach().to(at::kHalf).to(at::kFloat);
    return PackedWeight(std::move(p));
  }

  at::Tensor linear_dynamic_fp16(const at::Tensor& x, const PackedWeight& w) const override {
    const auto& p = unpack<WeightedPacked>(w, "int8::linear_dynamic_fp16");
    TQ_CHECK(p.fp16_weight.defined(), "int8::linear_dynamic_fp16", "the weight was not packed as float16");
    auto y = at::matmul(x.to(at::kDouble), p.fp16_weight.to(at::kDouble).t());
    if (p.bias.defined()) y = y + p.bias.to(at::kDouble);
    return y.to(at::kFloat);
  }

  QTensor batch_norm2d(const QTensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean,
                       const at::Tensor& var, double eps, double out_scale, int64_t out_zero_point) const override {
    check_values(x, "int8::batch_norm2d");
    TQ_CHECK(x.values.dim() == 4, "int8::batch_norm2d", "input must be 4-D, got ", x.values.sizes());
    auto c = [](const at::Tensor& t) { return t.to(at::kDouble).reshape({1, -1, 1, 1}); };
    const auto y = (real(x).to(at::kDouble) - c(mean)) / (c(var) + eps).sqrt() * c(weight) + c(bias);
    return requantize(y, out_scale, out_zero_point);
  }

  PackedWeight prepack_embedding(const EmbeddingWeight& w) const override {
    TQ_CHECK(w.weight.dim() == 2, "int8::prepack_embedding", "an embedding table is 2-D, got ", w.weight.sizes());
    const auto s = w.scales.to(at::kFloat).reshape({-1, 1});
    const auto z = w.zero_points.to(at::kFloat).reshape({-1, 1});
    // PyTorch's float-qparams rows: q = round(w * (1 / scale) + zero_point) in float32, and rows
    // read back as q * scale + bias with bias = -zero_point * scale (float16 scale and bias for
    // 4-bit rows, as the 4-bit table stores them).
    const int64_t qmax = w.four_bit ? 15 : 255;
    const auto q = at::clamp(at::round(w.weight.to(at::kFloat) * (1.0f / s) + z), 0, qmax);
    at::Tensor scale = s, offset = -z * s;
    if (w.four_bit) {
      scale = scale.to(at::kHalf).to(at::kFloat);
      offset = offset.to(at::kHalf).to(at::kFloat);
    }
    auto p = std::make_shared<EmbeddingPacked>();
    p->backend = kName;
    p->rows = q * scale + offset;
    return PackedWeight(std::move(p));
  }

  at::Tensor embedding(const PackedWeight& w, const at::Tensor& indices) const override {
    TQ_CHECK(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt, "int8::embedding",
             "indices must be int64 or int32, got ", indices.scalar_type());
    return unpack<EmbeddingPacked>(w, "int8::embedding").rows.index_select(0, indices.reshape({-1}).to(at::kLong))
        .reshape([&] {
          auto s = indices.sizes().vec();
          s.push_back(-1);
          return s;
        }());
  }

  at::Tensor embedding_bag(const PackedWeight& w, const at::Tensor& indices, const c10::optional<at::Tensor>& offsets,
                           int64_t mode, const c10::optional<at::Tensor>& per_sample_weights,
                           bool include_last_offset) const override {
    TQ_CHECK(mode >= 0 && mode <= 2, "int8::embedding_bag", "mode must be 0 (sum), 1 (mean) or 2 (max), got ", mode);
    const auto& rows = unpack<EmbeddingPacked>(w, "int8::embedding_bag").rows;
    const auto idx = indices.reshape({-1}).to(at::kLong);
    std::vector<int64_t> starts;
    if (indices.dim() == 2) {
      for (int64_t b = 0; b < indices.size(0); ++b) starts.push_back(b * indices.size(1));
    } else {
      TQ_CHECK(offsets.has_value(), "int8::embedding_bag", "1-D indices need offsets");
      const auto off = offsets->to(at::kLong);
      for (int64_t i = 0; i < off.numel() - (include_last_offset ? 1 : 0); ++i) starts.push_back(off[i].item<int64_t>());
    }
    std::vector<at::Tensor> bags;
    for (size_t b = 0; b < starts.size(); ++b) {
      const int64_t end = b + 1 < starts.size() ? starts[b + 1] : idx.numel();
      auto r = rows.index_select(0, idx.slice(0, starts[b], end)).to(at::kDouble);
      if (per_sample_weights) r = r * per_sample_weights->reshape({-1}).slice(0, starts[b], end).to(at::kDouble).unsqueeze(1);
      if (r.size(0) == 0) {
        bags.push_back(at::zeros({rows.size(1)}, at::kDouble));
      } else {
        bags.push_back(mode == 0 ? r.sum(0) : mode == 1 ? r.mean(0) : std::get<0>(r.max(0)));
      }
    }
    return at::stack(bags).to(at::kFloat);
  }

  QTensor add(const QTensor& a, const QTensor& b, double out_scale, int64_t out_zero_point,
              bool relu) const override {
    check_values(a, "int8::add");
    check_values(b, "int8::add");
    auto y = real(a).to(at::kDouble) + real(b).to(at::kDouble);
    if (relu) y = y.clamp_min(0.0);
    return requantize(y, out_scale, out_zero_point);
  }

  QTensor mul(const QTensor& a, const QTensor& b, double out_scale, int64_t out_zero_point) const override {
    check_values(a, "int8::mul");
    check_values(b, "int8::mul");
    return requantize(real(a).to(at::kDouble) * real(b).to(at::kDouble), out_scale, out_zero_point);
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

  QTensor relu6(const QTensor& x) const override {
    check_values(x, "int8::relu6");
    // The integers themselves: max(q, zero_point), min(q, q(6)).
    const auto six = quantize_per_tensor(at::full({1}, 6.0f), x.scale, x.zero_point, QDType::QUInt8).item<int64_t>();
    return {x.values.clamp(x.zero_point, six), x.scale, x.zero_point};
  }

  QTensor hardswish(const QTensor& x, double out_scale, int64_t out_zero_point) const override {
    check_values(x, "int8::hardswish");
    const auto r = real(x).to(at::kDouble);
    return requantize(r * (r + 3.0).clamp(0.0, 6.0) / 6.0, out_scale, out_zero_point);
  }

  QTensor elu(const QTensor& x, double alpha, double out_scale, int64_t out_zero_point) const override {
    check_values(x, "int8::elu");
    const auto r = real(x).to(at::kDouble);
    return requantize(at::where(r > 0, r, alpha * (r.exp() - 1.0)), out_scale, out_zero_point);
  }

  QTensor leaky_relu(const QTensor& x, double negative_slope, double out_scale,
                     int64_t out_zero_point) const override {
    check_values(x, "int8::leaky_relu");
    const auto r = real(x).to(at::kDouble);
    return requantize(at::where(r > 0, r, negative_slope * r), out_scale, out_zero_point);
  }

  QTensor sigmoid(const QTensor& x, double out_scale, int64_t out_zero_point) const override {
    check_values(x, "int8::sigmoid");
    return requantize(real(x).to(at::kDouble).sigmoid(), out_scale, out_zero_point);
  }
};

}  // namespace

std::shared_ptr<const Int8Backend> make_reference_backend() { return std::make_shared<ReferenceBackend>(); }

}  // namespace tq::kernels::int8
