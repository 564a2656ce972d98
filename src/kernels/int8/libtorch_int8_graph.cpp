// Graph-mode int8 ops on LibTorch's quantized operators.
#include <torch/csrc/jit/ir/ir.h>

#include <ATen/Context.h>

#include <set>

#include "tq/kernels/int8_graph.h"

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

Value* embedding(Graph& g, Value* packed, Value* indices) {
  return insert(g, "quantized::embedding_byte", {packed, indices, false});
}

Value* add(Graph& g, Value* a_q, Value* b_q, double scale, int64_t zero_point, bool relu) {
  return insert(g, relu ? "quantized::add_relu" : "quantized::add", {a_q, b_q, scale, zero_point});
}

Value* mul(Graph& g, Value* a_q, Value* b_q, double scale, int64_t zero_point, bool relu) {
  return insert(g, relu ? "quantized::mul_relu" : "quantized::mul", {a_q, b_q, scale, zero_point});
}

Value* add_scalar(Graph& g, Value* a_q, Value* scalar) { return insert(g, "quantized::add_scalar", {a_q, scalar}); }
Value* mul_scalar(Graph& g, Value* a_q, Value* scalar) { return insert(g, "quantized::mul_scalar", {a_q, scalar}); }

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

bool conv_weights_follow_input_shape() { return at::globalContext().qEngine() == at::QEngine::ONEDNN; }

Value* repack_conv_on_shape_change(Graph& g, Value* self, const std::string& weight_attr,
                                   const std::string& shape_attr, Value* x_q, const ConvPacking& p) {
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

bool runs_on_int8(const std::string& op) {
  // Each has a QuantizedCPU kernel in LibTorch >= 1.13 that keeps (or fixes) the qparams.
  static const std::set<std::string> ops = {
      "aten::relu", "aten::hardtanh", "aten::relu6", "aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d",
      "aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d", "aten::adaptive_avg_pool1d",
      "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d", "aten::adaptive_max_pool2d", "aten::flatten",
      "aten::reshape", "aten::view", "aten::permute", "aten::transpose", "aten::contiguous", "aten::squeeze",
      "aten::unsqueeze", "aten::mean", "aten::clamp", "aten::upsample_nearest2d", "aten::upsample_bilinear2d",
      "aten::sigmoid", "aten::tanh", "aten::hardsigmoid", "aten::detach", "aten::chunk", "aten::split",
      "aten::narrow", "aten::select", "aten::slice", "aten::expand", "aten::repeat", "aten::channel_shuffle",
      "aten::pixel_shuffle", "aten::dropout", "aten::clone"};
  return ops.count(op) > 0;
}

}  // namespace tq::kernels::int8::graph
