// The "onednn" form of an int8 graph: the graph convert wrote with LibTorch's quantized:: operators
// on quint8 tensors, lowered to plain uint8 tensors and the oneDNN operators PyTorch 2.x lowers its
// own int8 models to (onednn::qconv_pointwise, onednn::qlinear_pointwise). No quantized dtype is
// made when the lowered model is loaded or run, so LibTorch 2.13 prints no deprecation warning
// (issue #184982), and plain LibTorch or Python's torch.jit.load runs it without tq's library.
//
// - Quantize and dequantize are PyTorch 2.x's decomposed forms in ATen float32 arithmetic (the
//   onednn backend's formulas: the same numbers as quantize_per_tensor).
// - add(conv(x), y) (+ relu) is one oneDNN convolution with a sum post op where shapes allow,
//   hardswish(conv(x)) one with a hardswish post op.
// - A weighted layer's int8 weights, scales and bias live in a small submodule whose
//   __getstate__ / __setstate__ keep the plain tensors in the file and pack them for oneDNN when
//   the file is loaded: oneDNN's packed layout exists in memory only, and serves every input shape.
// - Ops that keep their input's qparams run on the uint8 codes as they are (shape ops, nearest
//   upsampling) or on the codes in float32 (pooling, mean); relu and clamps become clamps of
//   the codes. Every other int8 op (add, mul, cat, norms, softmax, ...) is
//   dequantize -> its float op -> quantize.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_graph.h"

namespace tq::kernels::int8::graph {
namespace {

using torch::jit::Block;
using torch::jit::NamedValue;
using torch::jit::Node;

constexpr const char* kOp = "lower_to_onednn";

struct QP {
  double scale = 1.0;
  int64_t zero_point = 0;
};

std::string kind_of(const Node* n) { return n->kind().toQualString(); }

c10::IValue constant_of(Value* v) {
  auto iv = torch::jit::toIValue(v);
  TQ_CHECK(iv.has_value(), kOp, "%", v->debugName(), " (an argument of ", kind_of(v->node()), ") is not a constant");
  return *iv;
}

// A prepacked weight of LibTorch's, read through its own TorchScript operators.
c10::IValue call_op(const std::string& name, const c10::IValue& packed) {
  auto op = c10::Dispatcher::singleton().findSchema({name, ""});
  TQ_CHECK(op.has_value(), kOp, "this LibTorch lacks ", name);
  torch::jit::Stack stack{packed};
  op->callBoxed(&stack);
  TQ_CHECK(!stack.empty(), kOp, name, " returned nothing");
  return stack.size() == 1 ? stack[0] : c10::IValue(c10::ivalue::Tuple::create(stack));
}

// The plain parts of a quantized:: weighted op's packed weights.
struct PlainWeight {
  at::Tensor values;  // int8
  at::Tensor scales;  // float32 [out]
  at::Tensor zero_points;  // int64 [out], zeros
  c10::IValue bias;        // float32 tensor or None
  bool conv = false;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
};

PlainWeight plain_weight(const c10::IValue& packed, const std::string& unpack_op, const std::string& layer) {
  PlainWeight w;
  const auto unpacked = call_op(unpack_op, packed);
  const auto& elements = unpacked.toTupleRef().elements();
  TQ_CHECK(!elements.empty() && elements[0].isTensor(), kOp, unpack_op, " returned no weight");
  const auto parts = split_quantized_weight(elements[0].toTensor());
  TQ_CHECK(!parts.zero_points.defined() || parts.zero_points.eq(0).all().item<bool>(), kOp, "'", layer,
           "': oneDNN takes symmetric int8 weights (zero point 0); this one has zero points ",
           parts.zero_points.reshape({-1}).slice(0, 0, 4), " (a per-tensor affine weight qconfig)");
  const int64_t out = parts.values.size(0);
  auto s = parts.scales.to(at::kFloat).reshape({-1});
  w.values = parts.values.contiguous();
  w.scales = (s.numel() == 1 ? s.expand({out}) : s).contiguous();
  w.zero_points = at::zeros({out}, at::kLong);
  w.bias = elements.size() > 1 && elements[1].isTensor() ? c10::IValue(elements[1].toTensor().to(at::kFloat).contiguous())
                                                          : c10::IValue();
  return w;
}

class Lowering {
 public:
  Lowering(torch::jit::Module& model, std::shared_ptr<Graph> graph) : model_(model), g_(std::move(graph)) {}

