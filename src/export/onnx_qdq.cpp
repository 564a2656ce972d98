// ONNX QDQ export: tq's reference form (float ops between quantize / dequantize pairs, int8
// weights dequantized in the graph) translated node by node into ONNX, laid out as ONNX Runtime's
// quantizer lays out its own QDQ models.
#include "tq/export/onnx_qdq.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/lower_tuples.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "eager_reference.h"
#include "onnx_model.h"
#include "tq/core/atomic_file.h"
#include "tq/core/check.h"
#include "tq/core/error_message.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/numerics/groupwise_weight.h"

namespace tq::onnx {
namespace {

using torch::jit::Node;
using torch::jit::Value;

constexpr const char* kOp = "onnx export";
using detail::Attribute;
using detail::ElemType;
using detail::ModelDef;
using detail::NodeDef;
using detail::TensorDef;
using detail::ValueDef;

std::string kind_of(const Node* n) { return n->kind().toQualString(); }

// How a TorchScript value of the reference graph is read in ONNX.
struct Info {
  enum class Kind {
    kTensor,        // an ONNX tensor named `name`
    kConstant,      // a TorchScript constant (tensors become initializers where read)
    kList,          // prim::ListConstruct
    kQuantized,     // QuantizeLinear output `name` with `scale`, `zero_point`
    kActivationDq,  // dequantize of the QuantizeLinear output `name`: one DequantizeLinear per reader
    kWeightDq,      // dequantize of an int8 weight constant
    kInts,          // an integer or integer list computed from shapes: `ints`, `batch` marks those
                    // that follow the batch size (the others are the same at any batch)
    kTensorList,    // a list of ONNX tensors `names` (aten::chunk's result)
    kGroupwiseDq,   // tq::dequantize_groupwise of constants: a weight-only Linear's `groupwise` weight
  };
  Kind kind = Kind::kTensor;
  std::string name;
  int64_t rank = -1;
  c10::IValue constant;
  std::vector<const Value*> list;
  double scale = 1;
  int64_t zero_point = 0;
  bool signed_int8 = false;
  at::Tensor qweight;
  std::vector<int64_t> ints;
  std::vector<bool> batch;
  bool scalar = false;
  std::vector<std::string> names;
  GroupwiseWeight groupwise;
};

class Translator {
 public:
  Translator(const ExportOptions& options, ExportReport& report) : options_(options), report_(report) {
    model_.producer_version = "0.1.0";
    model_.opset = options.opset();
    model_.ir_version = options.opset() >= 21 ? 10 : 8;  // IR 10 came with opset 21 and its 4-bit types
    model_.graph_name = "tq_int8";
  }

  // The declared input shapes fit the graph.
  void check_input_shapes(const torch::jit::Graph& g) const {
    const size_t n_inputs = g.inputs().size() - 1;
    TQ_CHECK(options_.input_shapes().size() == n_inputs, kOp, "the model takes ", n_inputs,
             " input(s); ExportOptions::input_shapes gives ", options_.input_shapes().size());
    for (size_t i = 0; i < n_inputs; ++i) {
      const auto& shape = options_.input_shapes()[i];
      const std::string name = n_inputs == 1 ? "input" : "input_" + std::to_string(i);
      TQ_CHECK(!shape.empty(), kOp, "ExportOptions::input_shapes: input ", name, " has no dimensions");
      for (size_t d = 0; d < shape.size(); ++d) {
        TQ_CHECK(shape[d] > 0, kOp, "ExportOptions::input_shapes: dimension ", d, " of ", name, " is ", shape[d]);
      }
    }
  }

  // Each tensor's sizes and each integer's value in the reference graph, from runs on example
  // inputs of the declared shapes (what torch.onnx.export learns by tracing): at the declared
  // batch, and at one more, so that integers that follow the batch size are known as such.
  void record_values(const torch::jit::Module& m, torch::jit::Graph& g) {
    const auto runs = run_on_examples(m, g, [](const Value* v) {
      const auto& type = v->type();
      return type->isSubtypeOf(*c10::TensorType::get()) || type->isSubtypeOf(*c10::IntType::get()) ||
             type->isSubtypeOf(*c10::ListType::ofInts());
    });
    for (size_t extra = 0; extra < runs.size(); ++extra) {
      for (const auto& [original, v] : runs[extra]) {
        std::vector<int64_t> recorded;
        if (v.isTensor() && v.toTensor().dim() == 0 && !v.toTensor().is_floating_point() &&
            !v.toTensor().is_quantized()) {
          (extra == 0 ? ints_ : ints2_)[original] = {v.toTensor().item<int64_t>()};
        }
        if (v.isTensor()) {
          recorded = v.toTensor().sizes().vec();
        } else if (v.isInt()) {
          recorded = {v.toInt()};
        } else if (v.isIntList()) {
          recorded = v.toIntVector();
        } else {
          continue;
        }
        if (v.isTensor()) {
          if (extra == 0) shapes_[original] = recorded;
        } else {
          (extra == 0 ? ints_ : ints2_)[original] = recorded;
        }
      }
    }
  }

  // The branches a model takes on its input's rank or sizes (scripted InstanceNorm's
  // `input.dim() == 3`) taken once and for all, as torch.onnx.export's tracing takes them: each
  // prim::If whose condition is the same at both example batches is replaced by the block it
  // runs. A condition that follows the batch stays, and is named as unexportable if it is read.
  void take_fixed_branches(const torch::jit::Module& m, torch::jit::Graph& g) {
    for (;;) {
      const auto nodes = g.nodes();
      if (std::none_of(nodes.begin(), nodes.end(), [](const Node* n) { return n->kind() == c10::prim::If; })) return;
      const auto runs = run_on_examples(m, g, [](const Value* v) {
        for (const auto& use : v->uses()) {
          if (use.user->kind() == c10::prim::If && use.offset == 0) return !reads_tensor_values(v);
        }
        return false;
      });
      std::vector<std::pair<Node*, bool>> fixed;
      for (const auto& [cond, first] : runs[0]) {
        const auto second = runs[1].at(cond);
        if (!first.isBool() || !second.isBool() || first.toBool() != second.toBool()) continue;
        for (const auto& use : cond->uses()) {
          if (use.user->kind() == c10::prim::If && use.offset == 0) fixed.emplace_back(use.user, first.toBool());
        }
      }
      if (fixed.empty()) return;
      for (auto& [node, taken] : fixed) {
        auto* body = node->blocks()[taken ? 0 : 1];
        for (auto it = body->nodes().begin(); it != body->nodes().end();) {
          auto* inner = *it;
          ++it;
          inner->moveBefore(node);
        }
        for (size_t i = 0; i < node->outputs().size(); ++i) node->outputs()[i]->replaceAllUsesWith(body->outputs()[i]);
        node->destroy();
      }
    }
  }

  void run(const torch::jit::Graph& g) {
    const auto inputs = g.inputs();
    const size_t n_inputs = inputs.size() - 1;
    for (size_t i = 0; i < n_inputs; ++i) {
      add_input(inputs[i + 1], options_.input_shapes()[i], n_inputs == 1 ? "input" : "input_" + std::to_string(i));
    }
    // Only what the outputs read: shape checks (scripted BatchNorm's input.dim() test, raising
    // otherwise) have no place in an ONNX graph, whose input shapes are declared.
    const auto live = live_nodes(g);
    for (auto* node : g.nodes()) {
      if (!live.count(node) || node->blocks().empty()) continue;
      TQ_FAIL(kOp, kind_of(node), " (%", node->outputs().empty() ? std::string("?") : node->output(0)->debugName(),
              "): control flow on tensor values has no ONNX form in tq's exporter (branches on ranks and sizes are taken "
              "once, as tracing takes them)");
    }
    for (auto* node : g.nodes()) {
      if (live.count(node)) translate(node);
    }
    std::vector<const Value*> outputs;
    for (auto* out : g.outputs()) {
      if (out->node()->kind() == c10::prim::TupleConstruct) {
        // None elements (GoogLeNet's auxiliary outputs in eval mode) are left out.
        for (auto* v : out->node()->inputs()) {
          if (!v->type()->isSubtypeOf(*c10::NoneType::get())) outputs.push_back(v);
        }
      } else {
        outputs.push_back(out);
      }
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      const std::string name = outputs.size() == 1 ? "output" : "output_" + std::to_string(i);
      TQ_CHECK(outputs[i]->type()->isSubtypeOf(*c10::TensorType::get()), kOp, "output ", i,
               " of the model is not a tensor (", outputs[i]->type()->str(), ")");
      add_node("Identity", {read(outputs[i])}, {name});
      add_value_info(model_.outputs, name, ElemType::kFloat, dims_of(outputs[i]), true);
    }
    // Float ops: those that read no int8 value, unless their output is quantized right away (a
    // ReLU between a convolution and its QuantizeLinear, which ORT folds into the int8 kernel).
    std::unordered_set<std::string> quantized_inputs;
    for (const auto& node : model_.nodes) {
      if (node.op_type == "QuantizeLinear") quantized_inputs.insert(node.inputs.at(0));
    }
    for (const auto& [op, out] : float_candidates_) {
      if (!quantized_inputs.count(out)) report_.float_ops.push_back(op + " (" + out + ")");
    }
  }

  const ModelDef& model() const { return model_; }

