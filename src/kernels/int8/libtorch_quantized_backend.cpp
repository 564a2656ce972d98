// The int8 interface on LibTorch's quantized:: operators, called boxed through the dispatcher so
// that tq needs none of the engines' C++ types.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/irange.h>

#include <algorithm>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
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

void check_input(const at::Tensor& x, const char* op) {
  TQ_CHECK(x.defined() && x.is_quantized() && x.scalar_type() == at::kQUInt8, op,
           "input must be a quint8 quantized tensor (put a QuantStub before this module), got ",
           x.defined() ? toString(x.scalar_type()) : "undefined");
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
  TQ_CHECK(false, "set_engine", "quantized engine '", engine, "' is not available in this LibTorch; available: ",
           c10::Join(", ", avail));
}

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

const PackedWeight::Handle& PackedWeight::handle() const {
  TQ_CHECK(handle_ != nullptr, "int8", "the weight was never packed (convert the module first)");
  return *handle_;
}

c10::IValue packed_weight_value(const PackedWeight& packed) { return packed.handle().value; }

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

PackedWeight prepack_linear(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias) {
  return wrap_packed(call(ops().linear_prepack, {weight_q, bias})[0]);
}

at::Tensor linear(const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point, bool relu) {
  check_input(x_q, "int8::linear");
  // The engines take 2-D inputs; fold leading dimensions.
  const auto sizes = x_q.sizes().vec();
  const auto x2 = x_q.dim() == 2 ? x_q : x_q.reshape({-1, sizes.back()});
  auto y = call(relu ? ops().linear_relu : ops().linear,
                {x2, w.handle().value, out_scale, out_zero_point})[0]
               .toTensor();
  if (x_q.dim() != 2) {
    auto out_sizes = sizes;
    out_sizes.back() = y.size(-1);
    y = y.reshape(out_sizes);
  }
  return y;
}

at::Tensor linear_dynamic(const at::Tensor& x, const PackedWeight& w, bool reduce_range) {
  TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, "int8::linear_dynamic", "input must be float32");
  return call(ops().linear_dynamic, {x.contiguous(), w.handle().value, reduce_range})[0].toTensor();
}

namespace {
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
    TQ_CHECK(false, op_name, "float16 dynamic Linear needs the fbgemm or x86 engine; this LibTorch has: ",
             c10::Join(", ", available_engines()));
  }
  ~Fp16LinearEngine() { at::globalContext().setQEngine(previous_); }
  Fp16LinearEngine(const Fp16LinearEngine&) = delete;
  Fp16LinearEngine& operator=(const Fp16LinearEngine&) = delete;

 private:
  at::QEngine previous_;
};
}  // namespace

PackedWeight prepack_linear_fp16(const at::Tensor& weight, const c10::optional<at::Tensor>& bias) {
  Fp16LinearEngine engine("int8::prepack_linear_fp16");
  static const auto h = op("quantized::linear_prepack_fp16", "");
  return wrap_packed(call(h, {weight, bias})[0]);
}

at::Tensor linear_dynamic_fp16(const at::Tensor& x, const PackedWeight& w) {
  Fp16LinearEngine engine("int8::linear_dynamic_fp16");
  static const auto h = op("quantized::linear_dynamic_fp16", "");
  return call(h, {x.contiguous(), w.handle().value})[0].toTensor();
}

PackedWeight prepack_conv2d(const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias,
                            std::vector<int64_t> stride, std::vector<int64_t> padding,
                            std::vector<int64_t> dilation, int64_t groups) {
  return wrap_packed(call(ops().conv2d_prepack, {weight_q, bias, stride, padding, dilation, groups})[0]);
}

at::Tensor conv2d(const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point, bool relu) {
  check_input(x_q, "int8::conv2d");
  TQ_CHECK(x_q.dim() == 4, "int8::conv2d", "input must be 4-D (N, C, H, W), got ", x_q.sizes());
  // No .contiguous(): the engines keep activations channels-last between layers, and a copy back
  // to NCHW before every convolution costs more than the convolution's int8 arithmetic saves.
  return call(relu ? ops().conv2d_relu : ops().conv2d,
              {x_q, w.handle().value, out_scale, out_zero_point})[0]
      .toTensor();
}

PackedWeight prepack_conv(int dims, const at::Tensor& weight_q, const c10::optional<at::Tensor>& bias,
                          std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                          int64_t groups) {
  TQ_CHECK(dims == 1 || dims == 2 || dims == 3, "int8::prepack_conv", "dims must be 1, 2 or 3, got ", dims);
  if (dims == 2) return prepack_conv2d(weight_q, bias, stride, padding, dilation, groups);
  const auto& h = dims == 1 ? ops().conv1d_prepack : ops().conv3d_prepack;
  return wrap_packed(call(h, {weight_q, bias, stride, padding, dilation, groups})[0]);
}