  void run() {
    self_ = g_->inputs().at(0);
    drop_repack_guards();
    lower(g_->block());
    torch::jit::EliminateDeadCode(g_);
  }

  // LibTorch 1.13's onednn engine made convert guard each convolution with a repack when its
  // input shape changes (int8_graph.h: repack_conv_on_shape_change). oneDNN's own operators
  // serve every shape: the guards and the shapes they remember go.
  void drop_repack_guards() {
    for (auto it = g_->nodes().begin(); it != g_->nodes().end();) {
      Node* n = *it;
      ++it;
      if (n->kind() != c10::prim::If || !n->outputs().empty()) continue;
      bool guard = false;
      std::set<std::string> written;
      for (auto* inner : n->blocks()[0]->nodes()) {
        const auto k = kind_of(inner);
        if (k.rfind("quantized::conv", 0) == 0 && k.size() > 7 && k.compare(k.size() - 7, 7, "_unpack") == 0) {
          guard = true;
        }
        if (inner->kind() == c10::prim::SetAttr) written.insert(inner->s(c10::attr::name));
      }
      if (guard) {
        shapes_.insert(written.begin(), written.end());
        n->destroy();
      }
    }
    torch::jit::EliminateDeadCode(g_);
  }

  // Commits: the weight submodules in, the quantized packed weights out, the new forward in.
  void commit() {
    for (const auto& name : shapes_) {
      if (submodules_.count(name) || !model_._ivalue()->type()->hasAttribute(name)) continue;
      model_._ivalue()->unsafeRemoveAttr(name);  // the object's slot first: it is found through the type
      model_._ivalue()->type()->unsafeRemoveAttribute(name);
    }
    for (auto& [packed_name, sub] : submodules_) {
      model_._ivalue()->unsafeRemoveAttr(packed_name);
      model_._ivalue()->type()->unsafeRemoveAttribute(packed_name);
      model_.register_module(module_name(packed_name), sub);
    }
    replace_forward(model_, g_);
  }

 private:
  Value* insert(const char* op, std::vector<NamedValue> args) {
    return g_->insert(c10::Symbol::fromQualString(op), args);
  }

  bool is_int8(Value* v) const { return qp_.count(v) > 0; }
  QP qp(Value* v) const {
    auto it = qp_.find(v);
    TQ_CHECK(it != qp_.end(), kOp, "internal: %", v->debugName(), " is not an int8 value");
    return it->second;
  }

  // clamp(round(x * (1 / scale)) + zero_point) as uint8: the float32 multiplier as the onednn
  // backend computes it, so the graph gives its numbers.
  Value* quantize(Value* x, QP q) {
    // In place after the first op: fewer large allocations (the onednn backend's sequence).
    const double inv = static_cast<double>(1.0f / static_cast<float>(q.scale));
    auto* y = insert("aten::round_", {insert("aten::mul", {x, inv})});
    y = insert("aten::add_", {y, q.zero_point, int64_t{1}});
    y = insert("aten::clamp_", {y, int64_t{0}, int64_t{255}});
    y = insert("aten::to", {y, static_cast<int64_t>(at::kByte), false, false});
    qp_[y] = q;
    owning_.insert(y);
    return y;
  }
  Value* dequantize(Value* x_q) {
    const auto q = qp(x_q);
    auto* y = insert("aten::to", {x_q, static_cast<int64_t>(at::kFloat), false, false});
    y = insert("aten::sub_", {y, q.zero_point, int64_t{1}});
    return insert("aten::mul_", {y, static_cast<double>(static_cast<float>(q.scale))});
  }

