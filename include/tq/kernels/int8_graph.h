#pragma once
// The int8 kernel interface for graph mode: the ops an int8 TorchScript graph calls. Graph-mode
// quantization writes int8 code only through these functions, so a tq-owned backend can replace
// LibTorch's quantized engines by emitting its own operators here. Today each inserts a LibTorch
// quantized:: / aten:: operator, which plain LibTorch (and Python's torch.jit.load) runs.
//
// Each function inserts at the graph's insertion point and returns the op's output value.
#include <c10/util/Optional.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tq/kernels/int8.h"

namespace torch::jit {
struct Graph;
struct Module;
struct Node;
struct Value;
}  // namespace torch::jit

namespace c10 {
struct IValue;
}

namespace tq::kernels::int8 {
// The engine's packed-params object, as a TorchScript attribute holds it.
c10::IValue packed_weight_value(const PackedWeight& packed);
}  // namespace tq::kernels::int8

namespace tq::kernels::int8::graph {

using torch::jit::Graph;
using torch::jit::Value;

Value* quantize(Graph& g, Value* x, double scale, int64_t zero_point, bool signed_int8 = false);
Value* dequantize(Graph& g, Value* x_q);
// dims: 1, 2 or 3; `packed` holds prepack_conv's weights.
Value* conv(Graph& g, int dims, Value* x_q, Value* packed, double scale, int64_t zero_point, bool relu);
Value* linear(Graph& g, Value* x_q, Value* packed, double scale, int64_t zero_point, bool relu);
// Dynamic: float x, int8 weights, float out.
Value* linear_dynamic(Graph& g, Value* x, Value* packed, bool reduce_range);
// Dynamic with one activation scale per token: tq's operator tq::linear_dynamic_per_token (the
// saved model needs tq's library loaded to run). weight: int8 [out, in]; scales: float64 [out].
Value* linear_dynamic_per_token(Graph& g, Value* x, Value* weight, Value* weight_scales, Value* bias);
// Static input qparams, float out: tq's operator tq::linear_int8_float_output (the saved model
// needs tq's library loaded to run). x: float; weight: int8 [out, in]; scales: float64 [out].
// input_factors: None, or float32 [in] that x is multiplied by first (SmoothQuant's 1 / s).
Value* linear_int8_float_output(Graph& g, Value* x, double scale, int64_t zero_point, int64_t quant_min,
                                int64_t quant_max, Value* weight, Value* weight_scales, Value* bias,
                                Value* input_factors);
// Weight-only Linear: tq's operator tq::linear_weight_only (tq/kernels/int8_weight_only.h; the
// saved model needs tq's library loaded to run), float x and out.
Value* linear_weight_only(Graph& g, Value* x, Value* packed, Value* scales, Value* zero_points, int64_t bits,
                          int64_t group_size, Value* bias);
// The reference form's group-wise weight: tq::dequantize_groupwise, (q - zero_point) * scale as
// float [out, in], the integers kept in the graph for whoever reads it (the ONNX export).
Value* dequantize_groupwise(Graph& g, Value* packed, Value* scales, Value* zero_points, int64_t bits,
                            int64_t group_size);
// Weight-only: rows from 8-bit packed embeddings, float out.
Value* embedding(Graph& g, Value* packed, Value* indices);
// Int8 batched matmul of two int8 activations times alpha: tq's operator tq::matmul_int8 (the
// saved model needs tq's library loaded to run).
Value* matmul(Graph& g, Value* a_q, Value* b_q, double alpha, double scale, int64_t zero_point);
Value* add(Graph& g, Value* a_q, Value* b_q, double scale, int64_t zero_point, bool relu);
Value* mul(Graph& g, Value* a_q, Value* b_q, double scale, int64_t zero_point, bool relu);
Value* cat(Graph& g, const std::vector<Value*>& xs_q, Value* dim, double scale, int64_t zero_point);
Value* hardswish(Graph& g, Value* x_q, double scale, int64_t zero_point);
Value* batch_norm(Graph& g, Value* x_q, Value* weight, Value* bias, Value* mean, Value* var, Value* eps, double scale,
                  int64_t zero_point, bool relu);
Value* layer_norm(Graph& g, Value* x_q, Value* normalized_shape, Value* weight, Value* bias, Value* eps, double scale,
                  int64_t zero_point);
// The float arguments are the original op's (aten::group_norm(x, groups, weight, bias, eps, ...),
// aten::instance_norm(x, weight, bias, ..., eps, ...), aten::elu(x, alpha, scale, input_scale),
// aten::leaky_relu(x, slope), aten::softmax(x, dim, dtype)).
Value* group_norm(Graph& g, Value* x_q, Value* groups, Value* weight, Value* bias, Value* eps, double scale,
                  int64_t zero_point);
Value* instance_norm(Graph& g, Value* x_q, Value* weight, Value* bias, Value* eps, double scale, int64_t zero_point);
Value* elu(Graph& g, Value* x_q, Value* alpha, Value* elu_scale, Value* input_scale, double scale, int64_t zero_point);
Value* leaky_relu(Graph& g, Value* x_q, Value* negative_slope, double scale, int64_t zero_point);
Value* softmax(Graph& g, Value* x_q, Value* dim, double scale, int64_t zero_point);

// LibTorch 1.13's onednn convolutions keep their weights reordered for the first input shape and
// then fail on another ("could not create a primitive descriptor for a reorder primitive" when
// the batch size changes). With such an engine, graph mode packs a convolution's weights again
// whenever its input shape changes (a shape check per call, a repack per change).
bool conv_weights_follow_input_shape();
// The geometry a convolution's weights were packed with (nullopt for other packed weights).
c10::optional<ConvGeometry> conv_geometry(const PackedWeight& packed);
// Emits: if x_q's shape differs from self.<shape_attr>, repack self.<weight_attr> and remember the
// shape; returns the (possibly new) packed weights.
Value* repack_conv_on_shape_change(Graph& g, Value* self, const std::string& weight_attr,
                                   const std::string& shape_attr, Value* x_q, const ConvGeometry& geometry);
// Whether `node` is an int8 convolution conv() emitted (its input 1 is the packed weights).
bool is_int8_conv(const torch::jit::Node& node);

// The "onednn" form of an int8 model (LibTorch 2.x): the graph written with the functions above
// (LibTorch's quantized:: operators on quint8 tensors) lowered in place to plain uint8 tensors and
// the oneDNN operators PyTorch 2.x lowers its own int8 models to (onednn::qconv_pointwise,
// onednn::qlinear_pointwise). No quantized dtype is made where the model is loaded or run, and it
// needs no tq library. Each weighted layer's plain int8 weights sit in a submodule that packs them
// for oneDNN when the file is loaded. Static int8 only: a dynamic or weight-only layer, a 1-d
// convolution or asymmetric weights are a one-line error naming it, and the model is unchanged.
// Gives `module`'s type a new forward method running `graph` (the old one goes): how convert and
// the onednn lowering install the graphs they wrote.
void replace_forward(torch::jit::Module& module, std::shared_ptr<Graph> graph);

// Why this LibTorch cannot run the onednn form ("" where it can): the one message every caller gives.
std::string onednn_form_unavailable_reason();
inline bool onednn_form_available() { return onednn_form_unavailable_reason().empty(); }
void lower_to_onednn(torch::jit::Module& int8_model);

// The one list of operators that run on int8 tensors as they are. Those that keep their input's
// qparams (relu, pooling, shape ops: the seed's CopyNode), and those whose int8 kernel fixes its
// output qparams; for both the int8 graph keeps the original operator with an int8 input.
const std::vector<std::string>& ops_keeping_input_qparams();
const std::vector<std::string>& ops_with_fixed_qparams();
// The fixed output qparams of sigmoid, hardsigmoid and softmax ([0, 1]: 1/256, 0) and tanh
// ([-1, 1]: 2/256, 128), as LibTorch's int8 kernels and FX fix them. Throws for other ops.
struct FixedQParams {
  double scale;
  int64_t zero_point;
};
FixedQParams fixed_output_qparams(const std::string& op);

}  // namespace tq::kernels::int8::graph