 private:
  // The values of g's top-level node outputs that `pick` selects, from runs on zero inputs of the
  // declared shapes at the declared batch and at one more.
  using Recorded = std::unordered_map<const Value*, c10::IValue>;
  std::array<Recorded, 2> run_on_examples(const torch::jit::Module& m, torch::jit::Graph& g,
                                          const std::function<bool(const Value*)>& pick) const {
    auto copy = g.copy();
    std::vector<const Value*> originals;
    std::vector<Value*> values;
    auto it = g.nodes().begin();
    for (auto* n : copy->nodes()) {
      const Node* original = *it;
      ++it;
      for (size_t i = 0; i < n->outputs().size(); ++i) {
        if (!pick(original->outputs()[i])) continue;
        originals.push_back(original->outputs()[i]);
        values.push_back(n->outputs()[i]);
      }
    }
    std::array<Recorded, 2> runs;
    if (values.empty()) return runs;
    while (!copy->outputs().empty()) copy->eraseOutput(0);
    copy->registerOutput(copy->insertNode(copy->createTuple(values))->output());
    torch::jit::GraphFunction fn("tq_onnx_shapes", copy, nullptr);
    for (int64_t extra : {0, 1}) {
      std::vector<c10::IValue> inputs = {m._ivalue()};
      for (auto shape : options_.input_shapes()) {
        shape[0] += extra;
        inputs.emplace_back(at::zeros(shape));
      }
      c10::IValue out;
      try {
        out = fn(inputs);
      } catch (const std::exception& e) {
        TQ_FAIL(kOp, "the model fails on inputs of the shapes ExportOptions::input_shapes gives: ", error_message(e));
      }
      const auto elements = out.toTupleRef().elements();
      for (size_t i = 0; i < originals.size(); ++i) runs[extra][originals[i]] = elements[i];
    }
    return runs;
  }

  // True when v is computed from the values in a tensor, not only from its rank and sizes: a branch
  // on it depends on the data and cannot be taken once for all inputs.
  static bool reads_tensor_values(const Value* v) {
    std::unordered_set<const Node*> seen;
    std::vector<const Node*> stack = {v->node()};
    while (!stack.empty()) {
      const Node* n = stack.back();
      stack.pop_back();
      if (n->kind() == c10::prim::Param || !seen.insert(n).second) continue;
      const std::string k = kind_of(n);
      // Metadata, not values: sizes, rank, nestedness, device, dtype, identity.
      if (k == "aten::size" || k == "aten::dim" || k == "prim::shape" || k == "aten::numel" || k == "prim::is_nested" ||
          k == "prim::requires_grad" || k == "prim::is_sparse" || k == "prim::is_quantized" || k == "prim::is_mkldnn" ||
          k == "prim::device" || k == "prim::dtype" || k == "prim::layout" || k == "prim::is_cuda" ||
          k == "aten::__is__" || k == "aten::__isnot__" || k == "aten::is_floating_point") {
        continue;
      }
      for (auto* in : n->inputs()) {
        if (in->type()->isSubtypeOf(*c10::TensorType::get()) && in->node()->kind() != c10::prim::Constant) return true;
        stack.push_back(in->node());
      }
      for (auto* b : n->blocks()) {
        for (auto* inner : b->nodes()) stack.push_back(inner);
        stack.push_back(b->return_node());
      }
    }
    return false;
  }

  static std::unordered_set<const Node*> live_nodes(const torch::jit::Graph& g) {
    std::unordered_set<const Node*> live;
    std::vector<const Node*> stack;
    for (auto* out : g.outputs()) stack.push_back(out->node());
    while (!stack.empty()) {
      const Node* n = stack.back();
      stack.pop_back();
      if (n->kind() == c10::prim::Param || !live.insert(n).second) continue;
      for (auto* v : n->inputs()) stack.push_back(v->node());
    }
    return live;
  }

  // ---- naming and writing ----
  std::string unique(const std::string& base) {
    std::string clean;
    for (char c : base) clean += std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ? c : '_';
    if (clean.empty()) clean = "v";
    std::string name = clean;
    for (int k = 1; !names_.insert(name).second; ++k) name = clean + "_" + std::to_string(k);
    return name;
  }

  // The node stays valid until the next add_node.
  NodeDef* add_node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs) {
    model_.nodes.emplace_back();
    auto* n = &model_.nodes.back();
    n->op_type = op;
    n->name = unique(op + "_" + (outputs.empty() ? std::string() : outputs[0]));
    n->inputs = inputs;
    n->outputs = outputs;
    if (op == "QuantizeLinear") ++report_.quantize_linear;
    if (op == "DequantizeLinear") {
      ++report_.dequantize_linear;
      dequantized_.insert(outputs.at(0));
    }
    return n;
  }

  static void attr(NodeDef* n, const std::string& name, const std::vector<int64_t>& v) {
    Attribute a;
    a.name = name;
    a.kind = Attribute::Kind::kInts;
    a.ints = v;
    n->attributes.push_back(a);
  }
  static void attr(NodeDef* n, const std::string& name, int64_t v) {
    Attribute a;
    a.name = name;
    a.i = v;
    n->attributes.push_back(a);
  }
  static void attr_f(NodeDef* n, const std::string& name, float v) {
    Attribute a;
    a.name = name;
    a.kind = Attribute::Kind::kFloat;
    a.f = v;
    n->attributes.push_back(a);
  }

  static void add_value_info(std::vector<ValueDef>& to, const std::string& name, ElemType elem,
                             const std::vector<std::string>& dims, bool has_shape) {
    ValueDef v;
    v.name = name;
    v.type = elem;
    v.dims = dims;
    v.has_shape = has_shape;
    to.push_back(v);
  }

  // An initializer from a CPU tensor of float, int8, uint8, int32 or int64.
  std::string initializer(const std::string& base, const at::Tensor& t) {
    const auto c = t.contiguous();
    TensorDef d;
    d.name = unique(base);
    d.dims = c.sizes().vec();
    switch (c.scalar_type()) {
      case at::kFloat: d.type = ElemType::kFloat; break;
      case at::kChar: d.type = ElemType::kInt8; break;
      case at::kByte: d.type = ElemType::kUint8; break;
      case at::kInt: d.type = ElemType::kInt32; break;
      case at::kLong: d.type = ElemType::kInt64; break;
      default: TQ_FAIL(kOp, "internal: no ONNX initializer for ", c.scalar_type());
    }
    d.raw.assign(static_cast<const char*>(c.data_ptr()), c.nbytes());
    model_.initializers.push_back(std::move(d));
    return model_.initializers.back().name;
  }
  std::string scalar_initializer(const std::string& base, double v) {
    return initializer(base, at::scalar_tensor(v, at::kFloat));
  }
  // The zero point of an activation in the profile's type.
  std::string activation_zero_point(const std::string& base, int64_t zp, bool signed_int8) {
    if (options_.profile() == QdqProfile::kTensorRT) {
      TQ_CHECK(zp == (signed_int8 ? 0 : 128), kOp, "%", base, ": zero point ", zp, " (", signed_int8 ? "int8" : "uint8",
               "): the tensorrt profile takes symmetric activations (zero point 128 in uint8, 0 in int8; "
               "QConfigSpec::symmetric_activations, tq quantize --onnx-profile tensorrt)");
      return initializer(base, at::scalar_tensor(0, at::kChar));
    }
    if (signed_int8) return initializer(base, at::scalar_tensor(zp, at::kChar));
    if (options_.profile() == QdqProfile::kS8S8) return initializer(base, at::scalar_tensor(zp - 128, at::kChar));
    return initializer(base, at::scalar_tensor(zp, at::kByte));
  }

  // ---- values ----
  void add_input(const Value* v, const std::vector<int64_t>& shape, const std::string& name) {
    TQ_CHECK(v->type()->isSubtypeOf(*c10::TensorType::get()), kOp, "input %", v->debugName(),
             " is not a tensor (", v->type()->str(), ")");
    names_.insert(name);
    const auto dims = dims_of(shape);
    add_value_info(model_.inputs, name, ElemType::kFloat, dims, true);
    Info info;
    info.name = name;
    info.rank = static_cast<int64_t>(shape.size());
    info_[v] = info;
  }

  // Dimension 0 is the dynamic batch axis.
  std::vector<std::string> dims_of(const std::vector<int64_t>& shape) const {
    std::vector<std::string> dims;
    for (size_t d = 0; d < shape.size(); ++d) {
      dims.push_back(d == 0 && options_.dynamic_batch() ? "batch" : std::to_string(shape[d]));
    }
    return dims;
  }
  std::vector<std::string> dims_of(const Value* v) const {
    const auto* s = shape(v);
    TQ_CHECK(s != nullptr, kOp, "internal: no shape recorded for %", v->debugName());
    return dims_of(*s);
  }

  const Info& info(const Value* v) const {
    auto it = info_.find(v);
    TQ_CHECK(it != info_.end(), kOp, "internal: %", v->debugName(), " read before it was written");
    return it->second;
  }
  int64_t rank(const Value* v) const {
    auto it = shapes_.find(v);
    return it != shapes_.end() ? static_cast<int64_t>(it->second.size()) : info(v).rank;
  }
  const std::vector<int64_t>* shape(const Value* v) const {
    auto it = shapes_.find(v);
    return it != shapes_.end() ? &it->second : nullptr;
  }
  c10::IValue constant(const Node* n, size_t i) const {
    const auto& in = info(n->input(i));
    TQ_CHECK(in.kind == Info::Kind::kConstant, kOp, kind_of(n), " (%", n->output(0)->debugName(), "): argument ", i,
             " is not a constant");
    return in.constant;
  }
  std::vector<int64_t> ints(const Node* n, size_t i) const {
    const auto c = constant(n, i);
    if (c.isInt()) return {c.toInt()};
    return c.toIntVector();
  }

