#pragma once
// Arguments of convolution, linear and batch-norm nodes read from a frozen graph's constants:
// what the int8 handlers, and graph-mode QAT when it rebuilds trainable layers, both need.
// Not installed.
#include <torch/csrc/jit/ir/ir.h>

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace tq::graph::detail {

// The one list of weighted operators graph mode knows: every pass that looks for convolutions or
// linears (int8 handlers, QAT, AdaRound, bias correction, equalization, mixed precision) reads it.
// aten::conv{1,2,3}d from scripted models, aten::_convolution from traced ones.
// What a graph value is, for the checks every handler and pass makes.
bool is_tensor(const torch::jit::Value* v);
bool is_tensor_list(const torch::jit::Value* v);  // List[Tensor]: chunk, split, unbind
bool is_constant(const torch::jit::Value* v);
c10::optional<c10::IValue> constant_of(const torch::jit::Value* v);

extern const std::vector<std::string> kConvOps;
extern const std::vector<std::string> kLinearOps;
extern const std::vector<std::string> kWeightedOps;  // kConvOps + kLinearOps
bool is_conv_op(const std::string& kind);

struct ConvArgs {
  at::Tensor weight, bias;  // bias undefined when the convolution has none
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  int dims = 2;
};
// Empty string when every argument is a constant of the expected kind; otherwise why not.
std::string why_conv_float(const torch::jit::Node* conv);
ConvArgs read_conv(const torch::jit::Node* conv);

// aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn).
struct BatchNormArgs {
  at::Tensor weight, bias, running_mean, running_var;
  double momentum = 0.1, eps = 1e-5;
};
std::string why_batch_norm_float(const torch::jit::Node* bn);
BatchNormArgs read_batch_norm(const torch::jit::Node* bn);

// The node's input as a tensor constant (undefined for None).
at::Tensor optional_tensor(const torch::jit::Value* v);

}  // namespace tq::graph::detail
