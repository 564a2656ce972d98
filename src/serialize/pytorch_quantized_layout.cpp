// PyTorch's converted-module state layout <-> tq's (see state_dict.h).
#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <set>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"
#include "tq/serialize/state_dict.h"

namespace tq::serialize {
namespace {

// "conv." for "conv.weight", "" for "weight"; nullopt when the key is not `name` under a prefix.
std::optional<std::string> prefix_of(const std::string& key, const std::string& name) {
  if (key == name) return std::string();
  const std::string suffix = "." + name;
  if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return key.substr(0, key.size() - name.size());
  }
  return std::nullopt;
}

}  // namespace

StateDict from_pytorch_quantized_layout(const StateDict& state) {
  const char* op = "from_pytorch_quantized_layout";
  std::set<std::string> quantized;  // prefixes of modules with a quantized weight
  for (const auto& [k, v] : state) {
    if (!v.is_quantized()) continue;
    const auto prefix = prefix_of(k, "weight");
    TQ_CHECK(prefix.has_value(), op, "'", k, "' is a quantized tensor; tq reads quantized weights only");
    quantized.insert(*prefix);
  }
  StateDict out;
  for (const auto& [k, v] : state) {
    if (v.is_quantized()) {
      const std::string prefix = *prefix_of(k, "weight");
      kernels::int8::WeightParts parts;
      try {
        parts = kernels::int8::split_quantized_weight(v);
      } catch (const c10::Error& e) {
        TQ_FAIL(op, "'", k, "': ", e.msg());
      }
      out.emplace_back(k, at::empty({0}));  // tq's converted modules release the float weight
      out.emplace_back(prefix + "weight_int8", parts.values);
      out.emplace_back(prefix + "weight_scale", parts.scales);
      out.emplace_back(prefix + "weight_zero_point", parts.zero_points);
      continue;
    }
    // Output qparams of a converted module: 0-dim in PyTorch, [1] in tq.
    const auto scale_of = prefix_of(k, "scale"), zero_point_of = prefix_of(k, "zero_point");
    if (v.dim() == 0 && scale_of && quantized.count(*scale_of) > 0) {
      out.emplace_back(k, v.reshape({1}).to(at::kDouble));
    } else if (v.dim() == 0 && zero_point_of && quantized.count(*zero_point_of) > 0) {
      out.emplace_back(k, v.reshape({1}).to(at::kLong));
    } else {
      out.emplace_back(k, v);
    }
  }
  return out;
}

StateDict to_pytorch_quantized_layout(const StateDict& state) {
  const char* op = "to_pytorch_quantized_layout";
  std::map<std::string, at::Tensor> by_key(state.begin(), state.end());
  auto find = [&](const std::string& key) {
    auto it = by_key.find(key);
    return it == by_key.end() ? at::Tensor() : it->second;
  };
  std::set<std::string> quantized;
  for (const auto& [k, v] : state) {
    if (auto prefix = prefix_of(k, "weight_int8")) quantized.insert(*prefix);
  }
  StateDict out;
  for (const auto& prefix : quantized) {
    const auto values = find(prefix + "weight_int8");
    const auto scales = find(prefix + "weight_scale"), zero_points = find(prefix + "weight_zero_point");
    TQ_CHECK(scales.defined() && zero_points.defined(), op, "'", prefix, "weight_int8' comes without weight_scale and "
             "weight_zero_point");
    out.emplace_back(prefix + "weight", kernels::int8::make_quantized_weight(values, scales, zero_points));
    out.emplace_back(prefix + "bias", find(prefix + "bias"));  // None without bias: PyTorch asks for the key
    // PyTorch's dynamic modules save output qparams they do not use: 1 and 0.
    const auto scale = find(prefix + "scale"), zero_point = find(prefix + "zero_point");
    out.emplace_back(prefix + "scale", scale.defined() ? scale : at::ones({1}, at::kDouble));
    out.emplace_back(prefix + "zero_point", zero_point.defined() ? zero_point : at::zeros({1}, at::kLong));
  }
  for (const auto& [k, v] : state) {
    bool taken = false;
    for (const char* name : {"weight", "weight_int8", "weight_scale", "weight_zero_point", "bias", "scale", "zero_point"}) {
      if (auto prefix = prefix_of(k, name); prefix && quantized.count(*prefix) > 0) taken = true;
    }
    if (!taken) out.emplace_back(k, v);
  }
  return out;
}

}  // namespace tq::serialize
