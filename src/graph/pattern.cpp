#include "tq/graph/pattern.h"

#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>

#include "tq/core/check.h"

namespace tq::graph {

Pattern::Pattern(std::vector<std::string> ops, std::vector<Pattern> inputs)
    : ops_(std::move(ops)), inputs_(std::move(inputs)) {
  TQ_CHECK(!ops_.empty(), "Pattern", "a pattern needs at least one operator");
  for (const auto& op : ops_) {
    TQ_CHECK(op.find("::") != std::string::npos, "Pattern", "operator names are qualified (\"aten::relu\"), got '",
             op, "'");
  }
}

Pattern& Pattern::inside(std::string module_type) {
  module_type_ = std::move(module_type);
  return *this;
}

Pattern& Pattern::where(std::function<bool(const torch::jit::Node&)> condition, std::string description) {
  condition_ = std::move(condition);
  condition_description_ = std::move(description);
  return *this;
}

bool Pattern::accepts(const torch::jit::Node& node, const std::string& node_module_type) const {
  const std::string kind = node.kind().toQualString();
  if (std::find(ops_.begin(), ops_.end(), kind) == ops_.end()) return false;
  if (!module_type_.empty() && module_type_ != node_module_type) return false;
  return !condition_ || condition_(node);
}

std::string Pattern::to_string() const {
  std::string self = ops_.size() == 1 ? ops_[0] : "{" + c10::Join("|", ops_) + "}";
  if (!module_type_.empty()) self += " in " + module_type_;
  if (!condition_description_.empty()) self += " if " + condition_description_;
  if (inputs_.empty()) return self;
  std::string out = "(" + self;
  for (const auto& p : inputs_) out += ", " + p.to_string();
  return out + ")";
}

torch::jit::Node* Match::find(const std::vector<std::string>& ops) const {
  for (auto* n : nodes) {
    if (std::find(ops.begin(), ops.end(), std::string(n->kind().toQualString())) != ops.end()) return n;
  }
  return nullptr;
}

std::vector<torch::jit::Value*> QuantizeHandler::quantized_inputs(const Match& match) const {
  // The deepest node of the pattern takes the activation; weights are constants.
  auto* node = match.nodes.back();
  std::vector<torch::jit::Value*> out;
  for (auto* v : node->inputs()) {
    if (v->node()->kind() == c10::prim::Constant) continue;
    if (!v->type()->isSubtypeOf(*c10::TensorType::get())) continue;
    out.push_back(v);
  }
  return out;
}

torch::jit::Value* QuantizeHandler::reference(ConvertContext& ctx, const Match& match) const {
  const auto ins = quantized_inputs(match);
  return ctx.copy_float(match, [&](torch::jit::Value* v) -> torch::jit::Value* {
    return std::find(ins.begin(), ins.end(), v) != ins.end() ? ctx.fake_quantized(v) : nullptr;
  });
}

PatternRegistry& PatternRegistry::register_pattern(Pattern pattern, std::shared_ptr<const QuantizeHandler> handler) {
  TQ_CHECK(handler != nullptr, "register_pattern", "no handler given for ", pattern.to_string());
  entries_.push_back({std::move(pattern), std::move(handler)});
  return *this;
}

}  // namespace tq::graph