  // The ONNX name to read `v` as a float tensor. A dequantized value gets a DequantizeLinear of
  // its own for each reader.
  // A DequantizeLinear of the int8 tensor `in.name` (one per reader, as ORT's quantizer writes).
  std::string dequantize_activation(const Info& in) {
    const std::string out = unique(in.name + "_dq");
    add_node("DequantizeLinear", {in.name, scalar_initializer(in.name + "_scale", in.scale),
                                  activation_zero_point(in.name + "_zero_point", in.zero_point, in.signed_int8)},
             {out});
    return out;
  }

  std::string read(const Value* v) {
    const auto& in = info(v);
    switch (in.kind) {
      case Info::Kind::kTensor:
        return in.name;
      case Info::Kind::kActivationDq:
        return dequantize_activation(in);
      case Info::Kind::kWeightDq:
        return dequantize_weight(in.qweight, v->debugName());
      case Info::Kind::kGroupwiseDq:
        return dequantize_groupwise_weight(in.groupwise, v->debugName(), /*transposed=*/false);
      case Info::Kind::kConstant:
        if (in.constant.isTensor()) {
          const auto t = in.constant.toTensor();
          TQ_CHECK(!t.is_quantized(), kOp, "internal: a quantized constant read without dequantize");
          return initializer(v->debugName(), t.to(at::kFloat));
        }
        if (in.constant.isDouble() || in.constant.isInt()) {
          return scalar_initializer(v->debugName(), in.constant.toScalar().toDouble());
        }
        TQ_FAIL(kOp, "%", v->debugName(), " (", in.constant.tagKind(), ") is read as a tensor");
      case Info::Kind::kQuantized:
        TQ_FAIL(kOp, "%", v->debugName(), " is an int8 value read by a float op without dequantize");
      case Info::Kind::kList:
      case Info::Kind::kTensorList:
        TQ_FAIL(kOp, "%", v->debugName(), " is a list read as a tensor");
      case Info::Kind::kInts:
        TQ_FAIL(kOp, "%", v->debugName(), " is a size computed from shapes, read as a tensor (not exported)");
    }
    return "";
  }

  std::string dequantize_weight(const at::Tensor& qw, const std::string& base) {
    const auto qscheme = qw.qscheme();
    TQ_CHECK(qw.scalar_type() == at::kQInt8, kOp, "weight %", base, " is ", qw.scalar_type(),
             ": ONNX DequantizeLinear here takes int8 weights");
    TQ_CHECK(options_.profile() != QdqProfile::kTensorRT ||
                 (qw.qscheme() == at::kPerTensorAffine || qw.qscheme() == at::kPerTensorSymmetric
                      ? qw.q_zero_point() == 0
                      : (qw.qscheme() == at::kPerChannelAffine || qw.qscheme() == at::kPerChannelSymmetric) &&
                            !qw.q_per_channel_zero_points().any().item<bool>()),
             kOp, "weight %", base, " has a nonzero zero point: the tensorrt profile takes symmetric weights");
    const auto w = initializer(base + "_int8", qw.int_repr());
    ++report_.int8_weights;
    std::string scale, zp;
    int64_t axis = -1;
    if (qscheme == at::kPerTensorAffine || qscheme == at::kPerTensorSymmetric) {
      scale = scalar_initializer(base + "_scale", qw.q_scale());
      zp = initializer(base + "_zero_point", at::scalar_tensor(qw.q_zero_point(), at::kChar));
    } else if (qscheme == at::kPerChannelAffine || qscheme == at::kPerChannelSymmetric) {
      TQ_CHECK(options_.opset() >= 13, kOp, "weight %", base, " is quantized per channel, which needs opset 13 or later; opset ",
               options_.opset(), " was asked for");
      scale = initializer(base + "_scale", qw.q_per_channel_scales().to(at::kFloat));
      zp = initializer(base + "_zero_point", qw.q_per_channel_zero_points().to(at::kChar));
      axis = qw.q_per_channel_axis();
    } else {
      TQ_FAIL(kOp, "weight %", base, " has per-channel float zero points (weight-only embedding rows), which ONNX "
                   "DequantizeLinear cannot express");
    }
    const std::string out = unique(base + "_dq");
    auto* n = add_node("DequantizeLinear", {w, scale, zp}, {out});
    if (axis >= 0) attr(n, "axis", axis);
    return out;
  }

  // A group-wise 4- or 8-bit weight as an opset-21 blocked DequantizeLinear with uint4 / uint8
  // integers, scales and zero points: [out, in] blocked along axis 1, or `transposed` to [in, out]
  // blocked along axis 0, the form ONNX Runtime fuses with the MatMul reading it into MatMulNBits.
  std::string dequantize_groupwise_weight(const GroupwiseWeight& w, const std::string& base, bool transposed) {
    TQ_CHECK(options_.opset() >= 21, kOp, "weight %", base, " is group-wise ", w.bits, "-bit (weight-only), which needs "
             "opset 21 (blocked DequantizeLinear); opset ", options_.opset(), " was asked for");
    auto q = unpack_groupwise(w.packed, w.bits, w.in_features);
    auto scales = w.scales;
    auto zero_points = w.zero_points.round().to(at::kByte);
    if (transposed) {
      q = q.t().contiguous();
      scales = scales.t().contiguous();
      zero_points = zero_points.t().contiguous();
    }
    const auto integers = groupwise_initializer(base + "_q", q, w.bits);
    const auto zp = groupwise_initializer(base + "_zero_point", zero_points, w.bits);
    const auto scale = initializer(base + "_scale", scales.to(at::kFloat));
    ++report_.groupwise_weights;
    const std::string out = unique(base + "_dq");
    auto* n = add_node("DequantizeLinear", {integers, scale, zp}, {out});
    attr(n, "axis", int64_t{transposed ? 0 : 1});
    attr(n, "block_size", w.group_size);
    return out;
  }
  // uint8 values < 2^bits as a uint8 initializer, or at 4 bits as uint4, two per byte.
  std::string groupwise_initializer(const std::string& base, const at::Tensor& values, int64_t bits) {
    if (bits == 8) return initializer(base, values);
    const auto flat = values.contiguous().view(-1);
    const auto* v = flat.data_ptr<uint8_t>();
    TensorDef d;
    d.name = unique(base);
    d.type = ElemType::kUint4;
    d.dims = values.sizes().vec();
    d.raw.assign((flat.numel() + 1) / 2, '\0');
    for (int64_t i = 0; i < flat.numel(); ++i) {
      d.raw[i / 2] = static_cast<char>(static_cast<uint8_t>(d.raw[i / 2]) | ((v[i] & 0xF) << (i % 2 ? 4 : 0)));
    }
    model_.initializers.push_back(std::move(d));
    return model_.initializers.back().name;
  }

  // The int32 bias of a quantized convolution / linear (what ORT's QLinearConv and QGemm add to
  // their accumulators): bias / (input scale x weight scale), rounded.
  std::string int32_bias(const at::Tensor& bias, const Info& x, const Info& w, const std::string& base) {
    const auto qw = w.qweight;
    at::Tensor wscale = qw.qscheme() == at::kPerTensorAffine || qw.qscheme() == at::kPerTensorSymmetric
                            ? at::full({bias.size(0)}, qw.q_scale(), at::kDouble)
                            : qw.q_per_channel_scales().to(at::kDouble);
    // Scales as float32, as ONNX holds them; the product as ORT's quantizer computes it.
    const auto scale = (wscale.to(at::kFloat) * static_cast<float>(x.scale)).to(at::kFloat);
    const auto q = (bias.to(at::kDouble) / scale.to(at::kDouble))
                       .round()
                       .clamp(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max())
                       .to(at::kInt);
    const auto qname = initializer(base + "_int32", q);
    const auto sname = initializer(base + "_scale", scale);
    const auto zname = initializer(base + "_zero_point", at::zeros({bias.size(0)}, at::kInt));
    const std::string out = unique(base + "_dq");
    auto* n = add_node("DequantizeLinear", {qname, sname, zname}, {out});
    attr(n, "axis", 0);
    return out;
  }

  // The bias input of a convolution / linear: int32 where input and weight are int8.
  std::string bias_input(const Node* n, size_t x_index, size_t w_index, size_t b_index) {
    const auto b = constant(n, b_index);
    TQ_CHECK(b.isTensor(), kOp, "internal: bias of ", kind_of(n), " is not a tensor");
    const auto& x = info(n->input(x_index));
    const auto& w = info(n->input(w_index));
    if (x.kind == Info::Kind::kActivationDq && w.kind == Info::Kind::kWeightDq) {
      return int32_bias(b.toTensor(), x, w, n->output(0)->debugName() + "_bias");
    }
    return initializer(n->output(0)->debugName() + "_bias", b.toTensor().to(at::kFloat));
  }

