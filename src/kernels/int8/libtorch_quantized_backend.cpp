// The libtorch-quantized int8 backend: LibTorch's quantized:: operators (onednn / qnnpack in
// Debian's build, fbgemm / x86 in pip's), called boxed through the dispatcher so that tq needs
// none of the engines' C++ types. Plain values become quint8 / qint8 tensors at this edge only
// (sharing memory both ways).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/irange.h>

#include <algorithm>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_backend.h"
#include "packed_weight.h"

namespace tq::kernels::int8 {
namespace {

// Operator lookups hash the name: done once (ops() below), then each call is boxed.
c10::OperatorHandle op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

// Every operator tq calls, looked up on first use.
struct Ops {
  c10::OperatorHandle linear_prepack = op("quantized::linear_prepack", "");
  c10::OperatorHandle linear = op("quantized::linear", "");
  c10::OperatorHandle linear_relu = op("quantized::linear_relu", "");
  c10::OperatorHandle linear_dynamic = op("quantized::linear_dynamic", "");
  c10::OperatorHandle conv2d_prepack = op("quantized::conv2d_prepack", "");
  c10::OperatorHandle conv2d = op("quantized::conv2d", "new");
  c10::OperatorHandle conv2d_relu = op("quantized::conv2d_relu", "new");
  c10::OperatorHandle conv1d_prepack = op("quantized::conv1d_prepack", "");
  c10::OperatorHandle conv1d = op("quantized::conv1d", "");
  c10::OperatorHandle conv1d_relu = op("quantized::conv1d_relu", "");
  c10::OperatorHandle conv3d_prepack = op("quantized::conv3d_prepack", "");
  c10::OperatorHandle conv3d = op("quantized::conv3d", "new");
  c10::OperatorHandle conv3d_relu = op("quantized::conv3d_relu", "new");
  c10::OperatorHandle batch_norm2d = op("quantized::batch_norm2d", "");
  c10::OperatorHandle embedding_prepack = op("quantized::embedding_bag_prepack", "");
  c10::OperatorHandle embedding_byte = op("quantized::embedding_byte", "");
  c10::OperatorHandle embedding_4bit = op("quantized::embedding_4bit", "");
  c10::OperatorHandle embedding_bag_byte = op("quantized::embedding_bag_byte", "");
  c10::OperatorHandle embedding_bag_4bit = op("quantized::embedding_bag_4bit", "");
  c10::OperatorHandle add = op("quantized::add", "");
  c10::OperatorHandle add_relu = op("quantized::add_relu", "");
  c10::OperatorHandle mul = op("quantized::mul", "");
  c10::OperatorHandle cat = op("quantized::cat", "");
  c10::OperatorHandle relu6 = op("quantized::relu6", "");
  c10::OperatorHandle hardswish = op("quantized::hardswish", "");
  c10::OperatorHandle elu = op("quantized::elu", "");
  c10::OperatorHandle leaky_relu = op("quantized::leaky_relu", "");
  c10::OperatorHandle sigmoid = op("quantized::sigmoid", "");
};
const Ops& ops() {
  static const Ops o;
  return o;
}

std::vector<c10::IValue> call(const c10::OperatorHandle& handle, std::vector<c10::IValue> args) {
  std::vector<c10::IValue> stack = std::move(args);
  handle.callBoxed(&stack);
  return stack;
}

std::string engine_name(at::QEngine e) {
  switch (e) {
    case at::QEngine::FBGEMM: return "fbgemm";
    case at::QEngine::QNNPACK: return "qnnpack";
    case at::QEngine::ONEDNN: return "onednn";
    case at::QEngine::X86: return "x86";
    default: return "none";
  }
}

}  // namespace

std::string current_engine() { return engine_name(at::globalContext().qEngine()); }

std::vector<std::string> available_engines() {
  std::vector<std::string> out;
  for (auto e : at::globalContext().supportedQEngines()) {
    if (e != at::QEngine::NoQEngine) out.push_back(engine_name(e));
  }
  return out;
}

void set_engine(const std::string& engine) {
  for (auto e : at::globalContext().supportedQEngines()) {
    if (engine_name(e) == engine) {
      at::globalContext().setQEngine(e);
      return;
    }
  }
  const auto avail = available_engines();
  TQ_FAIL("set_engine", "quantized engine '", engine, "' is not available in this LibTorch; available: ",
          c10::Join(", ", avail));
}

const LibTorchPacked& libtorch_packed(const PackedWeight& w, const char* op) {
  const auto* p = dynamic_cast<const LibTorchPacked*>(&w.handle());
  TQ_CHECK(p != nullptr, op, "the weight was packed by the '", w.handle().backend, "' int8 backend; it runs on ",
           kLibTorchQuantized, " only where that backend packed it");
  return *p;
}

c10::IValue packed_weight_value(const PackedWeight& packed) {
  return libtorch_packed(packed, "int8::packed_weight_value").value;
}

namespace {

// quint8 <-> uint8 without a copy: the quantized tensor takes the values' storage (and the other
// way), keeping sizes and strides (channels-last activations stay channels-last).
at::Tensor as_quint8(const QTensor& x, const char* op) {
  TQ_CHECK(x.values.defined() && x.values.scalar_type() == at::kByte, op, "activations must be uint8 values, got ",
           x.values.defined() ? toString(x.values.scalar_type()) : "undefined");
  auto q = at::_empty_affine_quantized({0}, at::device(at::kCPU).dtype(at::kQUInt8), x.scale, x.zero_point);
  q.set_(x.values.storage(), x.values.storage_offset(), x.values.sizes(), x.values.strides());
  return q;
}

QTensor as_values(const at::Tensor& q) {
  TQ_CHECK(q.is_quantized() && (q.scalar_type() == at::kQUInt8 || q.scalar_type() == at::kQInt8) &&
               q.qscheme() == at::kPerTensorAffine,
           "int8", "internal: an engine returned ", toString(q.scalar_type()), " where per-tensor int8 was expected");
  auto v = at::empty({0}, at::device(at::kCPU).dtype(q.scalar_type() == at::kQUInt8 ? at::kByte : at::kChar));
  v.set_(q.storage(), q.storage_offset(), q.sizes(), q.strides());
  return {v, q.q_scale(), q.q_zero_point()};
}

c10::optional<at::Tensor> bias_of(const c10::optional<at::Tensor>& bias) {
  if (!bias || !bias->defined()) return c10::nullopt;
  return bias->detach().to(at::kFloat).contiguous();
}

// float16 Linear is fbgemm's alone (x86 is fbgemm plus onednn): it runs there whatever engine the
// rest of the model uses, and the engine in use is restored after.
class Fp16LinearEngine {
 public:
  explicit Fp16LinearEngine(const char* op_name) : previous_(at::globalContext().qEngine()) {
    if (previous_ == at::QEngine::FBGEMM || previous_ == at::QEngine::X86) return;
    const auto& supported = at::globalContext().supportedQEngines();
    for (auto e : {at::QEngine::X86, at::QEngine::FBGEMM}) {
      if (std::find(supported.begin(), supported.end(), e) != supported.end()) {
        at::globalContext().setQEngine(e);
        return;
      }
    }
    TQ_FAIL(op_name, "float16 dynamic Linear needs the fbgemm or x86 engine; this LibTorch has: ",
            c10::Join(", ", available_engines()));
  }
  ~Fp16LinearEngine() { at::globalContext().setQEngine(previous_); }
  Fp16LinearEngine(const Fp16LinearEngine&) = delete;
  Fp16LinearEngine& operator=(const Fp16LinearEngine&) = delete;