  // The codes of a value on [0, 255] for a real bound (relu6's 6, hardtanh's limits).
  int64_t code_of(double real, QP q) const {
    const double c = std::nearbyint(real / q.scale) + static_cast<double>(q.zero_point);
    return static_cast<int64_t>(std::min(255.0, std::max(0.0, c)));
  }

  Value* empty_scalars(bool one_none) {
    std::vector<Value*> items;
    if (one_none) items.push_back(g_->insertConstant(c10::IValue()));
    return g_->insertNode(g_->createList(c10::OptionalType::create(c10::NumberType::get()), items))->output();
  }

  // _tq_packed_weight_3 -> _tq_onednn_weight_3
  static std::string module_name(const std::string& packed_name) {
    const std::string from = "_tq_packed_weight_";
    return packed_name.rfind(from, 0) == 0 ? "_tq_onednn_weight_" + packed_name.substr(from.size())
                                            : packed_name + "_onednn";
  }

  // self.<module>: the weight submodule made from the packed weights in attribute `name` (typed
  // here: the model gets the submodule when the lowering commits).
  Value* weight_module(Value* packed_value, const std::string& kind, bool conv, int dims) {
    auto* get = packed_value->node();
    TQ_CHECK(get->kind() == c10::prim::GetAttr && get->input(0) == self_, kOp, kind,
             " takes packed weights that are not an attribute of the model");
    const std::string name = get->s(c10::attr::name);
    if (!submodules_.count(name)) {
      const auto packed = model_.attr(name);
      const std::string prefix = conv ? "quantized::conv" + std::to_string(dims) + "d_" : "quantized::linear_";
      auto w = plain_weight(packed, prefix + "unpack", name);
      if (conv) {
        w.conv = true;
        w.stride = call_op(prefix + "stride", packed).toIntVector();
        w.padding = call_op(prefix + "padding", packed).toIntVector();
        w.dilation = call_op(prefix + "dilation", packed).toIntVector();
        w.groups = call_op(prefix + "groups", packed).toInt();
      }
      submodules_.emplace(name, make_weight_module(w));
      weights_.emplace(name, std::move(w));
    }
    auto* sub = g_->insertNode(g_->create(c10::prim::GetAttr, {self_}, 1));
    sub->s_(c10::attr::name, module_name(name));
    sub->output()->setType(submodules_.at(name).type());
    packed_names_[sub->output()] = name;
    return sub->output();
  }

  // A module holding one layer's plain int8 weights; __setstate__ packs them for oneDNN.
  torch::jit::Module make_weight_module(const PlainWeight& w) {
    auto cu = model_._ivalue()->compilation_unit();
    torch::jit::Module sub(c10::QualifiedName(w.conv ? "__torch__.tq.OnednnConvWeight" : "__torch__.tq.OnednnLinearWeight"),
                           cu, /*shouldMangle=*/true);
    sub.register_attribute("training", c10::BoolType::get(), false);
    sub.register_attribute("weight", c10::TensorType::get(), w.values);
    sub.register_attribute("scales", c10::TensorType::get(), w.scales);
    sub.register_attribute("zero_points", c10::TensorType::get(), w.zero_points);
    sub.register_attribute("bias", c10::OptionalType::ofTensor(), w.bias);
    sub.register_attribute("packed", c10::TensorType::get(), at::Tensor());
    auto type = sub.type();
    const auto state_type = c10::TupleType::create(
        {c10::TensorType::get(), c10::TensorType::get(), c10::TensorType::get(), c10::OptionalType::ofTensor(),
         c10::BoolType::get()});
    const std::vector<std::string> fields = {"weight", "scales", "zero_points", "bias", "training"};
    {
      auto g = std::make_shared<Graph>();
      auto* self = g->addInput("self");
      self->setType(type);
      std::vector<Value*> items;
      for (const auto& f : fields) items.push_back(g->insertGetAttr(self, f));
      g->registerOutput(g->insertNode(g->createTuple(items))->output());
      type->addMethod(cu->create_function(c10::QualifiedName(*type->name(), "__getstate__"), g));
    }
    {
      auto g = std::make_shared<Graph>();
      auto* self = g->addInput("self");
      self->setType(type);
      auto* state = g->addInput("state");
      state->setType(state_type);
      auto* parts = g->insertNode(g->createTupleUnpack(state));
      for (size_t i = 0; i < fields.size(); ++i) {
        g->insertNode(g->create(c10::prim::SetAttr, {self, parts->output(i)}, 0))->s_(c10::attr::name, fields[i]);
      }
      Value* packed = nullptr;
      if (w.conv) {
        packed = g->insert(c10::Symbol::fromQualString("onednn::qconv_prepack"),
                           {parts->output(0), parts->output(1), 1.0, int64_t{0}, w.stride, w.padding, w.dilation,
                            w.groups, c10::IValue()});
      } else {
        packed = g->insert(c10::Symbol::fromQualString("onednn::qlinear_prepack"), {parts->output(0), c10::IValue()});
      }
      g->insertNode(g->create(c10::prim::SetAttr, {self, packed}, 0))->s_(c10::attr::name, "packed");
      g->registerOutput(g->insertConstant(c10::IValue()));
      type->addMethod(cu->create_function(c10::QualifiedName(*type->name(), "__setstate__"), g));
    }
    sub.run_method("__setstate__", c10::ivalue::Tuple::create({w.values, w.scales, w.zero_points, w.bias, false}));
    return sub;
  }