  void set_tensor(const Value* v, const std::string& name, int64_t rank) {
    Info i;
    i.name = name;
    i.rank = rank;
    info_[v] = i;
  }
  // One ONNX op of one output for node n; returns the node.
  NodeDef* emit(const Node* n, const std::string& op, const std::vector<std::string>& inputs, int64_t rank) {
    const std::string out = unique(n->output(0)->debugName());
    auto* p = add_node(op, inputs, {out});
    set_tensor(n->output(0), out, rank);
    bool reads_int8 = false;
    for (const auto& i : inputs) reads_int8 |= dequantized_.count(i) > 0;
    if (!reads_int8 && op != "QuantizeLinear" && op != "DequantizeLinear" && op != "Identity") {
      float_candidates_.emplace_back(op, out);
    }
    return p;
  }
  void alias(const Node* n, size_t input = 0) { info_[n->output(0)] = info(n->input(input)); }

  // ---- nodes ----
  void translate(const Node* n) {
    const std::string k = kind_of(n);
    if (n->kind() == c10::prim::Constant) {
      Info i;
      i.kind = Info::Kind::kConstant;
      i.constant = *torch::jit::toIValue(n->output());
      info_[n->output()] = i;
      return;
    }
    if (n->kind() == c10::prim::ListConstruct) {
      Info i;
      i.kind = Info::Kind::kList;
      bool all_constant = true, all_ints = !n->inputs().empty();
      for (auto* v : n->inputs()) {
        i.list.push_back(v);
        all_constant &= info(v).kind == Info::Kind::kConstant;
        const auto& in = info(v);
        all_ints &= (in.kind == Info::Kind::kInts && in.scalar) || (in.kind == Info::Kind::kConstant && in.constant.isInt());
      }
      if (all_ints && !all_constant) {
        i.kind = Info::Kind::kInts;
        for (auto* v : n->inputs()) {
          const auto& in = info(v);
          i.ints.push_back(in.kind == Info::Kind::kInts ? in.ints[0] : in.constant.toInt());
          i.batch.push_back(in.kind == Info::Kind::kInts && in.batch[0]);
        }
        info_[n->output()] = i;
        return;
      }
      if (all_constant) {
        if (auto iv = torch::jit::toIValue(n->output())) {
          i.kind = Info::Kind::kConstant;
          i.constant = *iv;
        }
      }
      info_[n->output()] = i;
      return;
    }
    if (n->kind() == c10::prim::TupleConstruct) return;  // read at the outputs
    // Arithmetic on sizes (traced ViT's n_h * n_w, on 0-dim tensors): an integer, not an ONNX op.
    if (from_sizes_only(n) && integers(n)) return;
    if (k == "aten::quantize_per_tensor") return quantize(n);
    if (k == "aten::dequantize") return dequantize(n);
    if (k == "tq::dequantize_groupwise") return dequantize_groupwise(n);
    if (k == "aten::conv1d" || k == "aten::conv2d" || k == "aten::conv3d" || k == "aten::_convolution") return conv(n);
    if (k == "aten::linear") return linear(n);
    if (k == "aten::contiguous" || k == "aten::detach" || k == "aten::clone" || k == "aten::dropout") return alias(n);
    if (k == "aten::relu") return relu(n);
    if (k == "aten::sigmoid") return (void)unary(n, "Sigmoid");
    if (k == "aten::tanh") return (void)unary(n, "Tanh");
    if (k == "aten::hardswish") {
      TQ_CHECK(options_.opset() >= 14, kOp, "aten::hardswish (%", n->output(0)->debugName(), ") needs opset 14 (HardSwish)");
      return (void)unary(n, "HardSwish");
    }
    if (k == "aten::hardsigmoid") {
      auto* p = unary(n, "HardSigmoid");
      attr_f(p, "alpha", 1.0f / 6.0f);
      attr_f(p, "beta", 0.5f);
      return;
    }
    if (k == "aten::relu6") return clip(n, 0, 6);
    if (k == "aten::silu") return silu(n);
    if (k == "aten::leaky_relu") {
      attr_f(unary(n, "LeakyRelu"), "alpha", static_cast<float>(constant(n, 1).toScalar().toDouble()));
      return;
    }
    if (k == "aten::elu") return elu(n);
    if (k == "aten::softmax") {
      attr(unary(n, "Softmax"), "axis", constant(n, 1).toInt());
      return;
    }
    if (k == "aten::layer_norm") return layer_norm(n);
    if (k == "aten::hardtanh") return clip(n, constant(n, 1).toScalar().toDouble(), constant(n, 2).toScalar().toDouble());
    if (k == "aten::add" || k == "aten::mul" || k == "aten::sub" || k == "aten::div") return binary(n);
    if (k == "aten::cat") return cat(n);
    if (k == "aten::max_pool1d" || k == "aten::max_pool2d" || k == "aten::max_pool3d") return max_pool(n);
    if (k == "aten::avg_pool1d" || k == "aten::avg_pool2d" || k == "aten::avg_pool3d") return avg_pool(n);
    if (k == "aten::adaptive_avg_pool1d" || k == "aten::adaptive_avg_pool2d" || k == "aten::adaptive_avg_pool3d") {
      return adaptive_avg_pool(n);
    }
    if (k == "aten::flatten") return flatten(n);
    if (k == "aten::mean") return mean(n);
    if (k == "aten::batch_norm") return batch_norm(n);
    if (k == "aten::group_norm") return group_norm(n);
    if (k == "aten::instance_norm") return instance_norm(n);
    if (k == "aten::view" || k == "aten::reshape") return reshape(n);
    if (k == "aten::transpose") return transpose(n);
    if (k == "aten::permute") return permute(n);
    if (k == "aten::chunk") return chunk(n);
    if (k == "aten::gelu") return gelu(n);
    if (k == "aten::expand") return expand_to(n);
    if (k == "aten::slice") return slice(n);
    if (k == "aten::select") return select(n);
    // Attention's float products (graph mode writes nn.MultiheadAttention's fused node out as them).
    if (k == "aten::matmul") return (void)emit(n, "MatMul", {read(n->input(0)), read(n->input(1))},
                                                 std::max(rank(n->input(0)), rank(n->input(1))));
    if (n->kind() == c10::prim::ListUnpack) return list_unpack(n);
    if (k == "prim::NumToTensor" || k == "aten::Int") return alias(n);
    if (integers(n)) return;
    TQ_FAIL(kOp, k, " (%", n->outputs().empty() ? std::string("?") : n->output(0)->debugName(),
            ") has no ONNX form in tq's exporter");
  }

  // A positive constant scaling of a matmul whose only reader is its QuantizeLinear (the
  // attention's q k^T * 1 / sqrt(d) with --int8-matmul): the factor f goes into that
  // QuantizeLinear's scale (Q(y f; s) = Q(y; s / f), the codes tq's operator computes with the
  // same multiplier), so ORT sees DequantizeLinear -> MatMul -> QuantizeLinear and runs
  // QLinearMatMul. nullopt where this does not apply.
  static c10::optional<double> folded_matmul_scaling(const Node* n) {
    const std::string k = kind_of(n);
    if ((k != "aten::mul" && k != "aten::div") || n->inputs().size() != 2) return c10::nullopt;
    if (kind_of(n->input(0)->node()) != "aten::matmul" || n->input(0)->uses().size() != 1) return c10::nullopt;
    const auto& uses = n->output(0)->uses();
    if (uses.size() != 1 || kind_of(uses[0].user) != "aten::quantize_per_tensor") return c10::nullopt;
    const auto c = torch::jit::toIValue(n->input(1));
    if (!c || !(c->isDouble() || c->isInt())) return c10::nullopt;
    const double v = c->isDouble() ? c->toDouble() : static_cast<double>(c->toInt());
    if (!(v > 0) || !std::isfinite(v)) return c10::nullopt;
    return k == "aten::div" ? 1.0 / v : v;
  }

  void quantize(const Node* n) {
    const double scale = constant(n, 1).toDouble();
    const auto folded = folded_matmul_scaling(n->input(0)->node());
    const int64_t zp = constant(n, 2).toInt();
    const bool signed_int8 = static_cast<at::ScalarType>(constant(n, 3).toInt()) == at::kQInt8;
    const std::string out = unique(n->output(0)->debugName());
    add_node("QuantizeLinear", {read(n->input(0)), scalar_initializer(out + "_scale", folded ? scale / *folded : scale),
                                activation_zero_point(out + "_zero_point", zp, signed_int8)},
             {out});
    Info i;
    i.kind = Info::Kind::kQuantized;
    i.name = out;
    i.rank = rank(n->input(0));
    i.scale = scale;
    i.zero_point = zp;
    i.signed_int8 = signed_int8;
    info_[n->output(0)] = i;
    report_.quantization_points.push_back(out);
    if (options_.quantization_points_as_outputs()) {
      const bool as_signed = signed_int8 || options_.profile() != QdqProfile::kU8S8;
      add_value_info(model_.outputs, out, as_signed ? ElemType::kInt8 : ElemType::kUint8, dims_of(n->output(0)), true);
    }
  }

  void dequantize(const Node* n) {
    const auto& q = info(n->input(0));
    Info i = q;
    if (q.kind == Info::Kind::kQuantized) {
      i.kind = Info::Kind::kActivationDq;
    } else if (q.kind == Info::Kind::kConstant && q.constant.isTensor() && q.constant.toTensor().is_quantized()) {
      i.kind = Info::Kind::kWeightDq;
      i.qweight = q.constant.toTensor();
      i.rank = i.qweight.dim();
    } else {
      TQ_FAIL(kOp, "aten::dequantize (%", n->output(0)->debugName(), ") reads a value that is not int8");
    }
    info_[n->output(0)] = i;
  }

