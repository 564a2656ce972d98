#include "tq/ptq/weighted_layer.h"

#include <ATen/ATen.h>

#include "tq/core/check.h"

namespace tq::ptq {

at::Tensor WeightedLayer::forward(const at::Tensor& x, const at::Tensor& w_in) const {
  const at::Tensor& w = w_in.defined() ? w_in : weight;
  at::Tensor y;
  if (kind == Kind::Linear) {
    y = at::linear(x, w, bias);
  } else {
    const int64_t d = w.dim() - 2;
    if (d == 1) y = at::conv1d(x, w, bias, stride, padding, dilation, groups);
    if (d == 2) y = at::conv2d(x, w, bias, stride, padding, dilation, groups);
    if (d == 3) y = at::conv3d(x, w, bias, stride, padding, dilation, groups);
  }
  return relu ? at::relu(y) : y;
}

void WeightedLayer::check_input(const at::Tensor& x, const char* op) const {
  TQ_CHECK(x.defined() && x.is_floating_point(), op, name, ": inputs must be a float tensor");
  if (kind == Kind::Linear) {
    TQ_CHECK(x.dim() >= 2 && x.size(-1) == weight.size(1), op, name, ": a Linear with ", weight.size(1),
             " input features got inputs of shape ", x.sizes());
  } else {
    TQ_CHECK(weight.dim() >= 3 && weight.dim() <= 5, op, name, ": conv weights must have 3 to 5 dims, got ",
             weight.sizes());
    TQ_CHECK(x.dim() == weight.dim() && x.size(1) == weight.size(1) * groups, op, name, ": a convolution with ",
             weight.size(1) * groups, " input channels got inputs of shape ", x.sizes());
  }
}

}  // namespace tq::ptq