  Value* weighted(Node* n, bool conv, int dims, bool relu) {
    auto* x = n->input(0);
    const auto in = qp(x);
    auto* sub = weight_module(n->input(1), kind_of(n), conv, dims);
    const QP out{constant_of(n->input(2)).toDouble(), constant_of(n->input(3)).toInt()};
    auto field = [&](const char* f) { return g_->insertGetAttr(sub, f); };
    Value* y = nullptr;
    if (conv) {
      const auto& w = weights_.at(packed_names_.at(sub));
      const bool fuse = relu && dims < 3;  // oneDNN's 3-d convolution has no relu post op
      y = insert("onednn::qconv_pointwise",
                 {x, in.scale, in.zero_point, field("packed"), field("scales"), field("zero_points"), field("bias"),
                  w.stride, w.padding, w.dilation, w.groups, out.scale, out.zero_point, c10::IValue(),
                  std::string(fuse ? "relu" : "none"), empty_scalars(fuse), c10::IValue()});
      if (relu && !fuse) y = insert("aten::clamp_min", {y, out.zero_point});
    } else {
      y = insert("onednn::qlinear_pointwise",
                 {insert("aten::contiguous", {x}), in.scale, in.zero_point, field("packed"), field("scales"), field("zero_points"), field("bias"),
                  out.scale, out.zero_point, c10::IValue(), std::string(relu ? "relu" : "none"), empty_scalars(relu),
                  std::string("")});
    }
    qp_[y] = out;
    owning_.insert(y);
    return y;
  }

