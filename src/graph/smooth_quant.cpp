#include "smooth_quant.h"

#include <torch/csrc/jit/ir/constants.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <sstream>

#include "tq/core/check.h"
#include "tq/core/dtypes.h"
#include "tq/observers/observer_base.h"
#include "tq/observers/per_channel_min_max_observer.h"

namespace tq::graph {

namespace detail {
namespace {

using Impl = ObservedModel::Impl;

// A static int8 Linear reading v as its input, with a 2-D constant weight it alone reads.
bool is_smoothable_linear(const Impl::MatchInfo& info, const Value* v) {
  const Node* lin = weighted_node(info.match);
  if (lin == nullptr || kind_of(lin) != "aten::linear" || lin->input(0) != v) return false;
  if (info.handler->output_qparams() != OutputQParams::kObserved) return false;
  if (lin->input(1)->uses().size() != 1) return false;
  const auto w = torch::jit::toIValue(lin->input(1));
  return w && w->isTensor() && w->toTensor().dim() == 2 && w->toTensor().scalar_type() == at::kFloat;
}

std::string joined(const std::vector<std::string>& layers) {
  std::string s;
  for (const auto& l : layers) s += (s.empty() ? "" : ", ") + (l.empty() ? std::string("(top)") : l);
  return s;
}

}  // namespace

void choose_smoothed_inputs(Impl& impl) {
  for (auto& p : impl.points) {
    if (p.kind != "input") continue;
    const auto sharing = std::count_if(impl.points.begin(), impl.points.end(),
                                       [&](const Impl::Point& q) { return q.observer == p.observer; });
    const auto* uniform = dynamic_cast<const observers::UniformQuantizationObserverBase*>(p.observer.get());
    if (sharing != 1 || uniform == nullptr || !is_per_tensor(uniform->qscheme())) continue;
    auto smoothed = std::make_shared<SmoothedInput>();
    smoothed->range = std::make_shared<observers::PerChannelMinMaxObserver>(
        observers::PerChannelMinMaxObserverOptions().ch_axis(-1));
    bool only_linears = true;
    for (const auto& info : impl.matches) {
      if (!info.why_float.empty()) continue;
      for (const auto* in : info.handler->quantized_inputs(info.match)) {
        if (impl.unalias(const_cast<Value*>(in)) != p.value) continue;
        if (!is_smoothable_linear(info, p.value)) {
          only_linears = false;
          continue;
        }
        const Node* lin = weighted_node(info.match);
        smoothed->linears.push_back(lin);
        auto sc = impl.scopes.find(lin);
        smoothed->layers.push_back(sc == impl.scopes.end() ? std::string() : sc->second.path);
      }
    }
    if (only_linears && !smoothed->linears.empty()) p.smoothing = std::move(smoothed);
  }
}

at::Tensor smoothing_factors(const Impl& impl, const Impl::Point& p) {
  const auto& sm = *p.smoothing;
  TQ_CHECK(sm.range->has_observed(), "convert", "SmoothQuant: the input of ", joined(sm.layers),
           " has no recorded channel ranges (calibrate the prepared model first)");
  const auto act = at::maximum(sm.range->min_val().abs(), sm.range->max_val().abs());
  TQ_CHECK(!at::isnan(act).any().item<bool>(), "convert", "SmoothQuant: the input of ", joined(sm.layers),
           " held a NaN while calibrating");
  at::Tensor weight_max;
  for (const Node* lin : sm.linears) {
    const auto w = torch::jit::toIValue(lin->input(1))->toTensor().abs().amax(0);
    TQ_CHECK(w.size(0) == act.size(0), "convert", "SmoothQuant: the input of ", joined(sm.layers), " has ",
             act.size(0), " channels, a weight takes ", w.size(0));
    weight_max = weight_max.defined() ? at::maximum(weight_max, w) : w;
  }
  const double alpha = impl.options.smooth_quant->alpha;
  const auto a = act.to(at::kDouble), w = weight_max.to(at::kDouble);
  auto s = a.clamp_min(1e-5).pow(alpha) / w.clamp_min(1e-5).pow(1.0 - alpha);
  // A channel that was always 0 (or whose weights are all 0) keeps its scale.
  s = at::where(a.eq(0).logical_or(w.eq(0)), at::ones_like(s), s);
  return s.to(at::kFloat);
}

TensorQParams smoothed_qparams(const Impl& impl, const Impl::Point& p) {
  const auto inverse = smoothing_factors(impl, p).reciprocal();
  const auto& sm = *p.smoothing;
  // The graph multiplies by 1 / s (a positive factor per channel): each channel's range scales.
  const auto lo = (sm.range->min_val() * inverse).min(), hi = (sm.range->max_val() * inverse).max();
  const auto& uniform = dynamic_cast<const observers::UniformQuantizationObserverBase&>(*p.observer);
  const auto qp = uniform.calculate_qparams_from(lo, hi);
  return {qp.scale.item<double>(), qp.zero_point.item<int64_t>()};
}

std::string describe_smoothed(const Impl& impl, const Impl::Point& p) {
  std::ostringstream s;
  s << joined(p.smoothing->layers) << " (";
  if (p.smoothing->range->has_observed()) {
    const auto f = smoothing_factors(impl, p);
    s << f.size(0) << " channels, s from " << f.min().item<float>() << " to " << f.max().item<float>() << ")";
  } else {
    s << "not calibrated)";
  }
  return s.str();
}

}  // namespace detail
}  // namespace tq::graph
