#pragma once
// nn.MultiheadAttention's fused inference path (aten::_native_multi_head_attention, what a traced
// torchvision ViT calls) written out as the ops it computes, so its two projections are Linears
// the quantizer sees: linear -> per-head softmax(q k^T / sqrt(d)) v -> linear.
#include <string>
#include <vector>

namespace torch::jit {
struct Graph;
struct Node;
}  // namespace torch::jit

namespace tq::graph::detail {

// A Linear that was inside a fused attention node, and its name under the attention module:
// "in_proj" (the input projection's parameters are in_proj_weight / in_proj_bias) or "out_proj"
// (a submodule of that name).
struct AttentionProjection {
  torch::jit::Node* linear;
  std::string name;
};

// Rewrites every fused self-attention (query, key and value one value, no mask, the
// attention weights unread or not computed) in place; the new nodes carry the fused node's call stack. Other
// forms (cross-attention, a mask) are left as they are and stay float.
std::vector<AttentionProjection> decompose_self_attention(torch::jit::Graph& g);

}  // namespace tq::graph::detail
