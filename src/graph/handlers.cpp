// The handlers behind default_patterns() and seed_patterns(): what each match becomes in int8.
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <functional>

#include "layer_args.h"
#include "tq/core/check.h"
#include "tq/graph/pattern.h"
#include "tq/kernels/int8_graph.h"
#include "tq/numerics/batch_norm_folding.h"
#include "tq/numerics/groupwise_weight.h"
#include "tq/quant/qconfig_mapping.h"

namespace tq::graph {
namespace {

using torch::jit::Node;
using torch::jit::Value;
using detail::ConvArgs;
using detail::constant_of;
using detail::is_constant;
using detail::is_tensor;
using detail::is_tensor_list;
using detail::kConvOps;
using detail::kLinearOps;
using detail::optional_tensor;
using detail::read_conv;
using detail::why_batch_norm_float;
using detail::why_conv_float;
namespace int8g = kernels::int8::graph;

const std::vector<std::string> kBatchNormOps = {"aten::batch_norm"};
const std::vector<std::string> kReluOps = {"aten::relu"};


// A reference form's weight: the int8 tensor as a constant, dequantized in the graph (PT2E's
// reference representation), so the int8 values stay visible to whoever reads the graph (the
// ONNX exporter writes them as an int8 initializer with DequantizeLinear).
Value* dequantized_weight(torch::jit::Graph& g, const at::Tensor& qweight) {
  return int8g::dequantize(g, g.insertConstant(qweight));
}

// conv (+ batch_norm) (+ relu): one int8 convolution with the batch norm folded in.
class ConvHandler : public QuantizeHandler {
 public:
  // fold_before_observing: FX folds batch norm before calibration; the seed observes the float
  // model as it is and folds only when it quantizes.
  ConvHandler(std::string name, bool fold_before_observing)
      : name_(std::move(name)), fold_early_(fold_before_observing) {}
  std::string name() const override { return name_; }
  void prepare(Match& m, torch::jit::Graph& g) const override {
    auto* bn = m.find(kBatchNormOps);
    if (!fold_early_ || !bn) return;
    auto* conv = m.find(kConvOps);
    const auto a = read_conv(conv);
    const auto folded = fold(a, bn);
    torch::jit::WithInsertPoint guard(conv);
    conv->replaceInput(1, g.insertConstant(folded.weight));
    conv->replaceInput(2, g.insertConstant(folded.bias));
    bn->output()->replaceAllUsesWith(conv->output());
    m.nodes.erase(std::find(m.nodes.begin(), m.nodes.end(), bn));
    if (m.root == bn) m.root = conv;
    bn->destroy();
  }
  std::string why_float(const Match& m) const override {
    const auto why = why_conv_float(m.find(kConvOps));
    if (!why.empty()) return why;
    if (auto* bn = m.find(kBatchNormOps)) return why_batch_norm_float(bn);
    return "";
  }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    auto* conv = m.find(kConvOps);
    auto a = read_conv(conv);
    if (auto* bn = m.find(kBatchNormOps)) {
      const auto folded = fold(a, bn);
      a.weight = folded.weight;
      a.bias = folded.bias;
    }
    const auto qweight = ctx.quantize_weight(m, a.weight);
    const auto packed = kernels::int8::prepack_conv(a.dims, qweight, a.bias.defined() ? c10::optional<at::Tensor>(a.bias)
                                                                                      : c10::nullopt,
                                                    a.stride, a.padding, a.dilation, a.groups);
    auto* x = ctx.quantized(conv->input(0));
    const auto qp = ctx.output_qparams(m);
    return int8g::conv(ctx.graph(), a.dims, x, ctx.packed_weight(packed), qp.scale, qp.zero_point,
                       m.find(kReluOps) != nullptr);
  }
  Value* reference(ConvertContext& ctx, const Match& m) const override {
    auto* conv = m.find(kConvOps);
    auto a = read_conv(conv);
    auto* bn = m.find(kBatchNormOps);
    if (bn) {
      const auto folded = fold(a, bn);
      a.weight = folded.weight;
      a.bias = folded.bias;
    }
    auto& g = ctx.graph();
    auto* w = dequantized_weight(g, ctx.quantize_weight(m, a.weight));
    auto* x = ctx.fake_quantized(conv->input(0));
    Value* y = g.insert(c10::Symbol::fromQualString(a.dims == 1 ? "aten::conv1d" : a.dims == 2 ? "aten::conv2d" : "aten::conv3d"),
                        {x, w, a.bias.defined() ? c10::IValue(a.bias) : c10::IValue(), a.stride, a.padding, a.dilation,
                         a.groups});
    if (m.find(kReluOps)) y = g.insert(c10::Symbol::fromQualString("aten::relu"), {y});
    return y;
  }

