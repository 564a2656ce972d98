#include "tq/graph/adaround.h"

#include <torch/csrc/jit/ir/constants.h>

#include <ATen/ATen.h>

#include <chrono>
#include <iomanip>
#include <sstream>

#include "observed_model_impl.h"
#include "tq/core/check.h"
#include "tq/core/error_message.h"

namespace tq::graph {

const Node* detail::weighted_node(const Match& m) {
  return m.find({"aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::linear"});
}

namespace {

using Impl = ObservedModel::Impl;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A quantized layer AdaRound can round, with where its input and output are captured.
struct Candidate {
  const Impl::MatchInfo* info;
  const Node* node;
  ptq::WeightedLayer layer;
  at::Tensor graph_weight;  // the constant the frozen graph computes with (edited in place)
  size_t input_index, output_index;
};

std::vector<int64_t> int_list(const Value* v) { return torch::jit::toIValue(v)->toIntVector(); }

// Why the match cannot be rounded ("" if it can); fills `c`.
std::string describe(const Impl& impl, const Impl::MatchInfo& info, Candidate& c) {
  const Node* n = detail::weighted_node(info.match);
  c.info = &info;
  c.node = n;
  for (const auto* m : info.match.nodes) {
    const std::string k = kind_of(m);
    if (m != n && k != "aten::relu" && k != "aten::relu_") return "its pattern has " + k + " (AdaRound takes conv / linear + relu)";
  }
  auto w = torch::jit::toIValue(n->input(1));
  if (!w || !w->isTensor() || w->toTensor().scalar_type() != at::kFloat) return "its weight is not a float constant";
  auto b = torch::jit::toIValue(n->input(2));
  if (!b) return "its bias is not a constant";
  c.graph_weight = w->toTensor();
  c.layer.name = impl.scopes.at(const_cast<Node*>(n)).path;
  c.layer.weight = c.graph_weight.clone();
  c.layer.bias = b->isTensor() ? b->toTensor() : at::Tensor();
  c.layer.relu = info.match.nodes.size() > 1;
  if (kind_of(n) == "aten::linear") {
    c.layer.kind = ptq::WeightedLayer::Kind::Linear;
  } else {
    c.layer.kind = ptq::WeightedLayer::Kind::Conv;
    if (n->inputs().size() != 7 || !n->input(4)->type()->isSubtypeOf(*c10::ListType::ofInts())) {
      return "its padding is not a list of ints";
    }
    for (int i = 3; i < 7; ++i) {
      if (!torch::jit::toIValue(n->input(i))) return "its convolution parameters are not constants";
    }
    c.layer.stride = int_list(n->input(3));
    c.layer.padding = int_list(n->input(4));
    c.layer.dilation = int_list(n->input(5));
    c.layer.groups = torch::jit::toIValue(n->input(6))->toInt();
  }
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
  auto probe = info.qconfig->weight();
  if (!std::dynamic_pointer_cast<observers::ObserverBase>(probe)) return "its weight quantizer is not an observer";
  if (!is_symmetric(nn::quantizer_qscheme(*probe))) {
    return "its weights are " + tq::to_string(nn::quantizer_qscheme(*probe)) + " (AdaRound rounds symmetric weights)";
  }
  return "";
}

// Runs the observed model on `samples` in chunks with the capture on, returning the values of point
// or tap `index`; with `simulate`, activations are quantized with these qparams on the way.
at::Tensor capture(Impl& impl, const at::Tensor& samples, size_t index,
                   const std::vector<std::optional<TensorQParams>>* simulate, int64_t chunk) {
  auto& cap = *impl.capture;
  cap.active = true;
  cap.simulate = simulate != nullptr;
  if (simulate) cap.qparams = *simulate;
  cap.wanted = {index};
  cap.values.clear();
  try {
    for (int64_t s = 0; s < samples.size(0); s += chunk) {
      // A copy: simulation quantizes values in place, the graph input among them.
      impl.module.forward({samples.slice(0, s, std::min(samples.size(0), s + chunk)).clone()});
    }
  } catch (const std::exception& e) {
    cap = Impl::Capture();
    TQ_CHECK(false, "adaround", "the model failed on samples of shape ", samples.sizes(), ": ", error_message(e));
  }
  auto values = std::move(cap.values[index]);
  cap = Impl::Capture();
  TQ_CHECK(!values.empty(), "adaround", "internal: no value was captured");
  return at::cat(values);
}

}  // namespace

AdaRoundReport adaround(ObservedModel& observed, const std::vector<at::Tensor>& data, const ptq::AdaRoundOptions& o) {
  const auto start = Clock::now();
  o.validate();
  auto& impl = *observed.impl();
  TQ_CHECK(impl.batches > 0, "adaround", "calibrate the model before AdaRound: activation qparams are needed");
  TQ_CHECK(impl.graph->inputs().size() == 2, "adaround", "the model's forward takes ", impl.graph->inputs().size() - 1,
           " inputs; AdaRound feeds one tensor");
  std::vector<at::Tensor> parts;
  int64_t have = 0;
  for (const auto& b : data) {
    TQ_CHECK(b.defined() && b.dim() >= 1 && b.is_floating_point(), "adaround", "data must be float batches");
    if (have >= o.num_samples()) break;
    parts.push_back(b.slice(0, 0, std::min(b.size(0), o.num_samples() - have)));
    have += parts.back().size(0);
  }
  TQ_CHECK(have >= o.num_samples(), "adaround", "the data holds ", have, " samples, fewer than the ", o.num_samples(),
           " asked for (num_samples)");
  TQ_CHECK(have >= o.batch_size(), "adaround", "the data holds ", have, " samples, fewer than one batch of ",
           o.batch_size());
  const at::Tensor samples = at::cat(parts);

  AdaRoundReport report;
  report.samples = have;
  std::vector<Candidate> layers;
  for (const auto& info : impl.matches) {
    if (!info.why_float.empty() || !detail::weighted_node(info.match)) continue;
    Candidate c;
    const std::string why = describe(impl, info, c);
    if (why.empty()) {
      layers.push_back(std::move(c));
    } else {
      report.skipped.push_back((c.layer.name.empty() ? info.match.module_path : c.layer.name) + ": " + why);
    }
  }
  std::vector<std::optional<TensorQParams>> qparams(impl.points.size());
  for (size_t i = 0; i < impl.points.size(); ++i) {
    if (nn::quantizer_has_observed(*impl.points[i].observer) && !*impl.points[i].saw_non_float) {
      qparams[i] = detail::point_qparams(impl, impl.points[i]);
    }
  }

  // Weights are edited in the frozen graph while inputs are simulated; the float ones come back
  // whatever happens.
  std::unordered_map<const Node*, at::Tensor> learned;
  std::vector<at::Tensor> rounded(layers.size());
  auto restore = [&] {
    for (auto& c : layers) c.graph_weight.copy_(c.layer.weight);
  };
  at::NoGradGuard no_grad;
  const int64_t chunk = 64;
  try {
    for (size_t k = 0; k < layers.size(); ++k) {
      const auto t0 = Clock::now();
      auto& c = layers[k];
      restore();
      const at::Tensor targets = capture(impl, samples, c.output_index, nullptr, chunk);
      for (size_t j = 0; j < k; ++j) layers[j].graph_weight.copy_(rounded[j]);
      const at::Tensor inputs = capture(impl, samples, c.input_index, &qparams, chunk);
      ptq::AdaRoundResult r;
      {
        at::AutoGradMode grad(true);
        auto factory = c.info->qconfig->weight;
        r = ptq::adaround_layer(
            c.layer,
            [factory] { return std::dynamic_pointer_cast<observers::ObserverBase>(factory()); }, inputs, targets, o);
      }
      rounded[k] = r.rounded_weight;
      learned[c.info->match.root] = r.weight_q;
      report.layers.push_back({c.layer.name, kind_of(c.node), c.layer.weight.numel(), r.changed, r.loss_nearest,
                               r.loss_adaround, seconds_since(t0)});
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  impl.weight_overrides = std::move(learned);
  report.seconds = seconds_since(start);
  return report;
}

std::string AdaRoundReport::to_string() const {
  std::ostringstream s;
  s << "AdaRound on " << layers.size() << " layer(s), " << samples << " samples, " << std::fixed
    << std::setprecision(1) << seconds << " s\n";
  for (const auto& l : layers) {
    s << "  " << std::left << std::setw(28) << (l.layer.empty() ? "(top)" : l.layer) << std::right << " "
      << std::setw(8) << l.changed << " of " << std::setw(8) << l.weights << " weights changed, loss "
      << std::scientific << std::setprecision(3) << l.loss_nearest << " -> " << l.loss_adaround << std::fixed
      << std::setprecision(1) << "  (" << l.seconds << " s)\n";
  }
  for (const auto& k : skipped) s << "  skipped " << k << "\n";
  return s.str();
}

}  // namespace tq::graph
