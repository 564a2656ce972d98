#include "tq/ptq/equalization.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>

#include <algorithm>

#include "tq/core/check.h"

namespace tq::ptq {
namespace {

// [out, in / groups, k...] -> the shape that broadcasts a [n] vector along `dim`.
std::vector<int64_t> along(const at::Tensor& w, int64_t dim) {
  std::vector<int64_t> shape(w.dim(), 1);
  shape[dim] = w.size(dim);
  return shape;
}

bool is_depthwise(const WeightedLayer& l) {
  return l.kind == WeightedLayer::Kind::Conv && l.groups > 1 && l.weight.size(1) == 1 && l.groups == l.weight.size(0);
}

}  // namespace

at::Tensor equalize_pair(WeightedLayer& first, WeightedLayer& second) {
  const char* op = "equalize_pair";
  const int64_t channels = first.weight.size(0);
  TQ_CHECK(second.kind == WeightedLayer::Kind::Linear || second.groups == 1 || is_depthwise(second), op, second.name,
           ": only convolutions with groups 1 or depthwise ones can follow, got groups ", second.groups);
  // The second layer's weights per input channel: dim 1, or dim 0 for a depthwise convolution.
  const int64_t in_dim = is_depthwise(second) ? 0 : 1;
  TQ_CHECK(second.weight.size(in_dim) == channels, op, first.name, " gives ", channels, " channels but ", second.name,
           " takes ", second.weight.size(in_dim));
  at::NoGradGuard no_grad;
  auto per_channel_range = [](const at::Tensor& w, int64_t dim) {
    return w.abs().transpose(0, dim).reshape({w.size(dim), -1}).amax(1);
  };
  const auto r1 = per_channel_range(first.weight, 0).to(at::kDouble);
  const auto r2 = per_channel_range(second.weight, in_dim).to(at::kDouble);
  // Channels with a zero range on either side keep s = 1.
  auto s = at::where((r1 > 0) & (r2 > 0), at::sqrt(r1 / r2), at::ones_like(r1)).to(at::kFloat);
  first.weight = first.weight / s.reshape(along(first.weight, 0));
  if (first.bias.defined()) first.bias = first.bias / s;
  second.weight = second.weight * s.reshape(along(second.weight, in_dim));
  return s;
}

int equalize_pairs(const std::vector<std::pair<WeightedLayer*, WeightedLayer*>>& pairs, int max_sweeps,
                   double tolerance) {
  int sweeps = 0;
  while (sweeps < max_sweeps && !pairs.empty()) {
    ++sweeps;
    double moved = 0;
    for (const auto& [first, second] : pairs) {
      moved = std::max(moved, (equalize_pair(*first, *second) - 1).abs().max().item<double>());
    }
    if (moved < tolerance) break;
  }
  return sweeps;
}

}  // namespace tq::ptq