 private:
  static FoldedWeights fold(const ConvArgs& a, const Node* bn) {
    return fuse_conv_bn_weights(a.weight, a.bias, optional_tensor(bn->input(3)), optional_tensor(bn->input(4)),
                                constant_of(bn->input(7))->toDouble(), optional_tensor(bn->input(1)),
                                optional_tensor(bn->input(2)));
  }
  std::string name_;
  bool fold_early_;
};

std::string why_linear_float(const Node* lin) {
  for (size_t i = 1; i < lin->inputs().size(); ++i) {
    if (!is_constant(lin->input(i))) return "the weight or bias is not a constant";
  }
  const auto w = constant_of(lin->input(1));
  if (!w->isTensor() || w->toTensor().dim() != 2) return "the weight is not a 2-D tensor";
  return "";
}

class LinearHandler : public QuantizeHandler {
 public:
  std::string name() const override { return "Linear"; }
  std::string why_float(const Match& m) const override { return why_linear_float(m.find(kLinearOps)); }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    auto* lin = m.find(kLinearOps);
    const auto weight = constant_of(lin->input(1))->toTensor();
    const auto bias = optional_tensor(lin->input(2));
    const auto qweight = ctx.quantize_weight(m, weight);
    if (ctx.float_output(m)) {  // float32 out: tq's operator from the integer sums
      const auto w = kernels::int8::split_quantized_weight(qweight);
      TQ_CHECK(w.values.dim() == 2 && !w.zero_points.any().item<bool>(), "convert",
               "a Linear with float output takes symmetric 2-D weights (zero points 0): ", m.module_path);
      const auto in = ctx.static_input(lin->input(0));
      auto& g = ctx.graph();
      Value* y = int8g::linear_int8_float_output(
          g, in.value, in.qparams.scale, in.qparams.zero_point, in.quant_min, in.quant_max,
          g.insertConstant(w.values), g.insertConstant(w.scales.expand({w.values.size(0)}).contiguous()),
          g.insertConstant(bias.defined() ? c10::IValue(bias) : c10::IValue()),
          g.insertConstant(in.channel_factors.defined() ? c10::IValue(in.channel_factors) : c10::IValue()));
      return m.find(kReluOps) ? g.insert(c10::Symbol::fromQualString("aten::relu"), {y}) : y;
    }
    const auto packed =
        kernels::int8::prepack_linear(qweight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt);
    auto* x = ctx.quantized(lin->input(0));
    const auto qp = ctx.output_qparams(m);
    return int8g::linear(ctx.graph(), x, ctx.packed_weight(packed), qp.scale, qp.zero_point,
                         m.find(kReluOps) != nullptr);
  }
  Value* reference(ConvertContext& ctx, const Match& m) const override {
    auto* lin = m.find(kLinearOps);
    auto& g = ctx.graph();
    auto* w = dequantized_weight(g, ctx.quantize_weight(m, constant_of(lin->input(1))->toTensor()));
    return ctx.copy_float(m, [&](Value* v) -> Value* {
      if (v == lin->input(0)) return ctx.fake_quantized(v);
      if (v == lin->input(1)) return w;
      return nullptr;
    });
  }
};

