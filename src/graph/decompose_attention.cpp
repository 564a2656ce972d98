#include "decompose_attention.h"

#include <ATen/ops/empty.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/ir/constants.h>

#include <cmath>
#include <functional>

namespace tq::graph::detail {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// _native_multi_head_attention(query, key, value, embed_dim, num_head, qkv_weight, qkv_bias,
//                              proj_weight, proj_bias, mask, need_weights, average_attn_weights, mask_type)
bool is_plain_self_attention(const Node* n) {
  if (std::string(n->kind().toQualString()) != "aten::_native_multi_head_attention") return false;
  if (n->inputs().size() < 10 || n->outputs().size() != 2) return false;
  if (n->input(0) != n->input(1) || n->input(1) != n->input(2)) return false;
  const auto embed = torch::jit::toIValue(n->input(3)), heads = torch::jit::toIValue(n->input(4));
  const auto mask = torch::jit::toIValue(n->input(9));
  if (!embed || !heads || !embed->isInt() || !heads->isInt() || !mask || !mask->isNone()) return false;
  if (heads->toInt() <= 0 || embed->toInt() % heads->toInt() != 0) return false;
  if (!n->outputs()[1]->hasUses()) return true;
  const auto need_weights = torch::jit::toIValue(n->input(10));  // false: the weights output is empty
  return need_weights && need_weights->isBool() && !need_weights->toBool();
}

Value* tensor_op(Graph& g, const char* op, std::vector<Value*> inputs) {
  auto* node = g.insertNode(g.create(c10::Symbol::fromQualString(op), inputs, 1));
  node->output()->setType(c10::TensorType::get());
  return node->output();
}

Value* int_list(Graph& g, const std::vector<Value*>& items) {
  return g.insertNode(g.createList(c10::IntType::get(), items))->output();
}

}  // namespace

std::vector<AttentionProjection> decompose_self_attention(Graph& g) {
  // In every block: a scripted nn.MultiheadAttention calls the fused node in the branch taken in
  // inference, which the ONNX export follows.
  std::vector<Node*> fused;
  std::function<void(torch::jit::Block*)> find = [&](torch::jit::Block* b) {
    for (auto* n : b->nodes()) {
      if (is_plain_self_attention(n)) fused.push_back(n);
      for (auto* inner : n->blocks()) find(inner);
    }
  };
  find(g.block());
  std::vector<AttentionProjection> projections;
  for (auto* n : fused) {
    const int64_t embed = torch::jit::toIValue(n->input(3))->toInt();
    const int64_t heads = torch::jit::toIValue(n->input(4))->toInt();
    const int64_t head_dim = embed / heads;
    Node* before = n->prev();
    torch::jit::WithInsertPoint guard(n);
    auto c = [&](const c10::IValue& v) { return g.insertConstant(v); };
    Value* x = n->input(0);  // [N, L, E]: the fused path runs on batch-first 3-d inputs only
    Value* qkv = tensor_op(g, "aten::linear", {x, n->input(5), n->input(6)});
    Node* in_proj = qkv->node();
    auto* parts = g.insertNode(g.create(c10::aten::chunk, {qkv, c(int64_t{3}), c(int64_t{-1})}, 1));
    parts->output()->setType(c10::ListType::ofTensors());
    auto* unpacked = g.insertNode(g.createListUnpack(parts->output(), 3));
    Value* batch = g.insertNode(g.create(c10::aten::size, {x, c(int64_t{0})}, 1))->output()->setType(c10::IntType::get());
    // [N, L, E] -> [N, heads, L, d]
    Value* head_shape = int_list(g, {batch, c(int64_t{-1}), c(heads), c(head_dim)});
    auto per_head = [&](Value* t) {
      return tensor_op(g, "aten::transpose", {tensor_op(g, "aten::reshape", {t, head_shape}), c(int64_t{1}), c(int64_t{2})});
    };
    Value* q = per_head(unpacked->output(0));
    Value* k = per_head(unpacked->output(1));
    Value* v = per_head(unpacked->output(2));
    Value* k_t = tensor_op(g, "aten::transpose", {k, c(int64_t{-2}), c(int64_t{-1})});
    Value* scores = tensor_op(g, "aten::matmul", {q, k_t});
    Value* scaled = tensor_op(g, "aten::mul", {scores, c(1.0 / std::sqrt(static_cast<double>(head_dim)))});
    Value* probs = tensor_op(g, "aten::softmax", {scaled, c(int64_t{-1}), c(c10::IValue())});
    Value* context = tensor_op(g, "aten::matmul", {probs, v});
    Value* merged = tensor_op(g, "aten::transpose", {context, c(int64_t{1}), c(int64_t{2})});
    Value* flat = tensor_op(g, "aten::reshape", {merged, int_list(g, {batch, c(int64_t{-1}), c(embed)})});
    Value* out = tensor_op(g, "aten::linear", {flat, n->input(7), n->input(8)});
    for (Node* m = before->next(); m != n; m = m->next()) m->copyMetadata(n);
    n->output(0)->replaceAllUsesWith(out);
    n->output(1)->replaceAllUsesWith(g.insertConstant(at::empty({0})));  // as the fused node returns it
    n->destroy();
    projections.push_back({in_proj, "in_proj"});
    projections.push_back({out->node(), "out_proj"});
  }
  return projections;
}

}  // namespace tq::graph::detail
