// Graph-mode int8 ops on LibTorch's quantized operators.
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <ATen/Context.h>

#include <set>

#include "tq/kernels/int8_graph.h"
#include "packed_weight.h"

namespace tq::kernels::int8::graph {
namespace {

using torch::jit::NamedValue;

Value* insert(Graph& g, const char* op, std::vector<NamedValue> args) {
  return g.insert(c10::Symbol::fromQualString(op), args);
}

}  // namespace

Value* quantize(Graph& g, Value* x, double scale, int64_t zero_point, bool signed_int8) {
  const auto dtype = static_cast<int64_t>(signed_int8 ? at::kQInt8 : at::kQUInt8);
  return insert(g, "aten::quantize_per_tensor", {x, scale, zero_point, dtype});
}

Value* dequantize(Graph& g, Value* x_q) { return insert(g, "aten::dequantize", {x_q}); }

Value* conv(Graph& g, int dims, Value* x_q, Value* packed, double scale, int64_t zero_point, bool relu) {
  static const char* plain[] = {"quantized::conv1d", "quantized::conv2d", "quantized::conv3d"};
  static const char* fused[] = {"quantized::conv1d_relu", "quantized::conv2d_relu", "quantized::conv3d_relu"};
  TORCH_CHECK(dims >= 1 && dims <= 3, "[int8::graph::conv] dims must be 1, 2 or 3, got ", dims);
  return insert(g, relu ? fused[dims - 1] : plain[dims - 1], {x_q, packed, scale, zero_point});
}

Value* linear(Graph& g, Value* x_q, Value* packed, double scale, int64_t zero_point, bool relu) {
  return insert(g, relu ? "quantized::linear_relu" : "quantized::linear", {x_q, packed, scale, zero_point});
}

Value* linear_dynamic(Graph& g, Value* x, Value* packed, bool reduce_range) {
  return insert(g, "quantized::linear_dynamic", {x, packed, reduce_range});
}

Value* linear_dynamic_per_token(Graph& g, Value* x, Value* weight, Value* weight_scales, Value* bias) {
  return insert(g, "tq::linear_dynamic_per_token", {x, weight, weight_scales, bias});
}

Value* linear_int8_float_output(Graph& g, Value* x, double scale, int64_t zero_point, int64_t quant_min,
                                int64_t quant_max, Value* weight, Value* weight_scales, Value* bias,
                                Value* input_factors) {
  return insert(g, "tq::linear_int8_float_output",
                {x, scale, zero_point, quant_min, quant_max, weight, weight_scales, bias, input_factors});
}

Value* linear_weight_only(Graph& g, Value* x, Value* packed, Value* scales, Value* zero_points, int64_t bits,
                          int64_t group_size, Value* bias) {
  return insert(g, "tq::linear_weight_only", {x, packed, scales, zero_points, bits, group_size, bias});
}

Value* dequantize_groupwise(Graph& g, Value* packed, Value* scales, Value* zero_points, int64_t bits,
                            int64_t group_size) {
  return insert(g, "tq::dequantize_groupwise", {packed, scales, zero_points, bits, group_size});
}

// LibTorch's embedding_byte refuses indices that are not contiguous (a slice of a token batch).
Value* embedding(Graph& g, Value* packed, Value* indices) {
  return insert(g, "quantized::embedding_byte", {packed, insert(g, "aten::contiguous", {indices}), false});
}

Value* matmul(Graph& g, Value* a_q, Value* b_q, double alpha, double scale, int64_t zero_point) {
  return insert(g, "tq::matmul_int8", {a_q, b_q, alpha, scale, zero_point});
}

Value* add(Graph& g, Value* a_q, Value* b_q, double scale, int64_t zero_point, bool relu) {
  return insert(g, relu ? "quantized::add_relu" : "quantized::add", {a_q, b_q, scale, zero_point});
}

Value* mul(Graph& g, Value* a_q, Value* b_q, double scale, int64_t zero_point, bool relu) {
  return insert(g, relu ? "quantized::mul_relu" : "quantized::mul", {a_q, b_q, scale, zero_point});
}


// LibTorch's int8 cat copies memory directly only when every input is a 4-D channels-last
// contiguous tensor with the output's qparams; otherwise it dequantizes, concatenates in float and
// quantizes again (ShuffleNet's cat of a channel slice spent two thirds of the model's time
// there). An int8 copy into channels-last order costs far less.
Value* channels_last_if_4d(Graph& g, Value* x) {
  auto* is_4d = insert(g, "aten::eq", {insert(g, "aten::dim", {x}), int64_t{4}});
  auto* if_node = g.insertNode(g.create(c10::prim::If, {is_4d}, 1));
  if_node->output()->setType(c10::TensorType::get());
  auto* then_block = if_node->addBlock();
  auto* else_block = if_node->addBlock();
  {
    torch::jit::WithInsertPoint guard(then_block);
    then_block->registerOutput(g.insert(c10::Symbol::fromQualString("aten::contiguous"), {x},
                                        {NamedValue("memory_format", static_cast<int64_t>(c10::MemoryFormat::ChannelsLast))}));
  }
  else_block->registerOutput(x);
  return if_node->output();
}

Value* cat(Graph& g, const std::vector<Value*>& xs_q, Value* dim, double scale, int64_t zero_point) {
  std::vector<Value*> inputs;
  for (auto* x : xs_q) inputs.push_back(channels_last_if_4d(g, x));
  auto* list = g.insertNode(g.createList(c10::TensorType::get(), inputs))->output();
  return insert(g, "quantized::cat", {list, dim, scale, zero_point});
}

Value* hardswish(Graph& g, Value* x_q, double scale, int64_t zero_point) {
  return insert(g, "quantized::hardswish", {x_q, scale, zero_point});
}

Value* batch_norm(Graph& g, Value* x_q, Value* weight, Value* bias, Value* mean, Value* var, Value* eps, double scale,
                  int64_t zero_point, bool relu) {
  return insert(g, relu ? "quantized::batch_norm_relu" : "quantized::batch_norm",
                {x_q, weight, bias, mean, var, eps, scale, zero_point});
}

Value* layer_norm(Graph& g, Value* x_q, Value* normalized_shape, Value* weight, Value* bias, Value* eps, double scale,
                  int64_t zero_point) {
  return insert(g, "quantized::layer_norm", {x_q, normalized_shape, weight, bias, eps, scale, zero_point});
}

Value* group_norm(Graph& g, Value* x_q, Value* groups, Value* weight, Value* bias, Value* eps, double scale,
                  int64_t zero_point) {
  return insert(g, "quantized::group_norm", {x_q, groups, weight, bias, eps, scale, zero_point});
}

Value* instance_norm(Graph& g, Value* x_q, Value* weight, Value* bias, Value* eps, double scale, int64_t zero_point) {
  return insert(g, "quantized::instance_norm", {x_q, weight, bias, eps, scale, zero_point});
}

Value* elu(Graph& g, Value* x_q, Value* alpha, Value* elu_scale, Value* input_scale, double scale, int64_t zero_point) {
  return insert(g, "quantized::elu", {x_q, scale, zero_point, alpha, elu_scale, input_scale});
}

Value* leaky_relu(Graph& g, Value* x_q, Value* negative_slope, double scale, int64_t zero_point) {
  return insert(g, "quantized::leaky_relu", {x_q, negative_slope, false, scale, zero_point});
}

Value* softmax(Graph& g, Value* x_q, Value* dim, double scale, int64_t zero_point) {
  return insert(g, "quantized::softmax", {x_q, dim, scale, zero_point});
}

void replace_forward(torch::jit::Module& module, std::shared_ptr<Graph> graph) {
  auto type = module.type();
  auto cu = module._ivalue()->compilation_unit();
  const auto qualname = type->getMethod("forward").qualname();
  type->unsafeRemoveMethod("forward");
  cu->unsafeRemoveMethod(qualname);
  type->addMethod(cu->create_function(qualname, std::move(graph)));
}

bool conv_weights_follow_input_shape() { return at::globalContext().qEngine() == at::QEngine::ONEDNN; }

Value* repack_conv_on_shape_change(Graph& g, Value* self, const std::string& weight_attr,
                                   const std::string& shape_attr, Value* x_q, const ConvGeometry& p) {
  static const char* unpack[] = {"quantized::conv1d_unpack", "quantized::conv2d_unpack", "quantized::conv3d_unpack"};
  static const char* prepack[] = {"quantized::conv1d_prepack", "quantized::conv2d_prepack",
                                  "quantized::conv3d_prepack"};
  auto* shape = insert(g, "aten::size", {x_q});
  auto* last = g.insertGetAttr(self, shape_attr);
  auto* changed = insert(g, "aten::ne", {shape, last});
  auto* if_node = g.insertNode(g.create(c10::prim::If, {changed}, 0));
  auto* then_block = if_node->addBlock();
  if_node->addBlock();  // else: nothing
  {
    torch::jit::WithInsertPoint guard(then_block);
    auto* old_packed = g.insertGetAttr(self, weight_attr);
    // The unpack op's two results come back as a tuple.
    auto* unpacked = g.insert(c10::Symbol::fromQualString(unpack[p.dims - 1]), {old_packed});
    auto* tup = g.insertNode(g.createTupleUnpack(unpacked));
    Value* w = tup->output(0);
    Value* b = tup->output(1);
    auto* fresh = insert(g, prepack[p.dims - 1], {w, b, p.stride, p.padding, p.dilation, p.groups});
    g.insertNode(g.create(c10::prim::SetAttr, {self, fresh}, 0))->s_(c10::attr::name, weight_attr);
    g.insertNode(g.create(c10::prim::SetAttr, {self, shape}, 0))->s_(c10::attr::name, shape_attr);
  }
  return g.insertGetAttr(self, weight_attr);
}

c10::optional<ConvGeometry> conv_geometry(const PackedWeight& packed) {
  if (const auto* c = dynamic_cast<const ConvPacked*>(&packed.handle())) return c->geometry;
  return c10::nullopt;
}

bool is_int8_conv(const torch::jit::Node& node) {
  static const std::set<std::string> convs = {"quantized::conv1d",      "quantized::conv2d",
                                              "quantized::conv3d",      "quantized::conv1d_relu",
                                              "quantized::conv2d_relu", "quantized::conv3d_relu"};
  return convs.count(node.kind().toQualString()) > 0;
}

const std::vector<std::string>& ops_keeping_input_qparams() {
  // Each has a QuantizedCPU kernel in LibTorch >= 1.13 that keeps its input's qparams.
  static const std::vector<std::string> ops = {
      "aten::relu", "aten::hardtanh", "aten::relu6", "aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d",
      "aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d", "aten::adaptive_avg_pool1d",
      "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d", "aten::flatten", "aten::reshape", "aten::view",
      "aten::permute", "aten::transpose", "aten::contiguous", "aten::squeeze", "aten::unsqueeze", "aten::mean",
      "aten::clamp", "aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::detach", "aten::narrow",
      "aten::select", "aten::slice", "aten::expand", "aten::repeat", "aten::channel_shuffle",
      "aten::pixel_shuffle", "aten::chunk", "aten::split", "aten::unbind"};
  return ops;
}

const std::vector<std::string>& ops_with_fixed_qparams() {
  static const std::vector<std::string> ops = {"aten::sigmoid", "aten::tanh", "aten::hardsigmoid"};
  return ops;
}

FixedQParams fixed_output_qparams(const std::string& op) {
  if (op == "aten::tanh") return {2.0 / 256.0, 128};
  TORCH_CHECK(op == "aten::sigmoid" || op == "aten::hardsigmoid" || op == "aten::softmax",
              "[int8::graph] ", op, " has no fixed output qparams");
  return {1.0 / 256.0, 0};
}

}  // namespace tq::kernels::int8::graph
