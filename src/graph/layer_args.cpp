#include "layer_args.h"

#include <torch/csrc/jit/ir/constants.h>

#include <algorithm>

namespace tq::graph::detail {
bool is_tensor(const torch::jit::Value* v) { return v->type()->isSubtypeOf(*c10::TensorType::get()); }
bool is_tensor_list(const torch::jit::Value* v) { return v->type()->isSubtypeOf(*c10::ListType::ofTensors()); }
bool is_constant(const torch::jit::Value* v) { return v->node()->kind() == c10::prim::Constant; }
c10::optional<c10::IValue> constant_of(const torch::jit::Value* v) { return torch::jit::toIValue(v); }

const std::vector<std::string> kConvOps = {"aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::_convolution"};
const std::vector<std::string> kLinearOps = {"aten::linear"};
const std::vector<std::string> kWeightedOps = [] {
  auto ops = kConvOps;
  ops.insert(ops.end(), kLinearOps.begin(), kLinearOps.end());
  return ops;
}();

bool is_conv_op(const std::string& kind) { return std::find(kConvOps.begin(), kConvOps.end(), kind) != kConvOps.end(); }

std::string why_conv_float(const torch::jit::Node* conv) {
  if (!is_tensor(conv->input(0))) return "the input is not a tensor";
  for (size_t i = 1; i < conv->inputs().size(); ++i) {
    if (!is_constant(conv->input(i))) return "argument " + std::to_string(i) + " is not a constant";
  }
  const auto w = constant_of(conv->input(1));
  if (!w || !w->isTensor() || w->toTensor().scalar_type() != at::kFloat) return "the weight is not a float tensor";
  const auto dims = w->toTensor().dim() - 2;
  if (dims < 1 || dims > 3) return "the weight has " + std::to_string(dims + 2) + " dimensions";
  if (conv->kind().toQualString() == std::string("aten::_convolution")) {
    if (constant_of(conv->input(6))->toBool()) return "transposed convolution";
  } else if (!constant_of(conv->input(4))->isIntList()) {
    return "string padding ('same' / 'valid')";
  }
  return "";
}

ConvArgs read_conv(const torch::jit::Node* conv) {
  ConvArgs a;
  a.weight = constant_of(conv->input(1))->toTensor();
  a.bias = optional_tensor(conv->input(2));
  a.stride = constant_of(conv->input(3))->toIntVector();
  a.padding = constant_of(conv->input(4))->toIntVector();
  a.dilation = constant_of(conv->input(5))->toIntVector();
  const bool traced = conv->kind().toQualString() == std::string("aten::_convolution");
  a.groups = constant_of(conv->input(traced ? 8 : 6))->toInt();
  a.dims = static_cast<int>(a.weight.dim()) - 2;
  return a;
}

std::string why_batch_norm_float(const torch::jit::Node* bn) {
  for (size_t i = 1; i < bn->inputs().size(); ++i) {
    if (!is_constant(bn->input(i))) return "batch norm argument " + std::to_string(i) + " is not a constant";
  }
  if (constant_of(bn->input(5))->toBool()) return "batch norm in training mode";
  if (!constant_of(bn->input(3))->isTensor()) return "batch norm without running statistics";
  return "";
}

BatchNormArgs read_batch_norm(const torch::jit::Node* bn) {
  BatchNormArgs a;
  a.weight = optional_tensor(bn->input(1));
  a.bias = optional_tensor(bn->input(2));
  a.running_mean = optional_tensor(bn->input(3));
  a.running_var = optional_tensor(bn->input(4));
  a.momentum = constant_of(bn->input(6))->toDouble();
  a.eps = constant_of(bn->input(7))->toDouble();
  return a;
}

at::Tensor optional_tensor(const torch::jit::Value* v) {
  const auto iv = constant_of(v);
  return iv && iv->isTensor() ? iv->toTensor() : at::Tensor();
}

}  // namespace tq::graph::detail