// Dynamic Linear: int8 weights, the input quantized inside the op at run time (PyTorch's
// dynamic Linear passes reduce_range=True), with one scale for the tensor, or one per token under
// per_token_dynamic_qconfig (tq's operator; LibTorch has none). Under weight_only_qconfig (or its
// GPTQ form): float input, group-wise 4- or 8-bit weights (tq's operator).
class DynamicLinearHandler : public QuantizeHandler {
 public:
  std::string name() const override { return "DynamicLinear"; }
  OutputQParams output_qparams() const override { return OutputQParams::kFloat; }
  std::vector<Value*> quantized_inputs(const Match&) const override { return {}; }
  std::string why_float(const Match& m) const override { return why_linear_float(m.root); }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    auto* lin = m.root;
    const auto bias = optional_tensor(lin->input(2));
    auto& g = ctx.graph();
    const auto bias_value = [&] { return g.insertConstant(bias.defined() ? c10::IValue(bias) : c10::IValue()); };
    if (quant::is_weight_only(ctx.qconfig(m))) {
      const auto w = ctx.groupwise_weight(m, constant_of(lin->input(1))->toTensor());
      return int8g::linear_weight_only(g, ctx.float_value(lin->input(0)), g.insertConstant(w.packed),
                                       g.insertConstant(w.scales), g.insertConstant(w.zero_points), w.bits,
                                       w.group_size, bias_value());
    }
    const auto qweight = ctx.quantize_weight(m, constant_of(lin->input(1))->toTensor());
    if (quant::is_per_token_dynamic(ctx.qconfig(m))) {
      const auto w = kernels::int8::split_quantized_weight(qweight);
      TQ_CHECK(w.values.dim() == 2 && !w.zero_points.any().item<bool>(), "convert",
               "a per-token dynamic Linear takes symmetric 2-D weights (zero points 0): ", m.module_path);
      return int8g::linear_dynamic_per_token(
          g, ctx.float_value(lin->input(0)), g.insertConstant(w.values),
          g.insertConstant(w.scales.expand({w.values.size(0)}).contiguous()), bias_value());
    }
    const auto packed =
        kernels::int8::prepack_linear(qweight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt);
    return int8g::linear_dynamic(ctx.graph(), ctx.float_value(lin->input(0)), ctx.packed_weight(packed), true);
  }
  Value* reference(ConvertContext& ctx, const Match& m) const override {
    auto& g = ctx.graph();
    const auto weight = constant_of(m.root->input(1))->toTensor();
    Value* w = nullptr;
    if (quant::is_weight_only(ctx.qconfig(m))) {
      const auto q = ctx.groupwise_weight(m, weight);
      w = int8g::dequantize_groupwise(g, g.insertConstant(q.packed), g.insertConstant(q.scales),
                                      g.insertConstant(q.zero_points), q.bits, q.group_size);
    } else {
      w = dequantized_weight(g, ctx.quantize_weight(m, weight));
    }
    return ctx.copy_float(m, [&](Value* v) -> Value* { return v == m.root->input(1) ? w : nullptr; });
  }
};