  void dequantize_groupwise(const Node* n) {
    Info i;
    i.kind = Info::Kind::kGroupwiseDq;
    i.rank = 2;
    const auto packed = constant(n, 0).toTensor();
    const int64_t bits = constant(n, 3).toInt();
    i.groupwise = GroupwiseWeight{packed, constant(n, 1).toTensor(), constant(n, 2).toTensor(), bits,
                                  constant(n, 4).toInt(), packed.size(1) * 8 / bits};
    info_[n->output(0)] = i;
  }

  void conv(const Node* n) {
    const bool generic = kind_of(n) == "aten::_convolution";
    // conv{1,2,3}d(x, w, b, stride, padding, dilation, groups);
    // _convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups, ...)
    if (generic) {
      TQ_CHECK(!constant(n, 6).toBool(), kOp, "aten::_convolution (%", n->output(0)->debugName(),
               "): transposed convolutions are not exported");
    }
    const auto pad_arg = constant(n, 4);
    TQ_CHECK(!pad_arg.isString(), kOp, kind_of(n), " (%", n->output(0)->debugName(), "): padding='",
             pad_arg.toStringRef(), "' is not exported; give the padding as numbers");
    const auto& w = info(n->input(1));
    if (w.kind != Info::Kind::kWeightDq) {
      TQ_CHECK(w.kind == Info::Kind::kConstant, kOp, kind_of(n), " (%", n->output(0)->debugName(), "): the weight is not a constant");
    }
    std::vector<std::string> inputs = {read(n->input(0)), read(n->input(1))};
    if (info(n->input(2)).kind == Info::Kind::kConstant && !constant(n, 2).isNone()) inputs.push_back(bias_input(n, 0, 1, 2));
    auto* p = emit(n, "Conv", inputs, rank(n->input(0)));
    auto pads = ints(n, 4);
    const auto spatial = pads.size();
    pads.insert(pads.end(), pads.begin(), pads.end());
    attr(p, "pads", pads);
    attr(p, "strides", expand(ints(n, 3), spatial));
    attr(p, "dilations", expand(ints(n, 5), spatial));
    attr(p, "group", constant(n, generic ? 8 : 6).toInt());
  }
  static std::vector<int64_t> expand(std::vector<int64_t> v, size_t n) {
    if (v.size() == 1 && n > 1) v.assign(n, v[0]);
    return v;
  }

  void linear(const Node* n) {
    const auto& x = info(n->input(0));
    const auto& w = info(n->input(1));
    TQ_CHECK(w.kind == Info::Kind::kWeightDq || w.kind == Info::Kind::kConstant || w.kind == Info::Kind::kGroupwiseDq,
             kOp, "aten::linear (%", n->output(0)->debugName(), "): the weight is not a constant");
    TQ_CHECK(!(w.kind == Info::Kind::kWeightDq && x.kind != Info::Kind::kActivationDq), kOp, "aten::linear (%",
             n->output(0)->debugName(), "): int8 weights with a float input (dynamic or weight-only quantization) "
                                         "have no QDQ form here; export a static int8 model");
    const bool has_bias = !constant(n, 2).isNone();
    if (rank(n->input(0)) > 2 && x.kind == Info::Kind::kActivationDq && w.kind == Info::Kind::kWeightDq) {
      return linear_as_gemm(n, x, w, has_bias);
    }
    if (rank(n->input(0)) == 2 && w.kind != Info::Kind::kGroupwiseDq) {
      std::vector<std::string> inputs = {read(n->input(0)), read(n->input(1))};
      if (has_bias) inputs.push_back(bias_input(n, 0, 1, 2));
      auto* p = emit(n, "Gemm", inputs, 2);
      attr(p, "transB", 1);
      return;
    }
    // Any rank: MatMul with the weight transposed, then the bias.
    std::string wt;
    if (w.kind == Info::Kind::kWeightDq) {
      const auto q = w.qweight;
      at::Tensor t;
      if (q.qscheme() == at::kPerChannelAffine || q.qscheme() == at::kPerChannelSymmetric) {
        t = at::_make_per_channel_quantized_tensor(q.int_repr().t().contiguous(), q.q_per_channel_scales(),
                                                   q.q_per_channel_zero_points(), 1);
      } else {
        t = at::_make_per_tensor_quantized_tensor(q.int_repr().t().contiguous(), q.q_scale(), q.q_zero_point());
      }
      wt = dequantize_weight(t, n->input(1)->debugName() + "_t");
    } else if (w.kind == Info::Kind::kGroupwiseDq) {
      wt = dequantize_groupwise_weight(w.groupwise, n->input(1)->debugName() + "_t", /*transposed=*/true);
    } else {
      wt = initializer(n->input(1)->debugName() + "_t", w.constant.toTensor().t().contiguous().to(at::kFloat));
    }
    const std::string mm = unique(n->output(0)->debugName() + "_matmul");
    add_node("MatMul", {read(n->input(0)), wt}, {mm});
    if (!has_bias) {
      set_tensor(n->output(0), mm, x.rank);
      return;
    }
    const std::string out = unique(n->output(0)->debugName());
    add_node("Add", {mm, initializer(out + "_bias", constant(n, 2).toTensor().to(at::kFloat))}, {out});
    set_tensor(n->output(0), out, x.rank);
  }

  // An int8 linear on [N, ..., K]: the int8 input reshaped to [N * ..., K], a Gemm (which ORT runs
  // as QGemm, as it does not fuse a MatMul with per-channel weights), and the result reshaped back.
  void linear_as_gemm(const Node* n, const Info& x, const Info& w, bool has_bias) {
    const auto* in = shape(n->input(0));
    const auto* out = shape(n->output(0));
    TQ_CHECK(in && out, kOp, "aten::linear (%", n->output(0)->debugName(), "): sizes unknown");
    const std::string base = n->output(0)->debugName();
    Info flat = x;
    flat.name = unique(x.name + "_2d");
    flat.rank = 2;
    add_node("Reshape", {x.name, initializer("shape", at::tensor(std::vector<int64_t>{-1, in->back()}))}, {flat.name});
    std::vector<std::string> inputs = {dequantize_activation(flat), read(n->input(1))};
    if (has_bias) inputs.push_back(int32_bias(constant(n, 2).toTensor(), x, w, base + "_bias"));
    const std::string gemm = unique(base + "_gemm");
    attr(add_node("Gemm", inputs, {gemm}), "transB", int64_t{1});
    std::vector<int64_t> back = *out;
    back[0] = -1;  // the batch; the other dimensions are the model's
    const std::string y = unique(base);
    add_node("Reshape", {gemm, initializer("shape", at::tensor(back))}, {y});
    set_tensor(n->output(0), y, static_cast<int64_t>(back.size()));
  }

  NodeDef* unary(const Node* n, const std::string& op) {
    return emit(n, op, {read(n->input(0))}, rank(n->input(0)));
  }
  void clip(const Node* n, double lo, double hi) {
    emit(n, "Clip", {read(n->input(0)), scalar_initializer("clip_min", lo), scalar_initializer("clip_max", hi)},
         rank(n->input(0)));
  }

  // Every input is a constant or an integer computed from sizes, and at least one is the latter.
  bool from_sizes_only(const Node* n) const {
    bool any_size = false;
    for (auto* v : n->inputs()) {
      auto it = info_.find(v);
      if (it == info_.end()) return false;
      if (it->second.kind == Info::Kind::kInts) {
        any_size = true;
      } else if (it->second.kind != Info::Kind::kConstant) {
        return false;
      }
    }
    return any_size;
  }

  // A node that computes integers from shapes (aten::size, floordiv, ...): its recorded values,
  // each marked by whether it follows the batch size. False if it is no such node.
  bool integers(const Node* n) {
    for (auto* v : n->inputs()) {
      const auto kind = info(v).kind;
      if (kind != Info::Kind::kInts && kind != Info::Kind::kConstant && !v->type()->isSubtypeOf(*c10::TensorType::get())) {
        return false;
      }
    }
    for (auto* o : n->outputs()) {
      if (!ints_.count(o)) return false;
    }
    for (auto* o : n->outputs()) {
      Info i;
      i.kind = Info::Kind::kInts;
      i.ints = ints_.at(o);
      const auto& other = ints2_.count(o) ? ints2_.at(o) : i.ints;
      for (size_t k = 0; k < i.ints.size(); ++k) i.batch.push_back(k < other.size() && other[k] != i.ints[k]);
      i.scalar = !o->type()->isSubtypeOf(*c10::ListType::ofInts());
      info_[o] = i;
    }
    return true;
  }

  // A shape for Reshape: constants, with the one element that follows the batch size as 0 (copy
  // the input's dimension) in front or -1 elsewhere.
  std::vector<int64_t> reshape_target(const Node* n, const Value* shape_value) {
    const auto& s = info(shape_value);
    std::vector<int64_t> target;
    std::vector<bool> batch;
    if (s.kind == Info::Kind::kConstant) {
      target = s.constant.isInt() ? std::vector<int64_t>{s.constant.toInt()} : s.constant.toIntVector();
      batch.assign(target.size(), false);
    } else {
      TQ_CHECK(s.kind == Info::Kind::kInts, kOp, kind_of(n), " (%", n->output(0)->debugName(), "): the shape is not computed from sizes");
      target = s.ints;
      batch = s.batch;
    }
    const bool has_minus_one = std::count(target.begin(), target.end(), -1) > 0;
    const auto* in = shape(n->input(0));
    for (size_t d = 0; d < target.size(); ++d) {
      if (!batch[d]) continue;
      if (d == 0 && in && !in->empty() && (*in)[0] == target[0]) {
        target[d] = 0;
      } else {
        TQ_CHECK(!has_minus_one, kOp, kind_of(n), " (%", n->output(0)->debugName(), "): dimension ", d,
                 " follows the batch size and is not the input's first; not exported");
        target[d] = -1;
      }
    }
    return target;
  }

