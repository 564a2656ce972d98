// Batch-norm folding equals PyTorch's fuse_conv_bn_weights / fuse_linear_bn_weights bit for bit
// (golden: tools/gen_golden_folding.py), in the shared function and through the eager modules.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "tq/nn/modules.h"
#include "tq/numerics/batch_norm_folding.h"

namespace {

using tq::testing::golden;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;

at::Tensor bias_of(const nlohmann::json& c) { return c.contains("bias") ? to_tensor(c["bias"]) : at::Tensor(); }

TEST(BatchNormFolding, EqualsPyTorchBitForBit) {
  for (const auto& c : golden("batch_norm_folding.json")["cases"]) {
    const auto w = to_tensor(c["weight"]);
    const auto args = std::make_tuple(to_tensor(c["mean"]), to_tensor(c["var"]), c["eps"].get<double>(),
                                      to_tensor(c["gamma"]), to_tensor(c["beta"]));
    const auto folded = c["kind"] == "conv"
                            ? tq::fuse_conv_bn_weights(w, bias_of(c), std::get<0>(args), std::get<1>(args),
                                                       std::get<2>(args), std::get<3>(args), std::get<4>(args))
                            : tq::fuse_linear_bn_weights(w, bias_of(c), std::get<0>(args), std::get<1>(args),
                                                         std::get<2>(args), std::get<3>(args), std::get<4>(args));
    EXPECT_TRUE(tensors_equal(folded.weight, to_tensor(c["folded_weight"]))) << c["kind"];
    EXPECT_TRUE(tensors_equal(folded.bias, to_tensor(c["folded_bias"]))) << c["kind"];
  }
}

TEST(BatchNormFolding, EagerConv2dFoldsAsPyTorch) {
  const auto& c = golden("batch_norm_folding.json")["cases"][0];
  const auto w = to_tensor(c["weight"]);
  tq::nn::Conv2d conv(torch::nn::Conv2dOptions(w.size(1), w.size(0), w.size(2)));
  {
    at::NoGradGuard no_grad;
    conv->weight().copy_(w);
    conv->bias().copy_(to_tensor(c["bias"]));
  }
  conv->fold_batch_norm(to_tensor(c["mean"]), to_tensor(c["var"]), to_tensor(c["gamma"]), to_tensor(c["beta"]),
                        c["eps"].get<double>());
  EXPECT_TRUE(tensors_equal(conv->weight(), to_tensor(c["folded_weight"])));
  EXPECT_TRUE(tensors_equal(conv->bias(), to_tensor(c["folded_bias"])));
}

}  // namespace