// Weight-only Embedding: 8-bit rows with per-row float qparams.
class EmbeddingHandler : public QuantizeHandler {
 public:
  std::string name() const override { return "Embedding"; }
  OutputQParams output_qparams() const override { return OutputQParams::kFloat; }
  std::vector<Value*> quantized_inputs(const Match&) const override { return {}; }
  std::string why_float(const Match& m) const override {
    if (!is_constant(m.root->input(0))) return "the weight is not a constant";
    const auto w = constant_of(m.root->input(0));
    if (!w->isTensor() || w->toTensor().dim() != 2) return "the weight is not a 2-D tensor";
    return "";
  }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    const auto r = rows(ctx, m);
    TQ_CHECK(!r.four_bit, "convert", "graph mode quantizes embeddings to 8-bit rows, the qconfig gives 4-bit ones");
    return int8g::embedding(ctx.graph(), ctx.packed_weight(kernels::int8::prepack_embedding(r.weight, r.qparams, false)),
                            ctx.float_value(m.root->input(1)));
  }
  Value* reference(ConvertContext& ctx, const Match& m) const override {
    const auto r = rows(ctx, m);
    auto& g = ctx.graph();
    auto* w = dequantized_weight(g, kernels::int8::quantize_embedding_weight(r.weight, r.qparams, r.four_bit));
    return ctx.copy_float(m, [&](Value* v) -> Value* { return v == m.root->input(0) ? w : nullptr; });
  }

 private:
  struct Rows {
    at::Tensor weight;
    QParams qparams;
    bool four_bit = false;
  };
  // Per-row float qparams: the qconfig's weight observer when it gives them, otherwise
  // float_qparams_weight_only's (a per-tensor int8 weight observer does not fit embedding rows;
  // PyTorch's quantize_dynamic also gives embeddings float-qparams weights).
  static Rows rows(ConvertContext& ctx, const Match& m) {
    const auto& q = ctx.qconfig(m);
    auto obs = q.weight ? q.weight() : nullptr;
    if (!obs || nn::quantizer_qscheme(*obs) != QScheme::PerChannelAffineFloatQParams) {
      obs = quant::float_qparams_weight_only_qconfig().weight();
    }
    const auto w = constant_of(m.root->input(0))->toTensor();
    nn::run_quantizer(*obs, w);
    return {w, nn::quantizer_qparams(*obs), nn::quantizer_dtype(*obs) == QDType::QUInt4x2};
  }
};

// Tensor + tensor / tensor * tensor (+ relu). A scalar operand stays float: the seed judges Add by
// its output and emits quantized::add(q, 1.5), which fails at run time.
class BinaryHandler : public QuantizeHandler {
 public:
  BinaryHandler(std::string name, std::string op, bool is_add) : name_(std::move(name)), op_(std::move(op)), add_(is_add) {}
  std::string name() const override { return name_; }
  std::string why_float(const Match& m) const override {
    auto* n = m.find({op_});
    if (n->inputs().size() < 2 || !is_tensor(n->input(0)) || !is_tensor(n->input(1))) return "scalar operand";
    if (n->inputs().size() == 3) {
      const auto alpha = constant_of(n->input(2));
      if (!alpha || !alpha->isScalar() || alpha->toScalar().toDouble() != 1.0) return "alpha is not 1";
    }
    return "";
  }
  std::vector<Value*> quantized_inputs(const Match& m) const override {
    auto* n = m.find({op_});
    return {n->input(0), n->input(1)};
  }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    auto* n = m.find({op_});
    auto* a = ctx.quantized(n->input(0));
    auto* b = ctx.quantized(n->input(1));
    const auto qp = ctx.output_qparams(m);
    const bool relu = m.find(kReluOps) != nullptr;
    return add_ ? int8g::add(ctx.graph(), a, b, qp.scale, qp.zero_point, relu)
                : int8g::mul(ctx.graph(), a, b, qp.scale, qp.zero_point, relu);
  }

 private:
  std::string name_, op_;
  bool add_;
};

const std::vector<std::string> kMatmulOps = {"aten::matmul", "aten::bmm"};
const std::vector<std::string> kScalingOps = {"aten::mul", "aten::div"};

// The number a scaling node (mul / div by a constant number) multiplies by; nullopt otherwise.
c10::optional<double> scaling_factor(const Node* n) {
  if (n->inputs().size() != 2) return c10::nullopt;
  const auto c = constant_of(n->input(1));
  if (!c || !(c->isDouble() || c->isInt())) return c10::nullopt;
  const double v = c->isDouble() ? c->toDouble() : static_cast<double>(c->toInt());
  if (n->kind().toQualString() == std::string("aten::div")) {
    if (v == 0) return c10::nullopt;
    return 1.0 / v;
  }
  return v;
}