  void reshape(const Node* n) {
    const auto target = reshape_target(n, n->input(1));
    emit(n, "Reshape", {read(n->input(0)), initializer("shape", at::tensor(target, at::kLong))},
         static_cast<int64_t>(target.size()));
  }

  void transpose(const Node* n) {
    const int64_t r = rank(n->input(0));
    TQ_CHECK(r > 0, kOp, "aten::transpose (%", n->output(0)->debugName(), "): rank unknown");
    std::vector<int64_t> perm(static_cast<size_t>(r));
    for (int64_t d = 0; d < r; ++d) perm[d] = d;
    auto a = constant(n, 1).toInt(), b = constant(n, 2).toInt();
    if (a < 0) a += r;
    if (b < 0) b += r;
    std::swap(perm[a], perm[b]);
    attr(emit(n, "Transpose", {read(n->input(0))}, r), "perm", perm);
  }

  void permute(const Node* n) {
    auto perm = ints(n, 1);
    const int64_t r = static_cast<int64_t>(perm.size());
    for (auto& d : perm) d = d < 0 ? d + r : d;
    attr(emit(n, "Transpose", {read(n->input(0))}, r), "perm", perm);
  }

  void chunk(const Node* n) {
    // chunk(x, chunks, dim): pieces of ceil(size / chunks), the last one smaller.
    const auto* in = shape(n->input(0));
    TQ_CHECK(in, kOp, "aten::chunk (%", n->output(0)->debugName(), "): input size unknown");
    const int64_t chunks = constant(n, 1).toInt();
    int64_t dim = constant(n, 2).toInt();
    if (dim < 0) dim += static_cast<int64_t>(in->size());
    const int64_t size = (*in)[dim];
    TQ_CHECK(!(dim == 0 && options_.dynamic_batch()), kOp, "aten::chunk (%", n->output(0)->debugName(), ") splits the batch axis");
    const int64_t piece = (size + chunks - 1) / chunks;
    std::vector<int64_t> sizes;
    for (int64_t left = size; left > 0; left -= piece) sizes.push_back(std::min(piece, left));
    Info i;
    i.kind = Info::Kind::kTensorList;
    for (size_t k = 0; k < sizes.size(); ++k) i.names.push_back(unique(n->output(0)->debugName() + "_" + std::to_string(k)));
    auto* p = add_node("Split", {read(n->input(0)), initializer("split", at::tensor(sizes, at::kLong))}, i.names);
    attr(p, "axis", dim);
    i.rank = rank(n->input(0));
    info_[n->output(0)] = i;
  }

  // The batch size as a 1-element int64 tensor: the first dimension of the (first) input.
  std::string batch_size() {
    if (!batch_size_.empty()) return batch_size_;
    const std::string shape = unique("input_shape");
    add_node("Shape", {model_.inputs.at(0).name}, {shape});
    batch_size_ = unique("batch_size");
    add_node("Slice", {shape, initializer("zero", at::tensor({int64_t{0}})), initializer("one", at::tensor({int64_t{1}}))},
             {batch_size_});
    return batch_size_;
  }

  // An int64 shape tensor for Expand from integers computed from sizes: constants, and the batch
  // size read from the input where an element follows it.
  std::string shape_tensor(const Node* n, const Info& s) {
    if (s.kind == Info::Kind::kConstant) return initializer("shape", at::tensor(s.constant.toIntVector(), at::kLong));
    TQ_CHECK(s.kind == Info::Kind::kInts, kOp, kind_of(n), " (%", n->output(0)->debugName(),
             "): the shape is not computed from sizes");
    const int64_t batch = options_.input_shapes().at(0).at(0);
    std::vector<std::string> pieces;
    std::vector<int64_t> run;
    auto flush = [&] {
      if (!run.empty()) pieces.push_back(initializer("shape", at::tensor(run, at::kLong)));
      run.clear();
    };
    for (size_t d = 0; d < s.ints.size(); ++d) {
      if (!s.batch[d]) {
        run.push_back(s.ints[d]);
        continue;
      }
      TQ_CHECK(s.ints[d] == batch, kOp, kind_of(n), " (%", n->output(0)->debugName(), "): dimension ", d,
               " follows the batch size but is not the batch size; not exported");
      flush();
      pieces.push_back(batch_size());
    }
    flush();
    if (pieces.size() == 1) return pieces[0];
    const std::string out = unique(n->output(0)->debugName() + "_shape");
    attr(add_node("Concat", pieces, {out}), "axis", int64_t{0});
    return out;
  }

  void gelu(const Node* n) {
    // gelu(x, approximate): ONNX's Gelu from opset 20; before it, its formula.
    const std::string approximate = n->inputs().size() > 1 ? constant(n, 1).toStringRef() : "none";
    const int64_t r = rank(n->input(0));
    if (options_.opset() >= 20) {
      auto* p = unary(n, "Gelu");
      Attribute a;
      a.name = "approximate";
      a.kind = Attribute::Kind::kString;
      a.s = approximate;
      p->attributes.push_back(a);
      return;
    }
    const auto x = read(n->input(0));
    const std::string base = n->output(0)->debugName();
    std::string inner;
    if (approximate == "tanh") {
      // tanh(sqrt(2 / pi) * (x + 0.044715 x^3))
      const std::string cube = unique(base + "_cube"), sum = unique(base + "_sum"), scaled = unique(base + "_scaled");
      add_node("Pow", {x, scalar_initializer("three", 3.0)}, {cube});
      const std::string cube_scaled = unique(base + "_cube_scaled");
      add_node("Mul", {cube, scalar_initializer("gelu_c", 0.044715)}, {cube_scaled});
      add_node("Add", {x, cube_scaled}, {sum});
      add_node("Mul", {sum, scalar_initializer("sqrt_2_over_pi", std::sqrt(2.0 / std::acos(-1.0)))}, {scaled});
      inner = unique(base + "_tanh");
      add_node("Tanh", {scaled}, {inner});
    } else {
      TQ_CHECK(approximate == "none", kOp, "aten::gelu (%", base, "): approximate='", approximate, "' is not exported");
      const std::string scaled = unique(base + "_scaled");
      add_node("Mul", {x, scalar_initializer("one_over_sqrt_2", 1.0 / std::sqrt(2.0))}, {scaled});
      inner = unique(base + "_erf");
      add_node("Erf", {scaled}, {inner});
    }
    const std::string plus_one = unique(base + "_plus_one"), half_x = unique(base + "_half_x");
    add_node("Add", {inner, scalar_initializer("one", 1.0)}, {plus_one});
    add_node("Mul", {x, scalar_initializer("half", 0.5)}, {half_x});
    emit(n, "Mul", {half_x, plus_one}, r);
  }

  void expand_to(const Node* n) {
    // expand(x, size, implicit): -1 keeps a dimension, which ONNX's broadcasting Expand does with 1.
    Info s = info(n->input(1));
    if (s.kind == Info::Kind::kConstant) {
      auto v = s.constant.toIntVector();
      for (auto& d : v) d = d == -1 ? 1 : d;
      s.constant = c10::IValue(v);
    } else if (s.kind == Info::Kind::kInts) {
      for (auto& d : s.ints) d = d == -1 ? 1 : d;
    }
    const auto shape = shape_tensor(n, s);
    const int64_t r = s.kind == Info::Kind::kConstant ? static_cast<int64_t>(s.constant.toIntVector().size())
                                                      : static_cast<int64_t>(s.ints.size());
    emit(n, "Expand", {read(n->input(0)), shape}, r);
  }

  void slice(const Node* n) {
    // slice(x, dim, start, end, step); None is the whole range.
    const int64_t r = rank(n->input(0));
    int64_t dim = constant(n, 1).toInt();
    if (dim < 0) dim += r;
    const auto start_v = constant(n, 2), end_v = constant(n, 3);
    const int64_t start = start_v.isNone() ? 0 : start_v.toInt();
    const int64_t end = end_v.isNone() ? std::numeric_limits<int64_t>::max() : end_v.toInt();
    const int64_t step = constant(n, 4).toInt();
    const auto* in = shape(n->input(0));
    if (start == 0 && step == 1 && in && end >= (*in)[dim] && (dim != 0 || end == std::numeric_limits<int64_t>::max())) {
      return alias(n);  // the whole dimension (x[:, 0] slices dimension 0 first)
    }
    TQ_CHECK(!(dim == 0 && options_.dynamic_batch()), kOp, "aten::slice (%", n->output(0)->debugName(),
             ") slices the batch axis");
    emit(n, "Slice",
         {read(n->input(0)), initializer("starts", at::tensor({start})), initializer("ends", at::tensor({end})),
          initializer("axes", at::tensor({dim})), initializer("steps", at::tensor({step}))},
         r);
  }

