#pragma once
// ONNX QDQ export of a calibrated graph-mode model: the form ONNX Runtime's own quantizer writes,
// which ORT (and TensorRT, OpenVINO) fuse into int8 kernels (QLinearConv, QGemm, QLinearAdd, ...).
//
//   auto observed = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::for_backend("onednn"));
//   for (const auto& batch : calibration) observed.calibrate(batch);
//   tq::onnx::export_qdq(observed, "model_int8.onnx", tq::onnx::ExportOptions().input_shapes({{1, 3, 224, 224}}));
//
// What is written: int8 weights as initializers read through DequantizeLinear (per channel on
// axis 0 where the weights are per channel), activations through a QuantizeLinear /
// DequantizeLinear pair at each of tq's quantization points with tq's scales and zero points,
// biases of quantized convolutions and linears as int32 with scale = input scale x weight scale,
// and one DequantizeLinear per consumer (ORT groups each consumer with its own). Ops that keep
// their input's qparams (pooling, flatten, concat) sit between Q / DQ pairs with equal qparams,
// which ORT runs on int8 values. Weight-only Linears (group-wise 4- or 8-bit weights, float
// activations) need opset 21: their integers go through a blocked DequantizeLinear into a MatMul,
// which ORT fuses into MatMulNBits. Whatever tq left float is exported float. An op with no ONNX
// form is a one-line error naming it, and nothing is written.
#include <cstdint>
#include <string>
#include <vector>

#include "tq/core/options.h"

namespace tq::graph {
class ObservedModel;
}
namespace torch::nn {
class Sequential;
}

namespace tq::onnx {

// How int8 activations are typed in the file (weights are int8 in both).
enum class QdqProfile {
  kU8S8,  // uint8 activations: PyTorch's layout, the values tq's int8 model computes
  kS8S8,  // int8 activations with zero point - 128 (the same real values): ORT's recommended form
  // TensorRT's: int8 activations and weights with zero point 0. Takes symmetric activations (zero
  // point 128 in uint8: QConfigSpec::symmetric_activations) and symmetric weights; any other zero
  // point is an error naming the value.
  kTensorRT,
};

struct ExportOptions {
  // The shape of each model input; dimension 0 is written as the dynamic axis "batch" unless
  // dynamic_batch is false. Required: ONNX Gemm needs to know that a linear's input is 2-D.
  TQ_OPTION(ExportOptions, std::vector<std::vector<int64_t>>, input_shapes);
  // 13 is the first with per-channel DequantizeLinear, 14 the first with HardSwish, 21 the first
  // with blocked DequantizeLinear and 4-bit types (weight-only Linears).
  TQ_OPTION(ExportOptions, int64_t, opset) = 17;
  TQ_OPTION(ExportOptions, QdqProfile, profile) = QdqProfile::kU8S8;
  TQ_OPTION(ExportOptions, bool, dynamic_batch) = true;
  // Each QuantizeLinear's output also a graph output, named after the int8 value it holds (tq's
  // layer names, "tq_layer__layer1__0__conv1"): for comparing ORT's int8 values with tq's.
  TQ_OPTION(ExportOptions, bool, quantization_points_as_outputs) = false;
};

// What the file holds.
struct ExportReport {
  int64_t quantize_linear = 0;    // QuantizeLinear nodes
  int64_t dequantize_linear = 0;  // DequantizeLinear nodes
  int64_t int8_weights = 0;       // int8 weight initializers
  int64_t groupwise_weights = 0;  // group-wise 4- / 8-bit weights (weight-only Linear), blocked DequantizeLinear
  std::vector<std::string> float_ops;  // ONNX ops that read no dequantized input (stay float in ORT)
  std::vector<std::string> quantization_points;  // the QuantizeLinear outputs, in graph order
  std::string to_string() const;
};

// The serialized ONNX ModelProto. Throws a one-line error naming the node for anything with no
// ONNX form, when the model was never calibrated, or when the options do not fit the model.
std::string export_qdq_bytes(const graph::ObservedModel& model, const ExportOptions& options,
                             ExportReport* report = nullptr);
// Writes the file to a temporary name beside `path` and renames it: a failed export leaves
// whatever was at `path` as it was.
ExportReport export_qdq(const graph::ObservedModel& model, const std::string& path, const ExportOptions& options);

// An eager model converted by tq::quant::convert whose structure is its children's order: a
// torch::nn::Sequential of tq's QuantStub, Conv2d, Linear (fused ReLU included), ReLU, folded
// BatchNorm2d and DeQuantStub, and torch::nn's ReLU, MaxPool2d, AdaptiveAvgPool2d and Flatten.
// Written as graph mode's models are: its int8 weights, output qparams and int32 biases. Anything
// else (a child of another type, a layer left float) is a one-line error naming the child.
std::string export_qdq_bytes(const torch::nn::Sequential& model, const ExportOptions& options,
                             ExportReport* report = nullptr);
ExportReport export_qdq(const torch::nn::Sequential& model, const std::string& path, const ExportOptions& options);

}  // namespace tq::onnx