// matmul / bmm of two activations (+ a constant scaling): one int8 batched matmul, the scaling
// folded into its requantization.
class MatmulHandler : public QuantizeHandler {
 public:
  std::string name() const override { return "MatMul"; }
  std::string why_float(const Match& m) const override {
    auto* mm = m.find(kMatmulOps);
    if (!is_tensor(mm->input(0)) || !is_tensor(mm->input(1))) return "an operand is not a tensor";
    if (is_constant(mm->input(0)) || is_constant(mm->input(1))) {
      return "a constant operand (a weight: torch.nn.Linear is its int8 form)";
    }
    if (auto* scaling = m.find(kScalingOps); scaling && !scaling_factor(scaling)) {
      return "its scaling is not a constant number";
    }
    return "";
  }
  std::vector<Value*> quantized_inputs(const Match& m) const override {
    auto* mm = m.find(kMatmulOps);
    return {mm->input(0), mm->input(1)};
  }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    auto* mm = m.find(kMatmulOps);
    auto* a = ctx.quantized(mm->input(0));
    auto* b = ctx.quantized(mm->input(1));
    const auto* scaling = m.find(kScalingOps);
    const double alpha = scaling ? *scaling_factor(scaling) : 1.0;
    const auto qp = ctx.output_qparams(m);
    return int8g::matmul(ctx.graph(), a, b, alpha, qp.scale, qp.zero_point);
  }
};

class CatHandler : public QuantizeHandler {
 public:
  std::string name() const override { return "Cat"; }
  OutputQParams output_qparams() const override { return OutputQParams::kSharedWithAllInputs; }
  std::string why_float(const Match& m) const override {
    auto* list = m.root->input(0)->node();
    if (list->kind() != c10::prim::ListConstruct) return "the tensor list is not built in the graph";
    if (list->owningBlock() != m.root->owningBlock()) return "the tensor list is built in another block";
    if (!is_constant(m.root->input(1))) return "the dimension is not a constant";
    return "";
  }
  std::vector<Value*> quantized_inputs(const Match& m) const override {
    auto ins = m.root->input(0)->node()->inputs();
    return {ins.begin(), ins.end()};
  }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    std::vector<Value*> xs;
    for (auto* v : m.root->input(0)->node()->inputs()) xs.push_back(ctx.quantized(v));
    const auto qp = ctx.output_qparams(m);
    return int8g::cat(ctx.graph(), xs, ctx.float_value(m.root->input(1)), qp.scale, qp.zero_point);
  }
};

// Runs the original operator on the int8 input: relu, pooling, shape ops keep the input's qparams
// (the seed's CopyNode); sigmoid, tanh and hardsigmoid fix their own.
class CopyHandler : public QuantizeHandler {
 public:
  CopyHandler(std::string name, OutputQParams kind) : name_(std::move(name)), kind_(kind) {}
  std::string name() const override { return name_; }
  OutputQParams output_qparams() const override { return kind_; }
  std::string why_float(const Match& m) const override {
    const bool tensors = is_tensor(m.root->output()) || is_tensor_list(m.root->output());
    if (m.root->outputs().size() != 1 || !tensors) return "its output is not a tensor or a list of tensors";
    if (!is_tensor(m.root->input(0))) return "its first input is not a tensor";
    return "";
  }
  std::vector<Value*> quantized_inputs(const Match& m) const override { return {m.root->input(0)}; }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    auto& g = ctx.graph();
    auto* x = ctx.quantized(m.root->input(0));
    auto* clone = g.createClone(m.root, [&](Value* v) { return v == m.root->input(0) ? x : ctx.float_value(v); });
    g.insertNode(clone);
    if (is_tensor(clone->output())) clone->output()->setType(c10::TensorType::get());
    return clone->output();
  }

 private:
  std::string name_;
  OutputQParams kind_;
};

