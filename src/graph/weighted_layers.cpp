#include "weighted_layers.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/ir/constants.h>

#include <ATen/ATen.h>

#include "tq/core/check.h"
#include "tq/core/config_error.h"
#include "layer_args.h"
#include "tq/core/error_message.h"
#include "tq/observers/groupwise_weight_observer.h"

namespace tq::graph {

const Node* detail::weighted_node(const Match& m) {
  return m.find(kWeightedOps);
}

bool detail::trains_batch_norm(const Match& m) {
  const Node* conv = m.find(kConvOps);
  const Node* bn = m.find({"aten::batch_norm"});
  // An affine batch norm after a 2-d convolution (ConvBn2d scales the weight by gamma).
  return conv != nullptr && bn != nullptr && why_conv_float(conv).empty() && read_conv(conv).dims == 2 &&
         why_batch_norm_float(bn).empty() && optional_tensor(bn->input(1)).defined() &&
         optional_tensor(bn->input(2)).defined();
}

std::optional<observers::GroupwiseWeightObserverOptions> detail::groupwise_weight_options(const nn::QConfig& qconfig) {
  if (!qconfig.weight) return std::nullopt;
  const auto made = qconfig.weight();
  const auto* obs = dynamic_cast<const observers::GroupwiseWeightObserver*>(made.get());
  if (obs == nullptr) return std::nullopt;
  return obs->options();
}

std::optional<ptq::GptqOptions> detail::gptq_options(const observers::GroupwiseWeightObserverOptions& o) {
  if (!o.gptq()) return std::nullopt;
  return ptq::GptqOptions().bits(o.bits()).group_size(o.group_size()).damp(o.gptq_damp()).act_order(o.gptq_act_order());
}

namespace detail {
namespace {

using Impl = ObservedModel::Impl;

// Why the match's layer cannot be described ("" if it can); fills `c`.
std::string describe(const Impl& impl, const Impl::MatchInfo& info, GraphLayer& c) {
  const Node* n = weighted_node(info.match);
  c.info = &info;
  c.node = n;
  c.layer.name = impl.scopes.count(const_cast<Node*>(n)) ? impl.scopes.at(const_cast<Node*>(n)).path : "";
  for (const auto* m : info.match.nodes) {
    const std::string k = kind_of(m);
    if (m != n && k != "aten::relu" && k != "aten::relu_") return "its pattern has " + k + " (only conv / linear + relu)";
  }
  c.layer.relu = info.match.nodes.size() > 1;
  if (is_conv_op(kind_of(n))) {
    const std::string why = why_conv_float(n);
    if (!why.empty()) return why;
    const ConvArgs a = read_conv(n);
    c.graph_weight = a.weight;
    c.graph_bias = a.bias;
    c.layer.kind = ptq::WeightedLayer::Kind::Conv;
    c.layer.stride = a.stride;
    c.layer.padding = a.padding;
    c.layer.dilation = a.dilation;
    c.layer.groups = a.groups;
  } else {
    auto w = torch::jit::toIValue(n->input(1));
    if (!w || !w->isTensor() || w->toTensor().scalar_type() != at::kFloat) return "its weight is not a float constant";
    auto b = torch::jit::toIValue(n->input(2));
    if (!b) return "its bias is not a constant";
    c.graph_weight = w->toTensor();
    c.graph_bias = b->isTensor() ? b->toTensor() : at::Tensor();
    c.layer.kind = ptq::WeightedLayer::Kind::Linear;
  }
  c.layer.weight = c.graph_weight.clone();
  c.layer.bias = c.graph_bias.defined() ? c.graph_bias.clone() : at::Tensor();
  Value* in = impl.unalias(n->input(0));
  if (auto p = impl.point_of.find(in); p != impl.point_of.end()) {
    c.input_index = p->second;
  } else if (auto t = impl.tap_of.find(in); t != impl.tap_of.end()) {
    c.input_index = t->second;
  } else {
    return "its input is not captured";
  }
  auto out = impl.point_of.find(info.match.root->output());
  if (out == impl.point_of.end()) return "its output is not observed";
  c.output_index = out->second;
  return "";
}

}  // namespace

std::vector<GraphLayer> weighted_layers(const Impl& impl, std::vector<std::string>& skipped) {
  std::vector<GraphLayer> layers;
  for (const auto& info : impl.matches) {
    if (!info.why_float.empty() || !weighted_node(info.match)) continue;
    GraphLayer c;
    const std::string why = describe(impl, info, c);
    if (why.empty()) {
      layers.push_back(std::move(c));
    } else {
      skipped.push_back((c.layer.name.empty() ? info.match.module_path : c.layer.name) + ": " + why);
    }
  }
  return layers;
}

at::Tensor take_samples(const Impl& impl, const std::vector<at::Tensor>& data, int64_t n, const char* op) {
  TQ_CHECK(impl.batches > 0, op, "calibrate the model first: activation qparams are needed");
  // Their simulated inputs are quantized with each point's qparams as observed, not divided by s.
  TQ_CHECK_CONFIG(!impl.options.smooth_quant, op, "does not run on a SmoothQuant model (options.smooth_quant)");
  TQ_CHECK(impl.graph->inputs().size() == 2, op, "the model's forward takes ", impl.graph->inputs().size() - 1,
           " inputs; ", op, " feeds one tensor");
  std::vector<at::Tensor> parts;
  int64_t have = 0;
  for (const auto& b : data) {
    TQ_CHECK(b.defined() && b.dim() >= 1 && b.is_floating_point(), op, "data must be float batches");
    if (have >= n) break;
    parts.push_back(b.slice(0, 0, std::min(b.size(0), n - have)));
    have += parts.back().size(0);
  }
  TQ_CHECK(have >= n, op, "the data holds ", have, " samples, fewer than the ", n, " asked for (num_samples)");
  return at::cat(parts);
}

std::vector<std::optional<TensorQParams>> activation_qparams(const Impl& impl) {
  std::vector<std::optional<TensorQParams>> qparams(impl.points.size());
  for (size_t i = 0; i < impl.points.size(); ++i) {
    if (nn::quantizer_has_observed(*impl.points[i].observer) && !*impl.points[i].saw_non_float) {
      qparams[i] = point_qparams(impl, impl.points[i]);
    }
  }
  return qparams;
}

at::Tensor capture_values(Impl& impl, const at::Tensor& samples, size_t index,
                          const std::vector<std::optional<TensorQParams>>* simulate, const char* op) {
  constexpr int64_t kChunk = 64;
  at::NoGradGuard no_grad;
  auto& cap = *impl.capture;
  cap.active = true;
  cap.simulate = simulate != nullptr;
  if (simulate) cap.qparams = *simulate;
  cap.wanted = {index};
  cap.values.clear();
  try {
    for (int64_t s = 0; s < samples.size(0); s += kChunk) {
      // A copy: simulation quantizes values in place, the graph input among them.
      impl.module.forward({samples.slice(0, s, std::min(samples.size(0), s + kChunk)).clone()});
    }
  } catch (const std::exception& e) {
    cap = Impl::Capture();
    TQ_FAIL(op, "the model failed on samples of shape ", samples.sizes(), ": ", error_message(e));
  }
  auto values = std::move(cap.values[index]);
  cap = Impl::Capture();
  TQ_CHECK(!values.empty(), op, "internal: no value was captured");
  return at::cat(values);
}

}  // namespace detail
}  // namespace tq::graph