  // add(conv(x), accum) (+ relu) as one oneDNN convolution with a sum post op, as PyTorch 2.x's
  // x86 lowering fuses it (the convolution's output is then not rounded to its own qparams
  // before the sum). oneDNN writes the sum into accum, so accum is copied first unless this add
  // is its last reader and it is no view of another value. An add that broadcasts accum takes
  // the unfused path: the graph compares accum's shape with the convolution's output shape.
  Value* fused_conv_add(Node* n, bool relu) {
    for (size_t i = 0; i < 2; ++i) {
      Value* c = n->input(i);
      Value* accum = n->input(1 - i);
      Node* conv = c->node();
      if (kind_of(conv) != "onednn::qconv_pointwise" || c->uses().size() != 1 || !is_int8(accum)) continue;
      if (conv->owningBlock() != n->owningBlock() || accum == c) continue;
      if (constant_of(conv->input(14)).toStringRef() != "none") continue;
      const auto stride = constant_of(conv->input(7)).toIntVector();
      if (stride.size() != 2) continue;
      const auto padding = constant_of(conv->input(8)).toIntVector();
      const auto dilation = constant_of(conv->input(9)).toIntVector();
      const auto& w = weights_.at(packed_names_.at(conv->input(3)->node()->input(0)));
      const auto acc = qp(accum);
      const QP out = out_qparams(n, 2);
      // accum.size() == [N, C_out, H_out, W_out] of the convolution.
      Value* x = conv->input(0);
      std::vector<Value*> dims = {insert("aten::size", {x, int64_t{0}}), g_->insertConstant(w.values.size(0))};
      for (size_t d = 0; d < 2; ++d) {
        const int64_t c0 = 2 * padding[d] - dilation[d] * (w.values.size(2 + static_cast<int64_t>(d)) - 1) - 1;
        auto* h = insert("aten::add", {insert("aten::size", {x, static_cast<int64_t>(2 + d)}), c0});
        dims.push_back(insert("aten::add", {insert("aten::floordiv", {h, stride[d]}), int64_t{1}}));
      }
      auto* expected = g_->insertNode(g_->createList(c10::IntType::get(), dims))->output();
      auto* same = insert("aten::eq", {insert("aten::size", {accum}), expected});
      auto* branch = g_->insertNode(g_->create(c10::prim::If, {same}, 1));
      branch->output()->setType(c10::TensorType::get());
      auto* fused_block = branch->addBlock();
      auto* plain_block = branch->addBlock();
      {
        torch::jit::WithInsertPoint guard(fused_block);
        Value* sum_into = accum;
        if (!last_reader_of(n, accum)) sum_into = insert("aten::clone", {accum});
        std::vector<NamedValue> args;
        for (size_t a = 0; a < 6; ++a) args.emplace_back(conv->input(a));
        args.emplace_back(sum_into);
        for (size_t a = 6; a < 11; ++a) args.emplace_back(conv->input(a));
        args.emplace_back(out.scale);
        args.emplace_back(out.zero_point);
        args.emplace_back(c10::IValue());
        args.emplace_back(acc.scale);
        args.emplace_back(acc.zero_point);
        args.emplace_back(std::string("sum"));
        args.emplace_back(1.0);
        args.emplace_back(relu ? c10::IValue(std::string("relu")) : c10::IValue());
        args.emplace_back(empty_scalars(false));
        args.emplace_back(c10::IValue());
        fused_block->registerOutput(insert("onednn::qconv2d_pointwise", args));
      }
      {
        torch::jit::WithInsertPoint guard(plain_block);
        conv->moveBefore(plain_block->return_node());
        auto* y = insert("aten::add", {dequantize(c), dequantize(accum)});
        if (relu) y = insert("aten::relu", {y});
        plain_block->registerOutput(quantize(y, out));
      }
      qp_[branch->output()] = out;
      owning_.insert(branch->output());
      return branch->output();
    }
    return nullptr;
  }

  // unary(conv(x)) as one oneDNN convolution with that post op (hardswish: MobileNetV3), as
  // PyTorch 2.x's x86 lowering fuses it: the convolution's output is not rounded first.
  Value* fused_conv_unary(Node* n, const char* attr) {
    Node* conv = n->input(0)->node();
    if (kind_of(conv) != "onednn::qconv_pointwise" || n->input(0)->uses().size() != 1) return nullptr;
    if (conv->owningBlock() != n->owningBlock() || constant_of(conv->input(14)).toStringRef() != "none") return nullptr;
    const QP out = out_qparams(n, 1);
    std::vector<NamedValue> args;
    for (size_t a = 0; a < 11; ++a) args.emplace_back(conv->input(a));
    args.emplace_back(out.scale);
    args.emplace_back(out.zero_point);
    args.emplace_back(c10::IValue());
    args.emplace_back(std::string(attr));
    args.emplace_back(empty_scalars(false));
    args.emplace_back(c10::IValue());
    return keep(insert("onednn::qconv_pointwise", args), out);
  }