 private:
  at::QEngine previous_;
};

class LibTorchQuantizedBackend final : public Int8Backend {
 public:
  std::string name() const override { return kLibTorchQuantized; }

  QTensor quantize(const at::Tensor& x, double scale, int64_t zero_point, bool signed_int8) const override {
    TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, "int8::quantize", "expects float32 input, got ",
             x.defined() ? toString(x.scalar_type()) : "undefined");
    return as_values(at::quantize_per_tensor(x, scale, zero_point, signed_int8 ? at::kQInt8 : at::kQUInt8));
  }

  at::Tensor dequantize(const QTensor& x) const override { return as_quint8(x, "int8::dequantize").dequantize(); }

  PackedWeight prepack_linear(const WeightParts& w, const c10::optional<at::Tensor>& bias) const override {
    const auto wq = make_quantized_weight(w.values, w.scales, w.zero_points);
    return wrap_packed(call(ops().linear_prepack, {wq, bias_of(bias)})[0]);
  }

  QTensor linear(const QTensor& x, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                 bool relu) const override {
    const auto x_q = as_quint8(x, "int8::linear");
    // The engines take 2-D inputs; fold leading dimensions.
    const auto sizes = x_q.sizes().vec();
    TQ_CHECK(!sizes.empty(), "int8::linear", "input must have at least one dimension");
    const auto x2 = x_q.dim() == 2 ? x_q : x_q.reshape({-1, sizes.back()});
    auto y = call(relu ? ops().linear_relu : ops().linear,
                  {x2, libtorch_packed(w, "int8::linear").value, out_scale, out_zero_point})[0]
                 .toTensor();
    if (x_q.dim() != 2) {
      auto out_sizes = sizes;
      out_sizes.back() = y.size(-1);
      y = y.reshape(out_sizes);
    }
    return as_values(y);
  }