// An op whose int8 form is one quantized:: operator on the int8 input and some of the original
// arguments, with the output qparams (observed, or fixed as FX fixes softmax's).
class RequantizingHandler : public QuantizeHandler {
 public:
  using Emit = std::function<Value*(ConvertContext&, const Match&, Value* x_q, TensorQParams)>;
  RequantizingHandler(std::string name, Emit emit, std::function<std::string(const Match&)> why = nullptr,
                      OutputQParams kind = OutputQParams::kObserved)
      : name_(std::move(name)), emit_(std::move(emit)), why_(std::move(why)), kind_(kind) {}
  std::string name() const override { return name_; }
  OutputQParams output_qparams() const override { return kind_; }
  std::string why_float(const Match& m) const override {
    if (!is_tensor(m.root->input(0))) return "its first input is not a tensor";
    return why_ ? why_(m) : "";
  }
  std::vector<Value*> quantized_inputs(const Match& m) const override { return {m.root->input(0)}; }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    if (kind_ == OutputQParams::kObserved) return emit_(ctx, m, ctx.quantized(m.root->input(0)), ctx.output_qparams(m));
    const auto fixed = int8g::fixed_output_qparams(m.root->kind().toQualString());
    return emit_(ctx, m, ctx.quantized(m.root->input(0)), TensorQParams{fixed.scale, fixed.zero_point});
  }

 private:
  std::string name_;
  Emit emit_;
  std::function<std::string(const Match&)> why_;
  OutputQParams kind_;
};

std::string constant_args(const Match& m, std::vector<size_t> indices) {
  for (auto i : indices) {
    if (i >= m.root->inputs().size() || !is_constant(m.root->input(i))) {
      return "argument " + std::to_string(i) + " is not a constant";
    }
  }
  return "";
}

void register_requantizing_ops(PatternRegistry& r) {
  auto arg = [](ConvertContext& ctx, const Match& m, size_t i) { return ctx.float_value(m.root->input(i)); };
  r.register_pattern(Pattern({"aten::elu"}),
                     std::make_shared<RequantizingHandler>(
                         "ELU",
                         [=](ConvertContext& ctx, const Match& m, Value* x, TensorQParams qp) {
                           return int8g::elu(ctx.graph(), x, arg(ctx, m, 1), arg(ctx, m, 2), arg(ctx, m, 3), qp.scale,
                                             qp.zero_point);
                         },
                         [](const Match& m) { return constant_args(m, {1, 2, 3}); }));
  r.register_pattern(Pattern({"aten::leaky_relu"}),
                     std::make_shared<RequantizingHandler>(
                         "LeakyReLU",
                         [=](ConvertContext& ctx, const Match& m, Value* x, TensorQParams qp) {
                           return int8g::leaky_relu(ctx.graph(), x, arg(ctx, m, 1), qp.scale, qp.zero_point);
                         },
                         [](const Match& m) { return constant_args(m, {1}); }));
  r.register_pattern(Pattern({"aten::group_norm"}),
                     std::make_shared<RequantizingHandler>(
                         "GroupNorm",
                         [=](ConvertContext& ctx, const Match& m, Value* x, TensorQParams qp) {
                           return int8g::group_norm(ctx.graph(), x, arg(ctx, m, 1), arg(ctx, m, 2), arg(ctx, m, 3),
                                                    arg(ctx, m, 4), qp.scale, qp.zero_point);
                         },
                         [](const Match& m) { return constant_args(m, {1, 2, 3, 4}); }));
  r.register_pattern(Pattern({"aten::instance_norm"}),
                     std::make_shared<RequantizingHandler>(
                         "InstanceNorm",
                         [=](ConvertContext& ctx, const Match& m, Value* x, TensorQParams qp) {
                           return int8g::instance_norm(ctx.graph(), x, arg(ctx, m, 1), arg(ctx, m, 2), arg(ctx, m, 7),
                                                       qp.scale, qp.zero_point);
                         },
                         [](const Match& m) {
                           auto why = constant_args(m, {1, 2, 5, 7});
                           if (why.empty() && !constant_of(m.root->input(5))->toBool()) {
                             why = "instance norm with running statistics";
                           }
                           return why;
                         }));
  // FX gives softmax fixed qparams (int8_graph.h): its output lies in [0, 1].
  r.register_pattern(Pattern({"aten::softmax"}),
                     std::make_shared<RequantizingHandler>(
                         "Softmax",
                         [=](ConvertContext& ctx, const Match& m, Value* x, TensorQParams qp) {
                           return int8g::softmax(ctx.graph(), x, arg(ctx, m, 1), qp.scale, qp.zero_point);
                         },
                         [](const Match& m) {
                           auto why = constant_args(m, {1, 2});
                           if (why.empty() && !constant_of(m.root->input(2))->isNone()) why = "softmax with a dtype";
                           return why;
                         },
                         OutputQParams::kFromKernel));
}

