#pragma once
// How the eager post-training algorithms (tq/quant/adaround.h, bias_correction.h) run a model:
// C++ modules have no common forward(), so the caller passes one, e.g.
//   [&](const at::Tensor& x) { return net->forward(x); }
#include <ATen/core/Tensor.h>

#include <functional>

namespace tq::quant {

using ForwardFn = std::function<at::Tensor(const at::Tensor&)>;

}  // namespace tq::quant