  at::Tensor linear_dynamic(const at::Tensor& x, const PackedWeight& w, bool reduce_range) const override {
    TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, "int8::linear_dynamic", "input must be float32");
    return call(ops().linear_dynamic, {x.contiguous(), libtorch_packed(w, "int8::linear_dynamic").value, reduce_range})[0]
        .toTensor();
  }

  PackedWeight prepack_linear_fp16(const at::Tensor& weight, const c10::optional<at::Tensor>& bias) const override {
    Fp16LinearEngine engine("int8::prepack_linear_fp16");
    static const auto h = op("quantized::linear_prepack_fp16", "");
    return wrap_packed(call(h, {weight, bias_of(bias)})[0]);
  }

  at::Tensor linear_dynamic_fp16(const at::Tensor& x, const PackedWeight& w) const override {
    Fp16LinearEngine engine("int8::linear_dynamic_fp16");
    static const auto h = op("quantized::linear_dynamic_fp16", "");
    return call(h, {x.contiguous(), libtorch_packed(w, "int8::linear_dynamic_fp16").value})[0].toTensor();
  }

  PackedWeight prepack_conv(const WeightParts& w, const c10::optional<at::Tensor>& bias,
                            const ConvGeometry& g) const override {
    TQ_CHECK(g.dims >= 1 && g.dims <= 3, "int8::prepack_conv", "dims must be 1, 2 or 3, got ", g.dims);
    const auto& h = g.dims == 1 ? ops().conv1d_prepack : g.dims == 2 ? ops().conv2d_prepack : ops().conv3d_prepack;
    const auto wq = make_quantized_weight(w.values, w.scales, w.zero_points);
    auto p = std::make_shared<ConvPacked>();
    p->backend = kLibTorchQuantized;
    p->value = call(h, {wq, bias_of(bias), g.stride, g.padding, g.dilation, g.groups})[0];
    p->geometry = g;
    return PackedWeight(std::move(p));
  }

  QTensor conv(const QTensor& x, const PackedWeight& w, double out_scale, int64_t out_zero_point,
               bool relu) const override {
    const auto& packed = libtorch_packed(w, "int8::conv");
    const auto* c = dynamic_cast<const ConvPacked*>(&packed);
    TQ_CHECK(c != nullptr, "int8::conv", "the weight was not packed for a convolution");
    const auto x_q = as_quint8(x, "int8::conv");
    const int dims = c->geometry.dims;
    TQ_CHECK(x_q.dim() == dims + 2, "int8::conv", "input must have ", dims + 2, " dimensions, got ", x_q.sizes());
    const auto& h = dims == 1   ? (relu ? ops().conv1d_relu : ops().conv1d)
                    : dims == 2 ? (relu ? ops().conv2d_relu : ops().conv2d)
                                   : (relu ? ops().conv3d_relu : ops().conv3d);
    // No .contiguous(): the engines keep activations channels-last between layers, and a copy back
    // to NCHW before every convolution costs more than the convolution's int8 arithmetic saves.
    return as_values(call(h, {x_q, c->value, out_scale, out_zero_point})[0].toTensor());
  }

  QTensor batch_norm2d(const QTensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean,
                       const at::Tensor& var, double eps, double out_scale, int64_t out_zero_point) const override {
    return as_values(call(ops().batch_norm2d, {as_quint8(x, "int8::batch_norm2d"), weight, bias, mean, var, eps,
                                               out_scale, out_zero_point})[0]
                         .toTensor());
  }

  PackedWeight prepack_embedding(const EmbeddingWeight& w) const override {
    const auto wq = quantize_embedding_weight(w.weight, {w.scales, w.zero_points}, w.four_bit);
    return wrap_packed(call(ops().embedding_prepack, {wq})[0], w.four_bit);
  }

  at::Tensor embedding(const PackedWeight& w, const at::Tensor& indices) const override {
    const auto& p = libtorch_packed(w, "int8::embedding");
    TQ_CHECK(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt, "int8::embedding",
             "indices must be int64 or int32, got ", indices.scalar_type());
    return call(p.four_bit ? ops().embedding_4bit : ops().embedding_byte, {p.value, indices.contiguous(), false})[0]
        .toTensor();
  }