  // Whether `reader` is the last op to read v, and v owns its memory (made here by a quantize, a
  // oneDNN op or a clamp, not a view of another value).
  bool last_reader_of(Node* reader, Value* v) const {
    if (!owning_.count(v)) return false;
    for (const auto& use : v->uses()) {
      if (use.user == reader) continue;
      if (use.user->owningBlock() != reader->owningBlock() || !use.user->isBefore(reader)) return false;
    }
    return true;
  }

  // dequantize -> the float op -> quantize with qparams `out`.
  Value* through_float(const char* op, std::vector<NamedValue> args, QP out) {
    return quantize(insert(op, std::move(args)), out);
  }

  QP out_qparams(Node* n, size_t scale_at) {
    return {constant_of(n->input(scale_at)).toDouble(), constant_of(n->input(scale_at + 1)).toInt()};
  }

  // The lowered value of node n (which reads or writes int8 values); nullptr: n stays as it is.
  Value* lower_node(Node* n) {
    const auto k = kind_of(n);
    if (k == "aten::quantize_per_tensor") {
      const auto dtype = constant_of(n->input(3)).toInt();
      TQ_CHECK(dtype == static_cast<int64_t>(at::kQUInt8), kOp, "only quint8 activations lower to the onednn form, got ",
               c10::toString(static_cast<at::ScalarType>(dtype)));
      return quantize(n->input(0), out_qparams(n, 1));
    }
    if (k == "aten::dequantize") return dequantize(n->input(0));
    for (int dims = 1; dims <= 3; ++dims) {
      const std::string conv = "quantized::conv" + std::to_string(dims) + "d";
      if (k == conv || k == conv + "_relu") {
        TQ_CHECK(dims > 1, kOp, k, " has no onednn form yet (its packed weights are a 2-d convolution's)");
        return weighted(n, true, dims, k != conv);
      }
    }
    if (k == "quantized::linear" || k == "quantized::linear_relu") return weighted(n, false, 0, k != "quantized::linear");
    if (k == "quantized::add" || k == "quantized::add_relu") {
      if (auto* fused = fused_conv_add(n, k == "quantized::add_relu")) return fused;
    }
    if (k == "quantized::add" || k == "quantized::add_relu" || k == "quantized::mul" || k == "quantized::mul_relu") {
      const bool add = k.rfind("quantized::add", 0) == 0;
      auto* y = add ? insert("aten::add", {dequantize(n->input(0)), dequantize(n->input(1))})
                    : insert("aten::mul", {dequantize(n->input(0)), dequantize(n->input(1))});
      if (k.size() > 5 && k.compare(k.size() - 5, 5, "_relu") == 0) y = insert("aten::relu", {y});
      return quantize(y, out_qparams(n, 2));
    }
    if (k == "quantized::cat") {
      auto* list = n->input(0)->node();
      TQ_CHECK(list->kind() == c10::prim::ListConstruct, kOp, "quantized::cat's list is not built in the graph");
      std::vector<Value*> xs;
      for (auto* v : list->inputs()) xs.push_back(dequantize(v));
      auto* floats = g_->insertNode(g_->createList(c10::TensorType::get(), xs))->output();
      return through_float("aten::cat", {floats, n->input(1)}, out_qparams(n, 2));
    }
    if (k == "tq::matmul_int8") {
      auto* y = insert("aten::matmul", {dequantize(n->input(0)), dequantize(n->input(1))});
      y = insert("aten::mul", {y, constant_of(n->input(2)).toDouble()});
      return quantize(y, out_qparams(n, 3));
    }
    if (k == "quantized::hardswish") {
      if (auto* fused = fused_conv_unary(n, "hardswish")) return fused;
      return through_float("aten::hardswish", {dequantize(n->input(0))}, out_qparams(n, 1));
    }
    if (k == "quantized::elu") {
      return through_float("aten::elu", {dequantize(n->input(0)), n->input(3), n->input(4), n->input(5)},
                           out_qparams(n, 1));
    }
    if (k == "quantized::leaky_relu") {
      return through_float("aten::leaky_relu", {dequantize(n->input(0)), n->input(1)}, out_qparams(n, 3));
    }
    if (k == "quantized::softmax") {
      return through_float("aten::softmax", {dequantize(n->input(0)), n->input(1), c10::IValue()}, out_qparams(n, 2));
    }
    if (k == "quantized::layer_norm") {
      return through_float("aten::layer_norm",
                           {dequantize(n->input(0)), n->input(1), n->input(2), n->input(3), n->input(4), true},
                           out_qparams(n, 5));
    }
    if (k == "quantized::group_norm") {
      return through_float("aten::group_norm",
                           {dequantize(n->input(0)), n->input(1), n->input(2), n->input(3), n->input(4), true},
                           out_qparams(n, 5));
    }
    if (k == "quantized::instance_norm") {
      return through_float("aten::instance_norm",
                           {dequantize(n->input(0)), n->input(1), n->input(2), c10::IValue(), c10::IValue(), true, 0.1,
                            n->input(3), true},
                           out_qparams(n, 4));
    }
    if (k == "quantized::batch_norm" || k == "quantized::batch_norm_relu") {
      auto* y = insert("aten::batch_norm", {dequantize(n->input(0)), n->input(1), n->input(2), n->input(3),
                                            n->input(4), false, 0.1, n->input(5), true});
      if (k == "quantized::batch_norm_relu") y = insert("aten::relu", {y});
      return quantize(y, out_qparams(n, 6));
    }
    TQ_CHECK(k.rfind("quantized::", 0) != 0, kOp, k,
             " has no onednn form (the onednn form covers static int8; dynamic and weight-only layers keep "
             "LibTorch's quantized form)");
    // quantized::cat reads its list's elements itself.
    if (k == "prim::ListConstruct") return nullptr;
    // An op of the original model reading an int8 value.
    Value* x = nullptr;
    for (auto* v : n->inputs()) {
      if (is_int8(v)) {
        TQ_CHECK(x == nullptr || v == x, kOp, k, " reads two int8 values");
        x = v;
      }
    }
    if (x == nullptr) return nullptr;
    const auto q = qp(x);
    if (k == "aten::size" || k == "aten::dim" || k == "aten::len") return nullptr;  // shape queries
    // The ops that keep their input's qparams (ops_keeping_input_qparams) whose codes need more
    // than the op itself: clamps, max pooling, averaging.
    if (k == "aten::relu") return keep(insert("aten::clamp_min", {x, q.zero_point}), q);
    if (k == "aten::relu6") return keep(insert("aten::clamp", {x, q.zero_point, code_of(6.0, q)}), q);
    if (k == "aten::hardtanh" || k == "aten::clamp") {
      auto bound = [&](size_t i, int64_t none) -> c10::IValue {
        const auto c = constant_of(n->input(i));
        return c.isNone() ? c10::IValue(none) : c10::IValue(code_of(c.toScalar().toDouble(), q));
      };
      return keep(insert("aten::clamp", {x, bound(1, 0), bound(2, 255)}), q);
    }
    // LibTorch's channels-last uint8 max pooling refuses planes over 255 elements, and its
    // contiguous one is slow: the codes are pooled in bfloat16, which holds 0..255 exactly
    // (resnet18's max pool at batch 16: 7 ms, against 55 ms in uint8 and 10 to 25 in float32).
    if (k == "aten::max_pool1d" || k == "aten::max_pool2d" || k == "aten::max_pool3d") {
      auto* clone = g_->insertNode(g_->createClone(n, [&](Value* v) {
        return v == x ? insert("aten::to", {x, static_cast<int64_t>(at::kBFloat16), false, false}) : v;
      }));
      return keep(insert("aten::to", {clone->output(), static_cast<int64_t>(at::kByte), false, false}), q);
    }
    static const std::set<std::string> averaging = {
        "aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d", "aten::adaptive_avg_pool1d",
        "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d", "aten::mean", "aten::upsample_bilinear2d"};
    if (averaging.count(k)) {
      // Affine codes average as the values do: the op on the codes in float32, rounded back.
      auto* clone = g_->insertNode(g_->createClone(n, [&](Value* v) {
        return v == x ? insert("aten::to", {x, static_cast<int64_t>(at::kFloat), false, false}) : v;
      }));
      auto* y = insert("aten::round_", {clone->output()});
      y = insert("aten::clamp_", {y, int64_t{0}, int64_t{255}});
      return keep(insert("aten::to", {y, static_cast<int64_t>(at::kByte), false, false}), q);
    }
    // The others move or select codes as they are (shape ops, nearest upsampling): the same op,
    // its outputs int8 with the input's qparams.
    const auto& keeping = ops_keeping_input_qparams();
    if (k == "prim::ListUnpack" || std::find(keeping.begin(), keeping.end(), k) != keeping.end()) {
      for (auto* o : n->outputs()) qp_[o] = q;
      return nullptr;
    }
    const auto& fixed_ops = ops_with_fixed_qparams();
    if (std::find(fixed_ops.begin(), fixed_ops.end(), k) != fixed_ops.end()) {
      const auto fixed = fixed_output_qparams(k);
      return through_float(k.c_str(), {dequantize(x)}, QP{fixed.scale, fixed.zero_point});
    }
    TQ_FAIL(kOp, k, " reads an int8 value and has no onednn form");
  }