at::Tensor conv(int dims, const at::Tensor& x_q, const PackedWeight& w, double out_scale, int64_t out_zero_point,
                bool relu) {
  if (dims == 2) return conv2d(x_q, w, out_scale, out_zero_point, relu);
  check_input(x_q, "int8::conv");
  TQ_CHECK(x_q.dim() == dims + 2, "int8::conv", "input must have ", dims + 2, " dimensions, got ", x_q.sizes());
  const auto& h = dims == 1 ? (relu ? ops().conv1d_relu : ops().conv1d) : (relu ? ops().conv3d_relu : ops().conv3d);
  return call(h, {x_q, w.handle().value, out_scale, out_zero_point})[0].toTensor();
}

at::Tensor batch_norm2d(const at::Tensor& x_q, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean,
                        const at::Tensor& var, double eps, double out_scale, int64_t out_zero_point) {
  check_input(x_q, "int8::batch_norm2d");
  return call(ops().batch_norm2d, {x_q, weight, bias, mean, var, eps, out_scale, out_zero_point})[0].toTensor();
}

PackedWeight prepack_embedding(const at::Tensor& weight_q) { return wrap_packed(call(ops().embedding_prepack, {weight_q})[0]); }

at::Tensor embedding(const PackedWeight& w, const at::Tensor& indices, bool four_bit) {
  TQ_CHECK(indices.scalar_type() == at::kLong || indices.scalar_type() == at::kInt, "int8::embedding",
           "indices must be int64 or int32, got ", indices.scalar_type());
  return call(four_bit ? ops().embedding_4bit : ops().embedding_byte, {w.handle().value, indices, false})[0].toTensor();
}

at::Tensor embedding_bag(const PackedWeight& w, const at::Tensor& indices, const c10::optional<at::Tensor>& offsets,
                         int64_t mode, const c10::optional<at::Tensor>& per_sample_weights, bool include_last_offset,
                         bool four_bit) {
  TQ_CHECK(mode >= 0 && mode <= 2, "int8::embedding_bag", "mode must be 0 (sum), 1 (mean) or 2 (max), got ", mode);
  return call(four_bit ? ops().embedding_bag_4bit : ops().embedding_bag_byte,
              {w.handle().value, indices, offsets, false, mode, false, per_sample_weights, c10::optional<at::Tensor>(),
               include_last_offset})[0]
      .toTensor();
}

at::Tensor add(const at::Tensor& a_q, const at::Tensor& b_q, double out_scale, int64_t out_zero_point, bool relu) {
  check_input(a_q, "int8::add");
  check_input(b_q, "int8::add");
  return call(relu ? ops().add_relu : ops().add, {a_q, b_q, out_scale, out_zero_point})[0].toTensor();
}

at::Tensor mul(const at::Tensor& a_q, const at::Tensor& b_q, double out_scale, int64_t out_zero_point) {
  check_input(a_q, "int8::mul");
  check_input(b_q, "int8::mul");
  return call(ops().mul, {a_q, b_q, out_scale, out_zero_point})[0].toTensor();
}

at::Tensor cat(const std::vector<at::Tensor>& xs_q, int64_t dim, double out_scale, int64_t out_zero_point) {
  TQ_CHECK(!xs_q.empty(), "int8::cat", "needs at least one tensor");
  for (const auto& x : xs_q) check_input(x, "int8::cat");
  return call(ops().cat, {c10::List<at::Tensor>(xs_q), dim, out_scale, out_zero_point})[0].toTensor();
}

at::Tensor relu6(const at::Tensor& x_q) {
  check_input(x_q, "int8::relu6");
  return call(ops().relu6, {x_q, false})[0].toTensor();
}

at::Tensor hardswish(const at::Tensor& x_q, double out_scale, int64_t out_zero_point) {
  check_input(x_q, "int8::hardswish");
  return call(ops().hardswish, {x_q, out_scale, out_zero_point})[0].toTensor();
}

at::Tensor elu(const at::Tensor& x_q, double out_scale, int64_t out_zero_point, double alpha) {
  check_input(x_q, "int8::elu");
  return call(ops().elu, {x_q, out_scale, out_zero_point, c10::Scalar(alpha), c10::Scalar(1.0),
                                     c10::Scalar(1.0)})[0]
      .toTensor();
}

at::Tensor leaky_relu(const at::Tensor& x_q, double negative_slope, double out_scale, int64_t out_zero_point) {
  check_input(x_q, "int8::leaky_relu");
  return call(ops().leaky_relu, {x_q, c10::Scalar(negative_slope), false, out_scale, out_zero_point})[0]
      .toTensor();
}

at::Tensor sigmoid(const at::Tensor& x_q, double out_scale, int64_t out_zero_point) {
  check_input(x_q, "int8::sigmoid");
  return call(ops().sigmoid, {x_q, out_scale, out_zero_point})[0].toTensor();
}

}  // namespace tq::kernels::int8
