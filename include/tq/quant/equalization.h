#pragma once
// Cross-layer equalization on an eager tq::nn model (tq/ptq/equalization.h): C++ modules carry no
// graph, so the caller names the chains of layers whose outputs feed the next one directly or
// through a ReLU (fused or not; ReLU6 is not scale-equivariant: replace it by ReLU first, as the
// paper does), e.g. {{"block.expand", "block.depthwise", "block.project"}}. Call it on the float
// model after fuse_modules (batch norms folded) and before prepare.
//
//   tq::quant::fuse_modules(*net, groups);
//   tq::quant::equalize(*net, {{"conv1", "conv2"}});
//   tq::quant::prepare(*net, per_tensor_mapping);
#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace tq::quant {

struct EqualizationReport {
  std::vector<std::string> pairs;  // "first -> second"
  int sweeps = 0;                  // passes over the pairs until the scales settled
  std::string to_string() const;
};

// Throws, leaving every weight as it was, if a name is unknown, not a float Linear / Conv module,
// appears twice as the first of a pair, or the channels do not chain.
EqualizationReport equalize(torch::nn::Module& model, const std::vector<std::vector<std::string>>& chains);

}  // namespace tq::quant
