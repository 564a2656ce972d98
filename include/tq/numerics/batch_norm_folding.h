#pragma once
// Folding an eval-mode batch norm into the convolution or linear layer before it, exactly as
// torch.nn.utils.fusion does it (rsqrt(var + eps), then PyTorch's order of multiplications), so
// folded weights equal PyTorch's bit for bit. Used by the eager modules and by graph mode.
#include <ATen/core/Tensor.h>

namespace tq {

struct FoldedWeights {
  at::Tensor weight;
  at::Tensor bias;
};

// weight [out, in/groups, k...] (or [in, out/groups, k...] with transpose); bias, gamma and beta
// may be undefined (zeros, ones, zeros). New tensors; the inputs are not modified.
FoldedWeights fuse_conv_bn_weights(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& running_mean,
                                   const at::Tensor& running_var, double eps, const at::Tensor& gamma,
                                   const at::Tensor& beta, bool transpose = false);
// weight [out, in] (torch.nn.utils.fusion.fuse_linear_bn_weights).
FoldedWeights fuse_linear_bn_weights(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& running_mean,
                                     const at::Tensor& running_var, double eps, const at::Tensor& gamma,
                                     const at::Tensor& beta);

}  // namespace tq