class HardswishHandler : public QuantizeHandler {
 public:
  std::string name() const override { return "Hardswish"; }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    const auto qp = ctx.output_qparams(m);
    return int8g::hardswish(ctx.graph(), ctx.quantized(m.root->input(0)), qp.scale, qp.zero_point);
  }
};

// A batch norm that follows no convolution.
class BatchNormHandler : public QuantizeHandler {
 public:
  std::string name() const override { return "BatchNorm"; }
  std::string why_float(const Match& m) const override { return why_batch_norm_float(m.find(kBatchNormOps)); }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    auto* n = m.find(kBatchNormOps);
    auto* x = ctx.quantized(n->input(0));
    const auto qp = ctx.output_qparams(m);
    return int8g::batch_norm(ctx.graph(), x, ctx.float_value(n->input(1)), ctx.float_value(n->input(2)),
                             ctx.float_value(n->input(3)), ctx.float_value(n->input(4)), ctx.float_value(n->input(7)),
                             qp.scale, qp.zero_point, m.find(kReluOps) != nullptr);
  }
};

class LayerNormHandler : public QuantizeHandler {
 public:
  std::string name() const override { return "LayerNorm"; }
  std::string why_float(const Match& m) const override {
    for (size_t i = 1; i < 5; ++i) {
      if (!is_constant(m.root->input(i))) return "layer norm argument " + std::to_string(i) + " is not a constant";
    }
    return "";
  }
  Value* quantize(ConvertContext& ctx, const Match& m) const override {
    auto* n = m.root;
    auto* x = ctx.quantized(n->input(0));
    const auto qp = ctx.output_qparams(m);
    return int8g::layer_norm(ctx.graph(), x, ctx.float_value(n->input(1)), ctx.float_value(n->input(2)),
                             ctx.float_value(n->input(3)), ctx.float_value(n->input(4)), qp.scale, qp.zero_point);
  }
};

Pattern conv() { return Pattern(kConvOps); }
Pattern relu_of(Pattern p) { return Pattern(kReluOps, {std::move(p)}); }
Pattern bn_of(Pattern p) { return Pattern(kBatchNormOps, {std::move(p)}); }

}  // namespace