  void select(const Node* n) {
    // select(x, dim, index): Gather with a scalar index drops the dimension.
    const int64_t r = rank(n->input(0));
    int64_t dim = constant(n, 1).toInt();
    if (dim < 0) dim += r;
    TQ_CHECK(!(dim == 0 && options_.dynamic_batch()), kOp, "aten::select (%", n->output(0)->debugName(),
             ") selects along the batch axis");
    auto* p = emit(n, "Gather", {read(n->input(0)), initializer("index", at::scalar_tensor(constant(n, 2).toInt(), at::kLong))},
                   r - 1);
    attr(p, "axis", dim);
  }

  void list_unpack(const Node* n) {
    const auto& list = info(n->input(0));
    if (list.kind == Info::Kind::kTensorList) {
      TQ_CHECK(list.names.size() == n->outputs().size(), kOp, "prim::ListUnpack (%", n->output(0)->debugName(),
               "): ", n->outputs().size(), " outputs from a list of ", list.names.size());
      for (size_t k = 0; k < list.names.size(); ++k) set_tensor(n->outputs()[k], list.names[k], list.rank);
      return;
    }
    if (list.kind == Info::Kind::kInts) {
      for (size_t k = 0; k < n->outputs().size(); ++k) {
        Info i;
        i.kind = Info::Kind::kInts;
        i.scalar = true;
        i.ints = {list.ints.at(k)};
        i.batch = {list.batch.at(k)};
        info_[n->outputs()[k]] = i;
      }
      return;
    }
    if (list.kind == Info::Kind::kList) {
      for (size_t k = 0; k < n->outputs().size(); ++k) info_[n->outputs()[k]] = info(list.list.at(k));
      return;
    }
    TQ_FAIL(kOp, "prim::ListUnpack (%", n->output(0)->debugName(), ") of a list the exporter cannot read");
  }

  void group_norm(const Node* n) {
    // group_norm(x, groups, weight, bias, eps, cudnn): instance norm over [N, groups, -1], then the
    // per-channel affine (ONNX's GroupNormalization is opset 18 and ORT's support is recent).
    const auto* in = shape(n->input(0));
    TQ_CHECK(in && in->size() >= 2, kOp, "aten::group_norm (%", n->output(0)->debugName(), "): input size unknown");
    const int64_t groups = constant(n, 1).toInt();
    const int64_t c = (*in)[1];
    const std::string base = n->output(0)->debugName();
    const std::string grouped = unique(base + "_grouped");
    add_node("Reshape", {read(n->input(0)), initializer("shape", at::tensor(std::vector<int64_t>{0, groups, -1}, at::kLong))},
             {grouped});
    const std::string normed = unique(base + "_normalized");
    auto* p = add_node("InstanceNormalization",
                       {grouped, initializer(base + "_ones", at::ones({groups})), initializer(base + "_zeros", at::zeros({groups}))},
                       {normed});
    attr_f(p, "epsilon", static_cast<float>(constant(n, 4).toDouble()));
    std::vector<int64_t> back = *in;
    back[0] = 0;
    const std::string restored = unique(base + "_restored");
    add_node("Reshape", {normed, initializer("shape", at::tensor(back, at::kLong))}, {restored});
    std::vector<int64_t> affine_shape(in->size() - 1, 1);
    affine_shape[0] = c;
    const auto w = constant(n, 2), b = constant(n, 3);
    const auto weight = w.isNone() ? at::ones(affine_shape) : w.toTensor().to(at::kFloat).reshape(affine_shape);
    const auto bias = b.isNone() ? at::zeros(affine_shape) : b.toTensor().to(at::kFloat).reshape(affine_shape);
    const std::string scaled = unique(base + "_scaled");
    add_node("Mul", {restored, initializer(base + "_weight", weight)}, {scaled});
    emit(n, "Add", {scaled, initializer(base + "_bias", bias)}, static_cast<int64_t>(in->size()));
  }

  void instance_norm(const Node* n) {
    // instance_norm(x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, cudnn)
    TQ_CHECK(constant(n, 5).toBool(), kOp, "aten::instance_norm (%", n->output(0)->debugName(),
             "): running statistics (track_running_stats) are not exported");
    const auto* in = shape(n->input(0));
    TQ_CHECK(in && in->size() >= 2, kOp, "aten::instance_norm (%", n->output(0)->debugName(), "): input size unknown");
    const int64_t c = (*in)[1];
    const auto w = constant(n, 1), b = constant(n, 2);
    const std::string base = n->output(0)->debugName();
    auto* p = emit(n, "InstanceNormalization",
                   {read(n->input(0)), initializer(base + "_weight", w.isNone() ? at::ones({c}) : w.toTensor().to(at::kFloat)),
                    initializer(base + "_bias", b.isNone() ? at::zeros({c}) : b.toTensor().to(at::kFloat))},
                   static_cast<int64_t>(in->size()));
    attr_f(p, "epsilon", static_cast<float>(constant(n, 7).toDouble()));
  }

  // A ReLU quantized right after with a zero point above the type's minimum (an observer that saw
  // the values before the ReLU): ORT folds a ReLU into QuantizeLinear only at the minimum, so the
  // value is quantized first (what tq's fused int8 kernel does: quantize, then clamp at the zero
  // point), and the ReLU runs between DequantizeLinear and QuantizeLinear; the numbers are the same.
  void relu(const Node* n) {
    const auto uses = n->output(0)->uses();
    const Node* q = uses.size() == 1 ? uses[0].user : nullptr;
    // The quantize's arguments are constants that may come later in the graph: read them directly.
    auto arg = [&](size_t i) { return torch::jit::toIValue(q->input(i)); };
    if (q && kind_of(q) == "aten::quantize_per_tensor" && info(n->input(0)).kind == Info::Kind::kTensor && arg(1) &&
        arg(2) && arg(3)) {
      const double scale = arg(1)->toDouble();
      const int64_t zp = arg(2)->toInt();
      const bool signed_int8 = static_cast<at::ScalarType>(arg(3)->toInt()) == at::kQInt8;
      if (zp != (signed_int8 ? -128 : 0)) {
        const std::string base = n->input(0)->debugName();
        const std::string quantized = unique(base + "_q");
        add_node("QuantizeLinear", {read(n->input(0)), scalar_initializer(quantized + "_scale", scale),
                                    activation_zero_point(quantized + "_zero_point", zp, signed_int8)},
                 {quantized});
        const std::string dequantized = unique(quantized + "_dq");
        add_node("DequantizeLinear", {quantized, scalar_initializer(quantized + "_scale", scale),
                                      activation_zero_point(quantized + "_zero_point", zp, signed_int8)},
                 {dequantized});
        emit(n, "Relu", {dequantized}, rank(n->input(0)));
        return;
      }
    }
    unary(n, "Relu");
  }

  void silu(const Node* n) {
    const auto x = read(n->input(0));
    const std::string sig = unique(n->output(0)->debugName() + "_sigmoid");
    add_node("Sigmoid", {x}, {sig});
    emit(n, "Mul", {x, sig}, rank(n->input(0)));
  }

  void elu(const Node* n) {
    // elu(x, alpha, scale, input_scale): ONNX Elu has alpha only.
    for (size_t i : {2, 3}) {
      TQ_CHECK(constant(n, i).toScalar().toDouble() == 1.0, kOp, "aten::elu (%", n->output(0)->debugName(),
               "): scale and input_scale other than 1 are not exported");
    }
    attr_f(unary(n, "Elu"), "alpha", static_cast<float>(constant(n, 1).toScalar().toDouble()));
  }

  void layer_norm(const Node* n) {
    // layer_norm(x, normalized_shape, weight, bias, eps, cudnn_enable)
    TQ_CHECK(options_.opset() >= 17, kOp, "aten::layer_norm (%", n->output(0)->debugName(),
             ") needs opset 17 (LayerNormalization)");
    const auto shape = ints(n, 1);
    int64_t count = 1;
    for (auto d : shape) count *= d;
    const std::string base = n->output(0)->debugName();
    auto tensor_or = [&](size_t i, double fill) {
      const auto v = constant(n, i);
      return v.isNone() ? at::full(shape, fill, at::kFloat) : v.toTensor().to(at::kFloat);
    };
    auto* p = emit(n, "LayerNormalization",
                   {read(n->input(0)), initializer(base + "_weight", tensor_or(2, 1.0)),
                    initializer(base + "_bias", tensor_or(3, 0.0))},
                   rank(n->input(0)));
    attr(p, "axis", -static_cast<int64_t>(shape.size()));
    attr_f(p, "epsilon", static_cast<float>(constant(n, 4).toDouble()));
  }

  void binary(const Node* n) {
    const std::string k = kind_of(n);
    if (folded_matmul_scaling(n)) return alias(n);  // into the QuantizeLinear that reads it
    if (n->inputs().size() == 3) {
      const auto alpha = constant(n, 2);
      TQ_CHECK(alpha.isScalar() && alpha.toScalar().toDouble() == 1.0, kOp, k, " (%", n->output(0)->debugName(),
               "): alpha other than 1 is not exported");
    }
    TQ_CHECK(n->inputs().size() <= 3, kOp, k, " (%", n->output(0)->debugName(), "): this overload is not exported");
    const std::string op = k == "aten::add" ? "Add" : k == "aten::mul" ? "Mul" : k == "aten::sub" ? "Sub" : "Div";
    emit(n, op, {read(n->input(0)), read(n->input(1))}, std::max(rank(n->input(0)), rank(n->input(1))));
  }

