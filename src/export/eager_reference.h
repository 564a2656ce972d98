#pragma once
// An eager model converted by tq::quant::convert, written as graph mode's reference form (float
// ops between quantize / dequantize pairs, int8 weights dequantized in the graph), so that the
// ONNX export translates both workflows' models with one translator.
#include <torch/csrc/jit/api/module.h>

namespace torch::nn {
class Sequential;
}

namespace tq::onnx::detail {

// The reference form of a converted Sequential, run child by child: tq's QuantStub, DeQuantStub,
// Conv2d and Linear (fused ReLU included), ReLU and a folded BatchNorm2d; torch::nn's ReLU,
// MaxPool2d, AdaptiveAvgPool2d and Flatten. Anything else, or a layer that is not converted, is a
// one-line error naming the child.
torch::jit::Module eager_reference(const torch::nn::Sequential& model);

}  // namespace tq::onnx::detail
