#pragma once
// A layer with weights as the post-training algorithms see it (AdaRound, bias correction,
// equalization): y = relu?(op(x, weight, bias)) for op = linear or conv1d / conv2d / conv3d.
// Eager modules and TorchScript graphs both describe their layers this way.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace tq::ptq {

struct WeightedLayer {
  enum class Kind { Linear, Conv };
  Kind kind = Kind::Linear;
  std::string name;     // for messages and reports ("layer1.0.conv1")
  at::Tensor weight;    // [out, in] or [out, in / groups, k...]
  at::Tensor bias;      // [out] or undefined
  std::vector<int64_t> stride, padding, dilation;  // conv only
  int64_t groups = 1;
  bool relu = false;    // fused activation: the output AdaRound reconstructs is after it

  // The layer's output for input x with the given weight (the layer's own when undefined).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& weight = {}) const;
  // Throws, naming the layer, if x does not fit it.
  void check_input(const at::Tensor& x, const char* op) const;
};

}  // namespace tq::ptq