  void cat(const Node* n) {
    const auto& list = info(n->input(0));
    TQ_CHECK(list.kind == Info::Kind::kList, kOp, "aten::cat (%", n->output(0)->debugName(), "): the tensors are not a list");
    std::vector<std::string> inputs;
    int64_t r = -1;
    for (auto* v : list.list) {
      inputs.push_back(read(v));
      r = std::max(r, rank(v));
    }
    auto* p = emit(n, "Concat", inputs, r);
    attr(p, "axis", constant(n, 1).toInt());
  }

  // A pooling node from its (x, kernel, stride, padding, ...) arguments; an empty stride is the kernel.
  NodeDef* pool(const Node* n, const std::string& op) {
    const auto kernel = ints(n, 1);
    const auto d = kernel.size();
    auto stride = ints(n, 2);
    if (stride.empty()) stride = kernel;
    auto pads = expand(ints(n, 3), d);
    pads.insert(pads.end(), pads.begin(), pads.end());
    auto* p = emit(n, op, {read(n->input(0))}, rank(n->input(0)));
    attr(p, "kernel_shape", kernel);
    attr(p, "strides", expand(stride, d));
    attr(p, "pads", pads);
    return p;
  }

  void max_pool(const Node* n) {
    // max_poolNd(x, kernel, stride, padding, dilation, ceil_mode)
    auto* p = pool(n, "MaxPool");
    attr(p, "dilations", expand(ints(n, 4), ints(n, 1).size()));
    attr(p, "ceil_mode", constant(n, 5).toBool() ? 1 : 0);
  }

  void avg_pool(const Node* n) {
    // avg_poolNd(x, kernel, stride, padding, ceil_mode, count_include_pad[, divisor_override])
    if (n->inputs().size() > 6) {
      TQ_CHECK(constant(n, 6).isNone(), kOp, kind_of(n), " (%", n->output(0)->debugName(),
               "): divisor_override is not exported");
    }
    auto* p = pool(n, "AveragePool");
    attr(p, "ceil_mode", constant(n, 4).toBool() ? 1 : 0);
    attr(p, "count_include_pad", constant(n, 5).toBool() ? 1 : 0);
  }

  void adaptive_avg_pool(const Node* n) {
    const auto out = ints(n, 1);
    bool global = true;
    for (auto s : out) global &= s == 1;
    if (global) {
      emit(n, "GlobalAveragePool", {read(n->input(0))}, rank(n->input(0)));
      return;
    }
    // An output size that divides the input's is an AveragePool with kernel = stride = in / out.
    const auto* in = shape(n->input(0));
    TQ_CHECK(in && in->size() >= out.size(), kOp, kind_of(n), " (%", n->output(0)->debugName(), "): input size unknown");
    std::vector<int64_t> kernel;
    for (size_t d = 0; d < out.size(); ++d) {
      const int64_t size = (*in)[in->size() - out.size() + d];
      TQ_CHECK(out[d] > 0 && size % out[d] == 0, kOp, kind_of(n), " (%", n->output(0)->debugName(), "): output size ",
               c10::IntArrayRef(out), " does not divide the input's ", c10::IntArrayRef(*in),
               " (ONNX has no adaptive pooling)");
      kernel.push_back(size / out[d]);
    }
    auto* p = emit(n, "AveragePool", {read(n->input(0))}, rank(n->input(0)));
    attr(p, "kernel_shape", kernel);
    attr(p, "strides", kernel);
  }

  void flatten(const Node* n) {
    const int64_t r = rank(n->input(0));
    int64_t start = constant(n, 1).toInt();
    int64_t end = constant(n, 2).toInt();
    if (r > 0) {
      if (start < 0) start += r;
      if (end < 0) end += r;
    }
    const bool to_2d = start == 1 && (end == -1 || (r > 0 && end == r - 1));
    TQ_CHECK(to_2d, kOp, "aten::flatten (%", n->output(0)->debugName(), "): only flatten(x, 1) is exported (start ",
             constant(n, 1).toInt(), ", end ", constant(n, 2).toInt(), ")");
    auto* p = emit(n, "Flatten", {read(n->input(0))}, 2);
    attr(p, "axis", 1);
  }

  void mean(const Node* n) {
    // mean.dim(x, dims, keepdim, dtype)
    TQ_CHECK(n->inputs().size() >= 3, kOp, "aten::mean (%", n->output(0)->debugName(), "): mean over all elements is not exported");
    const auto dims = ints(n, 1);
    const bool keep = constant(n, 2).toBool();
    const int64_t r = rank(n->input(0));
    std::vector<std::string> inputs = {read(n->input(0))};
    if (options_.opset() >= 18) inputs.push_back(initializer("axes", at::tensor(dims, at::kLong)));
    auto* p = emit(n, "ReduceMean", inputs, r < 0 ? -1 : keep ? r : r - static_cast<int64_t>(dims.size()));
    if (options_.opset() < 18) attr(p, "axes", dims);
    attr(p, "keepdims", keep ? 1 : 0);
  }

  void batch_norm(const Node* n) {
    // batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
    const auto c = constant(n, 3).toTensor().size(0);
    auto tensor_or = [&](size_t i, double fill) {
      const auto v = constant(n, i);
      return v.isNone() ? at::full({c}, fill, at::kFloat) : v.toTensor().to(at::kFloat);
    };
    const std::string base = n->output(0)->debugName();
    auto* p = emit(n, "BatchNormalization",
                   {read(n->input(0)), initializer(base + "_weight", tensor_or(1, 1.0)),
                    initializer(base + "_bias", tensor_or(2, 0.0)), initializer(base + "_mean", tensor_or(3, 0.0)),
                    initializer(base + "_var", tensor_or(4, 1.0))},
                   rank(n->input(0)));
    attr_f(p, "epsilon", static_cast<float>(constant(n, 7).toDouble()));
  }

  const ExportOptions& options_;
  ExportReport& report_;
  ModelDef model_;
  std::unordered_map<const Value*, Info> info_;
  std::string batch_size_;  // the batch size as a tensor, once a shape needs it
  std::unordered_map<const Value*, std::vector<int64_t>> shapes_;
  std::unordered_map<const Value*, std::vector<int64_t>> ints_;  // integers and integer lists
  std::unordered_map<const Value*, std::vector<int64_t>> ints2_;  // the same at one more batch
  std::unordered_set<std::string> names_;
  std::unordered_set<std::string> dequantized_;  // DequantizeLinear outputs
  std::vector<std::pair<std::string, std::string>> float_candidates_;  // (op, output) reading no int8 value
};

}  // namespace

std::string ExportReport::to_string() const {
  std::ostringstream s;
  s << "ONNX QDQ: " << quantize_linear << " QuantizeLinear, " << dequantize_linear << " DequantizeLinear, "
    << int8_weights << " int8 weights";
  if (groupwise_weights > 0) s << ", " << groupwise_weights << " group-wise weights";
  if (!float_ops.empty()) {
    s << "; float ops:";
    for (const auto& op : float_ops) s << " " << op;
  }
  s << "\n";
  return s.str();
}

namespace {

void check_opset(const ExportOptions& options) {
  TQ_CHECK(options.opset() >= 13, kOp, "opset ", options.opset(),
           " is too old: per-channel DequantizeLinear and tq's QDQ layout need opset 13 or later");
  TQ_CHECK(options.opset() <= 21, kOp, "opset ", options.opset(), " is newer than the exporter knows (21)");
}

// The ONNX model of a reference form: tq's quantization points as quantize / dequantize pairs,
// with its qparams.
std::string translate_reference(const torch::jit::Module& reference, const ExportOptions& options,
                                ExportReport* report) {
  ExportReport local;
  ExportReport& r = report ? *report : local;
  r = ExportReport{};
  Translator t(options, r);
  const auto graph = reference.get_method("forward").graph()->copy();
  t.check_input_shapes(*graph);
  t.take_fixed_branches(reference, *graph);
  torch::jit::LowerSimpleTuples(graph);  // a tuple built and unpacked in the graph (scripted attention's)
  t.record_values(reference, *graph);
  t.run(*graph);
  try {
    // ONNX's checker where it knows the opset (Debian's ONNX 1.12: up to 17).
    return detail::serialize(t.model(), options.opset() <= detail::checker_max_opset());
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    TQ_FAIL(kOp, "internal: the written model fails ONNX's checker: ", what);
  }
}

ExportReport write_file(const std::string& path, const std::function<std::string(ExportReport*)>& export_bytes) {
  ExportReport report;
  const auto bytes = export_bytes(&report);
  write_atomically(path, kOp, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    TQ_CHECK(f.good(), kOp, "could not write ", tmp);
  });
  return report;
}

}  // namespace

std::string export_qdq_bytes(const graph::ObservedModel& model, const ExportOptions& options, ExportReport* report) {
  check_opset(options);
  return translate_reference(model.convert(/*reference=*/true), options, report);
}

std::string export_qdq_bytes(const torch::nn::Sequential& model, const ExportOptions& options, ExportReport* report) {
  check_opset(options);
  return translate_reference(detail::eager_reference(model), options, report);
}

ExportReport export_qdq(const graph::ObservedModel& model, const std::string& path, const ExportOptions& options) {
  return write_file(path, [&](ExportReport* r) { return export_qdq_bytes(model, options, r); });
}

ExportReport export_qdq(const torch::nn::Sequential& model, const std::string& path, const ExportOptions& options) {
  return write_file(path, [&](ExportReport* r) { return export_qdq_bytes(model, options, r); });
}

}  // namespace tq::onnx
