#include "eager_layers.h"

#include <ATen/ATen.h>

#include <map>
#include <unordered_map>
#include <variant>

#include "tq/core/check.h"
#include "tq/nn/conv_nd.h"
#include "tq/nn/modules.h"
#include "tq/nn/qconfig.h"
#include "tq/quant/quantize.h"

namespace tq::quant::detail {

namespace {

template <size_t D>
void set_geometry(ptq::WeightedLayer& l, const torch::nn::ConvOptions<D>& o) {
  l.kind = ptq::WeightedLayer::Kind::Conv;
  l.stride.assign(o.stride()->begin(), o.stride()->end());
  using std::get;  // LibTorch 1.13's c10::variant is found by argument lookup, 2.x's std::variant here
  const auto& p = get<torch::ExpandingArray<D>>(o.padding());  // the modules take numeric padding only
  l.padding.assign(p->begin(), p->end());
  l.dilation.assign(o.dilation()->begin(), o.dilation()->end());
  l.groups = o.groups();
}

// Thrown from the input hook to end a pass once it has what it came for.
struct PassDone {};

}  // namespace

std::optional<ptq::WeightedLayer> describe(const nn::WeightedModule& m, const std::string& name, std::string& why) {
  ptq::WeightedLayer l;
  l.name = name;
  if (dynamic_cast<const nn::LinearImpl*>(&m) != nullptr) {
    l.kind = ptq::WeightedLayer::Kind::Linear;
  } else if (const auto* c = dynamic_cast<const nn::Conv2dImpl*>(&m)) {
    if (c->has_attached_batch_norm()) {
      why = "a QAT batch norm is attached (fuse without is_qat for post-training algorithms)";
      return std::nullopt;
    }
    set_geometry<2>(l, c->options());
  } else if (const auto* c1 = dynamic_cast<const nn::ConvNdImpl<1>*>(&m)) {
    set_geometry<1>(l, c1->options());
  } else if (const auto* c3 = dynamic_cast<const nn::ConvNdImpl<3>*>(&m)) {
    set_geometry<3>(l, c3->options());
  } else {
    why = "its module type is not Linear or Conv";
    return std::nullopt;
  }
  l.weight = m.weight();
  l.bias = m.bias();
  l.relu = m.fused_relu();
  return l;
}

EvalScope::EvalScope(torch::nn::Module& model) : model_(model), training_(model.is_training()) { model_.eval(); }
EvalScope::~EvalScope() { model_.train(training_); }

void check_calibrated(torch::nn::Module& model, const char* op) {
  const auto observers = get_observer_dict(model);
  TQ_CHECK(!observers.empty(), op, "the model has no observers: prepare and calibrate it first");
  for (const auto& [name, q] : observers) {
    TQ_CHECK(nn::quantizer_has_observed(*q), op, "observer '", name, "' saw no data: calibrate the model first");
  }
}

at::Tensor take_samples(const std::vector<at::Tensor>& data, int64_t n, const char* op) {
  std::vector<at::Tensor> parts;
  int64_t have = 0;
  for (const auto& b : data) {
    TQ_CHECK(b.defined() && b.dim() >= 1 && b.is_floating_point(), op, "calibration batches must be float tensors");
    if (have >= n) break;
    TQ_CHECK(parts.empty() || b.sizes().slice(1) == parts.front().sizes().slice(1), op,
             "calibration batches differ in shape: ", parts.front().sizes(), " and ", b.sizes());
    parts.push_back(b.narrow(0, 0, std::min(b.size(0), n - have)));
    have += parts.back().size(0);
  }
  TQ_CHECK(have >= n, op, "the data holds ", have, " samples, fewer than the ", n, " asked for");
  return at::cat(parts);
}

std::vector<EagerLayer> observed_layers(torch::nn::Module& model, const ForwardFn& forward, const at::Tensor& probe,
                                        std::vector<std::string>& skipped) {
  std::unordered_map<const nn::WeightedModule*, std::string> names;
  std::map<std::string, nn::WeightedModule*> candidates;
  for (const auto& item : model.named_modules()) {
    auto* w = dynamic_cast<nn::WeightedModule*>(item.value().get());
    if (w == nullptr || w->mode() != nn::QuantMode::Observed) continue;
    names[w] = item.key();
    candidates[item.key()] = w;
  }
  std::vector<const nn::WeightedModule*> order;
  std::unordered_map<const nn::WeightedModule*, int> calls;
  nn::ObservedPass pass;
  pass.on_input = [&](const nn::WeightedModule& m, const at::Tensor&) {
    if (calls[&m]++ == 0) order.push_back(&m);
  };
  {
    nn::ObservedPassGuard guard(pass);
    forward(probe);
  }
  std::vector<EagerLayer> layers;
  for (const auto* m : order) {
    const std::string& name = names.at(m);
    candidates.erase(name);
    if (calls[m] > 1) {
      skipped.push_back(name + ": forward calls it " + std::to_string(calls[m]) + " times");
      continue;
    }
    std::string why;
    auto l = describe(*m, name, why);
    if (!l) {
      skipped.push_back(name + ": " + why);
      continue;
    }
    auto* mm = const_cast<nn::WeightedModule*>(m);
    layers.push_back({mm, std::move(*l), mm->name()});
  }
  for (const auto& [name, m] : candidates) skipped.push_back(name + ": forward does not call it");
  return layers;
}

at::Tensor capture_input(const ForwardFn& forward, const at::Tensor& samples, int64_t chunk, nn::ObservedPass& pass,
                         const nn::WeightedModule& module) {
  std::vector<at::Tensor> inputs;
  pass.on_input = [&](const nn::WeightedModule& m, const at::Tensor& x) {
    if (&m != &module) return;
    inputs.push_back(x.detach().clone());
    throw PassDone{};
  };
  nn::ObservedPassGuard guard(pass);
  for (int64_t start = 0; start < samples.size(0); start += chunk) {
    try {
      forward(samples.narrow(0, start, std::min(chunk, samples.size(0) - start)));
    } catch (const PassDone&) {
    }
  }
  pass.on_input = nullptr;
  TQ_CHECK(!inputs.empty(), module.name(), "forward did not call it");
  return at::cat(inputs);
}

}  // namespace tq::quant::detail