PatternRegistry default_patterns() {
  PatternRegistry r;
  // Registered first, so fused patterns below win where both match (see PatternRegistry).
  for (const auto& op : int8g::ops_keeping_input_qparams()) {
    r.register_pattern(Pattern({op}), std::make_shared<CopyHandler>("SharedQParams", OutputQParams::kSharedWithInput));
  }
  for (const auto& op : int8g::ops_with_fixed_qparams()) {
    r.register_pattern(Pattern({op}), std::make_shared<CopyHandler>("FixedQParams", OutputQParams::kFromKernel));
  }
  r.register_pattern(Pattern({"aten::hardswish"}), std::make_shared<HardswishHandler>());
  register_requantizing_ops(r);
  auto bn = std::make_shared<BatchNormHandler>();
  r.register_pattern(Pattern(kBatchNormOps), bn);
  r.register_pattern(relu_of(Pattern(kBatchNormOps)), bn);
  r.register_pattern(Pattern({"aten::layer_norm"}), std::make_shared<LayerNormHandler>());
  r.register_pattern(Pattern({"aten::cat"}), std::make_shared<CatHandler>());
  auto add = std::make_shared<BinaryHandler>("Add", "aten::add", true);
  auto mul = std::make_shared<BinaryHandler>("Mul", "aten::mul", false);
  r.register_pattern(Pattern({"aten::add"}), add);
  r.register_pattern(relu_of(Pattern({"aten::add"})), add);
  r.register_pattern(Pattern({"aten::mul"}), mul);
  r.register_pattern(relu_of(Pattern({"aten::mul"})), mul);
  auto linear = std::make_shared<LinearHandler>();
  r.register_pattern(Pattern(kLinearOps), linear);
  r.register_pattern(relu_of(Pattern(kLinearOps)), linear);
  auto convh = std::make_shared<ConvHandler>("ConvBnRelu", true);
  r.register_pattern(conv(), convh);
  r.register_pattern(bn_of(conv()), convh);
  r.register_pattern(relu_of(conv()), convh);
  r.register_pattern(relu_of(bn_of(conv())), convh);
  return r;
}

void register_int8_matmul_patterns(PatternRegistry& r) {
  auto matmul = std::make_shared<MatmulHandler>();
  r.register_pattern(Pattern(kMatmulOps), matmul);
  r.register_pattern(Pattern(kScalingOps, {Pattern(kMatmulOps)})
                         .where([](const Node& n) { return scaling_factor(&n).has_value(); }, "by a constant number"),
                     matmul);
}

PatternRegistry dynamic_patterns() {
  PatternRegistry r;
  r.register_pattern(Pattern(kLinearOps), std::make_shared<DynamicLinearHandler>());
  r.register_pattern(Pattern({"aten::embedding"}), std::make_shared<EmbeddingHandler>());
  return r;
}

PatternRegistry seed_patterns() {
  // The seed registers torch.nn module types; in TorchScript their forward is an aten op inside
  // a module of that type. Order as the seed's decorators insert them (bottom-up per class).
  auto in = [](std::vector<std::string> ops, const char* module, std::vector<Pattern> inputs = {}) {
    return Pattern(std::move(ops), std::move(inputs)).inside(module);
  };
  PatternRegistry r;
  r.register_pattern(Pattern({"aten::add"}), std::make_shared<BinaryHandler>("Add", "aten::add", true));
  auto copy = std::make_shared<CopyHandler>("CopyNode", OutputQParams::kSharedWithInput);
  r.register_pattern(in({"aten::adaptive_avg_pool2d"}, "AdaptiveAvgPool2d"), copy);
  r.register_pattern(in({"aten::max_pool2d"}, "MaxPool2d"), copy);
  r.register_pattern(in({"aten::avg_pool2d"}, "AvgPool2d"), copy);
  r.register_pattern(in(kReluOps, "ReLU"), copy);
  auto convh = std::make_shared<ConvHandler>("ConvNormRelu", false);
  auto conv2d = [&] { return in({"aten::conv2d", "aten::_convolution"}, "Conv2d"); };
  r.register_pattern(in(kReluOps, "ReLU", {in(kBatchNormOps, "BatchNorm2d", {conv2d()})}), convh);
  r.register_pattern(in(kBatchNormOps, "BatchNorm2d", {conv2d()}), convh);
  r.register_pattern(in(kReluOps, "ReLU", {conv2d()}), convh);
  r.register_pattern(conv2d(), convh);
  return r;
}

}  // namespace tq::graph