  Value* keep(Value* y, QP q) {
    qp_[y] = q;
    owning_.insert(y);
    return y;
  }

  void lower(Block* b) {
    for (auto it = b->nodes().begin(); it != b->nodes().end();) {
      Node* n = *it;
      ++it;
      if (n->kind() == c10::prim::If || n->kind() == c10::prim::Loop) {
        for (auto* inner : n->blocks()) lower(inner);
        // An If whose branches all return the same int8 value's codes (cat's layout guard).
        for (size_t i = 0; i < n->outputs().size(); ++i) {
          bool all = !n->blocks().empty();
          for (auto* inner : n->blocks()) all = all && is_int8(inner->outputs()[i]);
          if (all) qp_[n->outputs()[i]] = qp(n->blocks()[0]->outputs()[i]);
        }
        continue;
      }
      Value* y = nullptr;
      {
        torch::jit::WithInsertPoint guard(n);
        y = lower_node(n);
      }
      if (y == nullptr) continue;
      TQ_CHECK(n->outputs().size() == 1, kOp, "internal: ", kind_of(n), " has ", n->outputs().size(), " outputs");
      y->setType(c10::TensorType::get());
      if (n->output()->hasDebugName()) y->setDebugName(n->output()->debugName());
      n->output()->replaceAllUsesWith(y);
      n->destroy();
    }
  }