  // LibTorch's quantized embedding_bag operators sum whatever mode they are given (1.13 and 2.x
  // alike): mean divides the sums by the bag sizes here, max reduces the rows looked up.
  at::Tensor embedding_bag(const PackedWeight& w, const at::Tensor& indices, const c10::optional<at::Tensor>& offsets,
                           int64_t mode, const c10::optional<at::Tensor>& per_sample_weights,
                           bool include_last_offset) const override {
    const char* op_name = "int8::embedding_bag";
    const auto& p = libtorch_packed(w, op_name);
    TQ_CHECK(mode >= 0 && mode <= 2, op_name, "mode must be 0 (sum), 1 (mean) or 2 (max), got ", mode);
    TQ_CHECK(mode == 0 || !per_sample_weights.has_value(), op_name, "per-sample weights need mode 0 (sum)");
    TQ_CHECK(indices.dim() == 1 && offsets.has_value(), op_name, "takes 1-D indices with offsets");
    const auto idx = indices.to(at::kLong);
    const auto off = offsets->to(at::kLong);
    // Bag b holds indices [starts[b], ends[b]).
    const int64_t bags = off.numel() - (include_last_offset ? 1 : 0);
    const auto starts = off.slice(0, 0, bags);
    const auto ends = include_last_offset ? off.slice(0, 1, bags + 1)
                                          : at::cat({off.slice(0, 1, bags), at::full({1}, idx.numel(), at::kLong)});
    if (mode == 2) {
      const auto rows = embedding(w, idx);
      std::vector<at::Tensor> out;
      for (int64_t b = 0; b < bags; ++b) {
        const int64_t s = starts[b].item<int64_t>(), e = ends[b].item<int64_t>();
        out.push_back(e > s ? std::get<0>(rows.slice(0, s, e).max(0)) : at::zeros({rows.size(1)}));
      }
      return at::stack(out);
    }
    auto sums = call(p.four_bit ? ops().embedding_bag_4bit : ops().embedding_bag_byte,
                     {p.value, idx, off, false, int64_t{0}, false, per_sample_weights, c10::optional<at::Tensor>(),
                      include_last_offset})[0]
                    .toTensor();
    if (mode == 0) return sums;
    return sums / (ends - starts).clamp_min(1).to(at::kFloat).unsqueeze(1);
  }

  QTensor add(const QTensor& a, const QTensor& b, double out_scale, int64_t out_zero_point,
              bool relu) const override {
    return as_values(call(relu ? ops().add_relu : ops().add,
                          {as_quint8(a, "int8::add"), as_quint8(b, "int8::add"), out_scale, out_zero_point})[0]
                         .toTensor());
  }

  QTensor mul(const QTensor& a, const QTensor& b, double out_scale, int64_t out_zero_point) const override {
    return as_values(
        call(ops().mul, {as_quint8(a, "int8::mul"), as_quint8(b, "int8::mul"), out_scale, out_zero_point})[0]
            .toTensor());
  }

  QTensor cat(const std::vector<QTensor>& xs, int64_t dim, double out_scale, int64_t out_zero_point) const override {
    TQ_CHECK(!xs.empty(), "int8::cat", "needs at least one tensor");
    c10::List<at::Tensor> list;
    for (const auto& x : xs) list.push_back(as_quint8(x, "int8::cat"));
    return as_values(call(ops().cat, {list, dim, out_scale, out_zero_point})[0].toTensor());
  }

  QTensor relu6(const QTensor& x) const override {
    return as_values(call(ops().relu6, {as_quint8(x, "int8::relu6"), false})[0].toTensor());
  }

  QTensor hardswish(const QTensor& x, double out_scale, int64_t out_zero_point) const override {
    return as_values(
        call(ops().hardswish, {as_quint8(x, "int8::hardswish"), out_scale, out_zero_point})[0].toTensor());
  }

  QTensor elu(const QTensor& x, double alpha, double out_scale, int64_t out_zero_point) const override {
    return as_values(call(ops().elu, {as_quint8(x, "int8::elu"), out_scale, out_zero_point, c10::Scalar(alpha),
                                      c10::Scalar(1.0), c10::Scalar(1.0)})[0]
                         .toTensor());
  }

  QTensor leaky_relu(const QTensor& x, double negative_slope, double out_scale,
                     int64_t out_zero_point) const override {
    return as_values(call(ops().leaky_relu, {as_quint8(x, "int8::leaky_relu"), c10::Scalar(negative_slope), false,
                                             out_scale, out_zero_point})[0]
                         .toTensor());
  }

  QTensor sigmoid(const QTensor& x, double out_scale, int64_t out_zero_point) const override {
    return as_values(call(ops().sigmoid, {as_quint8(x, "int8::sigmoid"), out_scale, out_zero_point})[0].toTensor());
  }
};

}  // namespace

std::shared_ptr<const Int8Backend> make_libtorch_quantized_backend() {
  return std::make_shared<LibTorchQuantizedBackend>();
}

QTensor to_qtensor(const at::Tensor& x_q) {
  TQ_CHECK(x_q.defined() && x_q.is_quantized() && x_q.scalar_type() == at::kQUInt8 &&
               x_q.qscheme() == at::kPerTensorAffine,
           "int8", "input must be a quint8 quantized tensor (put a QuantStub before this module), got ",
           x_q.defined() ? toString(x_q.scalar_type()) : "undefined");
  return as_values(x_q);
}

at::Tensor from_qtensor(const QTensor& x) { return as_quint8(x, "int8"); }

}  // namespace tq::kernels::int8
