#include "tq/numerics/batch_norm_folding.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include "tq/core/check.h"

namespace tq {
namespace {

void check_features(const at::Tensor& running_mean, int64_t features, const char* op) {
  TQ_CHECK(running_mean.defined() && running_mean.numel() == features, op, "the batch norm has ",
           running_mean.defined() ? running_mean.numel() : 0, " features, the layer ", features, " outputs");
}

}  // namespace

FoldedWeights fuse_conv_bn_weights(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& running_mean,
                                   const at::Tensor& running_var, double eps, const at::Tensor& gamma,
                                   const at::Tensor& beta, bool transpose) {
  TQ_CHECK(weight.dim() >= 3, "fuse_conv_bn_weights", "the weight must have at least 3 dimensions, got ",
           weight.sizes());
  const int64_t out_dim = transpose ? 1 : 0;
  const int64_t groups_factor = transpose ? weight.size(1) : weight.size(0);
  check_features(running_mean, groups_factor, "fuse_conv_bn_weights");
  at::NoGradGuard no_grad;
  const at::Tensor b = bias.defined() ? bias : at::zeros_like(running_mean);
  const at::Tensor g = gamma.defined() ? gamma : at::ones_like(running_mean);
  const at::Tensor be = beta.defined() ? beta : at::zeros_like(running_mean);
  const at::Tensor var_rsqrt = at::rsqrt(running_var + eps);
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[out_dim] = -1;
  // PyTorch: conv_w * (bn_w * bn_var_rsqrt).reshape(shape); (conv_b - bn_rm) * bn_var_rsqrt * bn_w + bn_b
  FoldedWeights out;
  out.weight = weight * (g * var_rsqrt).reshape(shape);
  out.bias = (b - running_mean) * var_rsqrt * g + be;
  return out;
}

FoldedWeights fuse_linear_bn_weights(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& running_mean,
                                     const at::Tensor& running_var, double eps, const at::Tensor& gamma,
                                     const at::Tensor& beta) {
  TQ_CHECK(weight.dim() == 2, "fuse_linear_bn_weights", "the weight must be 2-D, got ", weight.sizes());
  check_features(running_mean, weight.size(0), "fuse_linear_bn_weights");
  at::NoGradGuard no_grad;
  const at::Tensor b = bias.defined() ? bias : at::zeros_like(running_mean);
  // PyTorch: bn_scale = bn_w * rsqrt(bn_rv + bn_eps); w * bn_scale.unsqueeze(-1); (b - bn_rm) * bn_scale + bn_b
  const at::Tensor scale = gamma * at::rsqrt(running_var + eps);
  FoldedWeights out;
  out.weight = weight * scale.unsqueeze(-1);
  out.bias = (b - running_mean) * scale + beta;
  return out;
}

}  // namespace tq