  torch::jit::Module& model_;
  std::shared_ptr<Graph> g_;
  Value* self_ = nullptr;
  std::unordered_map<const Value*, QP> qp_;
  std::map<std::string, torch::jit::Module> submodules_;
  std::map<std::string, PlainWeight> weights_;
  std::unordered_set<const Value*> owning_;  // int8 values in memory of their own (no views)
  std::set<std::string> shapes_;  // attributes the dropped repack guards wrote
  std::unordered_map<const Value*, std::string> packed_names_;  // weight module value -> packed attribute
};

}  // namespace

std::string onednn_form_unavailable_reason() {
  std::string missing;
  for (const char* op : {"onednn::qconv_prepack", "onednn::qconv_pointwise", "onednn::qlinear_prepack",
                         "onednn::qlinear_pointwise"}) {
    if (!c10::Dispatcher::singleton().findSchema({op, ""}).has_value()) missing += (missing.empty() ? "" : ", ") + std::string(op);
  }
  return missing.empty() ? "" : "the onednn int8 form needs LibTorch 2.x: this LibTorch lacks " + missing;
}

void lower_to_onednn(torch::jit::Module& int8_model) {
  const auto unavailable = onednn_form_unavailable_reason();
  TQ_CHECK(unavailable.empty(), kOp, unavailable);
  auto graph = int8_model.get_method("forward").graph()->copy();
  Lowering lowering(int8_model, graph);
  lowering.run();  // on a copy: a failure leaves the model as it was
  lowering.commit();
}

}  // namespace tq::kernels::int8::graph
