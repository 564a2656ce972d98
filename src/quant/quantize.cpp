#include "tq/quant/quantize.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "tq/core/check.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/nn/modules.h"
#include "tq/serialize/state_dict.h"

namespace tq::quant {
namespace {

// Every submodule with its qualified name, parents before children ("" is the root). The walk
// owns a reference to each module: converting a parent unregisters its observers, which must
// stay alive until the loop over them ends.
class Walk {
 public:
  explicit Walk(torch::nn::Module& model) : owned_(model.named_modules("", /*include_self=*/false)) {
    items_.emplace_back("", &model);
    for (const auto& item : owned_) items_.emplace_back(item.key(), item.value().get());
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  torch::OrderedDict<std::string, std::shared_ptr<torch::nn::Module>> owned_;
  std::vector<std::pair<std::string, torch::nn::Module*>> items_;
};
Walk walk(torch::nn::Module& model) { return Walk(model); }

std::string parent_of(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

bool is_leaf(torch::nn::Module& m) { return m.children().empty(); }

// Modules without parameters that run on int8 tensors as they are (the engines implement them),
// recognised by type: a PReLU is not a ReLU, and an unfused BatchNorm1d has no int8 form.
template <class... Types>
bool is_any_of(const torch::nn::Module& m) {
  return (... || (dynamic_cast<const Types*>(&m) != nullptr));
}
bool runs_on_int8_as_is(const torch::nn::Module& m) {
  if (const auto* bn1 = dynamic_cast<const nn::BatchNorm1dImpl*>(&m)) return bn1->folded();
  return is_any_of<nn::ReLUImpl, nn::DeQuantStubImpl, torch::nn::ReLUImpl, torch::nn::MaxPool1dImpl,
                   torch::nn::MaxPool2dImpl, torch::nn::MaxPool3dImpl, torch::nn::AvgPool1dImpl, torch::nn::AvgPool2dImpl,
                   torch::nn::AvgPool3dImpl, torch::nn::AdaptiveAvgPool2dImpl, torch::nn::FlattenImpl,
                   torch::nn::DropoutImpl, torch::nn::Dropout2dImpl, torch::nn::IdentityImpl>(m);
}

bool is_quantizer(const torch::nn::Module& m) {
  return dynamic_cast<const Quantizer*>(&m) != nullptr;
}

// propagate_qconfig: each module's qconfig, by name.
std::map<std::string, std::optional<nn::QConfig>> propagate(torch::nn::Module& model, const QConfigMapping& mapping) {
  std::map<std::string, std::optional<nn::QConfig>> out;
  for (const auto& [name, m] : walk(model)) {
    const std::optional<nn::QConfig> parent = name.empty() ? std::nullopt : out[parent_of(name)];
    out[name] = mapping.resolve(name, m->name(), name.empty() ? mapping.global() : parent);
  }
  return out;
}

template <class Fn>
Summary prepare_with(torch::nn::Module& model, const QConfigMapping& mapping, const char* op, Fn apply,
                     const std::vector<std::string>& allow_list = {}) {
  Summary summary;
  const auto qconfigs = propagate(model, mapping);
  std::vector<nn::Quantizable*> changed;
  bool any = false;
  for (const auto& [name, m] : walk(model)) {
    if (is_quantizer(*m)) continue;
    const auto& qc = qconfigs.at(name);
    if (!qc) continue;
    any = true;
    auto* q = dynamic_cast<nn::Quantizable*>(m);
    if (q != nullptr && !q->participates()) continue;
    if (!allow_list.empty() && std::find(allow_list.begin(), allow_list.end(), m->name()) == allow_list.end()) continue;
    if (q == nullptr) {
      if (is_leaf(*m) && !runs_on_int8_as_is(*m)) {
        summary.left_float.push_back((name.empty() ? m->name() : name) + " (" + m->name() + ")");
      }
      continue;
    }
    try {
      if (apply(*q, *qc)) {
        summary.changed.push_back(name);
        changed.push_back(q);
      }
    } catch (const c10::Error& e) {
      // Modules prepared before this one go back to float: the model is as it was.
      for (auto* done : changed) done->unprepare();
      TQ_FAIL(op, "module '", name, "': ", e.what_without_backtrace());
    }
  }
  if (!any) {
    TORCH_WARN("[", op, "] no module got a qconfig: nothing will be quantized (set a global qconfig or name modules)");
  }
  return summary;
}

}  // namespace

std::string Summary::to_string() const {
  std::ostringstream s;
  s << changed.size() << " module(s) changed";
  if (!changed.empty()) s << ": " << c10::Join(", ", changed);
  if (!left_float.empty()) s << "; left float (no quantized form): " << c10::Join(", ", left_float);
  return s.str();
}

std::map<std::string, std::optional<nn::QConfig>> propagate_qconfig(torch::nn::Module& model,
                                                                    const QConfigMapping& mapping) {
  return propagate(model, mapping);
}

Summary prepare(torch::nn::Module& model, const QConfigMapping& mapping, const std::vector<std::string>& allow_list) {
  return prepare_with(
      model, mapping, "prepare",
      [](nn::Quantizable& q, const nn::QConfig& qc) {
        q.prepare(qc);
        return true;
      },
      allow_list);
}

Summary add_quant_dequant(torch::nn::Module& model, const QConfigMapping& mapping) {
  return prepare_with(model, mapping, "add_quant_dequant",
                      [](nn::Quantizable& q, const nn::QConfig&) { return q.add_quant_dequant(); });
}

void remove_qconfig(torch::nn::Module& model) {
  for (const auto& [name, m] : walk(model)) {
    if (auto* q = dynamic_cast<nn::Quantizable*>(m)) q->remove_qconfig();
  }
}

Summary prepare_qat(torch::nn::Module& model, const QConfigMapping& mapping) {
  return prepare_with(model, mapping, "prepare_qat",
                      [](nn::Quantizable& q, const nn::QConfig& qc) { return q.prepare_qat(qc); });
}

Summary convert(torch::nn::Module& model, bool is_reference) {
  // Every prepared module's observers must have data before any module converts.
  std::vector<std::string> full_range;  // int8 products on full-range activations
  for (const auto& [name, m] : walk(model)) {
    auto* q = dynamic_cast<nn::Quantizable*>(m);
    if (q == nullptr || (q->mode() != nn::QuantMode::Observed && q->mode() != nn::QuantMode::QAT)) continue;
    for (const auto& child : m->named_children()) {
      if (!is_quantizer(*child.value())) continue;
      TQ_CHECK(nn::quantizer_has_observed(*child.value()), "convert", "'", name.empty() ? m->name() : name,
               "' was prepared but never calibrated: its ", child.key(),
               " saw no data (nothing was converted; run calibration data through the model first)");
      if (child.key() == "activation_post_process" && dynamic_cast<nn::WeightedModule*>(m) != nullptr &&
          nn::quantizer_full_range_uint8(*child.value())) {
        full_range.push_back(name.empty() ? m->name() : name);
      }
    }
  }
  Summary summary;
  for (const auto& [name, m] : walk(model)) {
    auto* q = dynamic_cast<nn::Quantizable*>(m);
    if (q == nullptr) continue;
    if (q->mode() == nn::QuantMode::Observed || q->mode() == nn::QuantMode::QAT) {
      if (is_reference) {
        if (!q->convert_reference(name)) summary.left_float.push_back(name + " (no reference form)");
      } else {
        q->convert(name);
      }
      summary.changed.push_back(name);
    }
  }
  TQ_CHECK(!summary.changed.empty(), "convert",
           "no module was prepared (call prepare or prepare_qat, and calibrate, before convert)");
  if (!is_reference) kernels::int8::warn_if_layers_saturate(full_range, "convert");
  return summary;
}

Summary quantize(torch::nn::Module& model, const QConfigMapping& mapping,
                 const std::function<void(torch::nn::Module&)>& run_fn) {
  prepare(model, mapping);
  model.eval();
  run_fn(model);
  return convert(model);
}

Summary quantize_dynamic(torch::nn::Module& model, const QConfigMapping& mapping) {
  // Every module's int8 weights are computed before any module changes (the float and int8
  // weights are both held meanwhile), so a module that cannot convert leaves the model as it was.
  std::vector<nn::Quantizable::InstallStep> steps;
  auto summary = prepare_with(model, mapping, "quantize_dynamic", [&](nn::Quantizable& q, const nn::QConfig& qc) {
    auto step = q.plan_dynamic(qc);
    if (!step) return false;
    steps.push_back(std::move(step));
    return true;
  });
  for (auto& step : steps) step();
  return summary;
}

void freeze_bn_stats(torch::nn::Module& model, bool freeze) {
  for (const auto& [name, m] : walk(model)) {
    if (auto* conv = dynamic_cast<nn::Conv2dImpl*>(m)) conv->freeze_bn_stats(freeze);
  }
}

void fuse_modules(torch::nn::Module& model, const std::vector<std::vector<std::string>>& groups, bool is_qat) {
  const char* op = "fuse_modules";
  std::map<std::string, std::shared_ptr<torch::nn::Module>> shared;
  for (const auto& item : model.named_modules("", false)) shared[item.key()] = item.value();
  std::map<std::string, torch::nn::Module*> by_name;
  for (const auto& [name, m] : walk(model)) by_name[name] = m;
  auto find = [&](const std::string& n) {
    auto it = by_name.find(n);
    TQ_CHECK(it != by_name.end(), op, "no module named '", n, "'");
    return it->second;
  };
  // Every group is checked before any is fused: a bad group leaves the model as it was.
  std::vector<std::function<void()>> steps;
  std::set<std::string> used;
  for (const auto& group : groups) {
    TQ_CHECK(group.size() >= 2 && group.size() <= 3, op, "a group has 2 or 3 modules, got ", group.size());
    for (const auto& n : group) TQ_CHECK(used.insert(n).second, op, "'", n, "' is named in two groups");
    auto* first = find(group[0]);
    auto* conv = dynamic_cast<nn::Conv2dImpl*>(first);
    auto* weighted = dynamic_cast<nn::WeightedModule*>(first);
    TQ_CHECK(weighted != nullptr, op, "'", group[0], "' is a ", first->name(), "; groups start with a tq Conv2d or Linear");
    TQ_CHECK(weighted->mode() == nn::QuantMode::Float, op, "'", group[0], "' is ", nn::to_string(weighted->mode()),
             ": fuse before prepare");
    TQ_CHECK(!weighted->fused_relu() && !(conv && conv->has_attached_batch_norm()), op, "'", group[0],
             "' was fused already");
    for (size_t i = 1; i < group.size(); ++i) {
      auto* m = find(group[i]);
      const std::string& name = group[i];
      if (auto* bn = dynamic_cast<nn::BatchNorm2dImpl*>(m)) {
        TQ_CHECK(conv != nullptr && i == 1, op, "BatchNorm2d '", name, "' can only follow a Conv2d directly");
        TQ_CHECK(!bn->folded(), op, "BatchNorm2d '", name, "' was fused already (folding it again would scale twice)");
        TQ_CHECK(bn->mode() == nn::QuantMode::Float, op, "BatchNorm2d '", name, "' is ", nn::to_string(bn->mode()),
                 ": fuse before prepare");
        if (is_qat) {
          auto shared_bn = std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(shared.at(name));
          steps.push_back([conv, shared_bn] { conv->attach_batch_norm(shared_bn); });
        } else {
          TQ_CHECK(!bn->is_training(), op, "Fusion only for eval! BatchNorm2d '", name,
                   "' is in training mode: call eval() first (or fuse with is_qat for QAT)");
          TQ_CHECK(bn->weight.size(0) == conv->options().out_channels(), op, "BatchNorm2d '", name, "' has ",
                   bn->weight.size(0), " features, '", group[0], "' ", conv->options().out_channels(), " output channels");
          steps.push_back([conv, bn] { conv->fold_batch_norm(bn->running_mean, bn->running_var, bn->weight, bn->bias, bn->eps()); });
        }
        steps.push_back([bn, is_qat] { bn->mark_folded(/*into_weights=*/!is_qat); });
      } else if (auto* bn1 = dynamic_cast<nn::BatchNorm1dImpl*>(m)) {
        auto* linear = dynamic_cast<nn::LinearImpl*>(first);
        TQ_CHECK(linear != nullptr && i == 1 && !is_qat, op, "BatchNorm1d '", name,
                 "' can only follow a Linear directly (post-training fusion)");
        TQ_CHECK(!bn1->folded(), op, "BatchNorm1d '", name, "' was fused already (folding it again would scale twice)");
        TQ_CHECK(!bn1->is_training(), op, "Fusion only for eval! BatchNorm1d '", name,
                 "' is in training mode: call eval() first");
        TQ_CHECK(bn1->weight.size(0) == linear->options().out_features(), op, "BatchNorm1d '", name, "' has ",
                 bn1->weight.size(0), " features, '", group[0], "' ", linear->options().out_features(), " outputs");
        steps.push_back([linear, bn1] {
          linear->fold_batch_norm(bn1->running_mean, bn1->running_var, bn1->weight, bn1->bias, bn1->eps());
          bn1->mark_folded();
        });
      } else if (auto* relu = dynamic_cast<nn::ReLUImpl*>(m)) {
        TQ_CHECK(i == group.size() - 1, op, "ReLU '", name, "' must end its group");
        TQ_CHECK(!relu->folded(), op, "ReLU '", name, "' was fused already");
        steps.push_back([weighted, relu] {
          weighted->set_fused_relu(true);
          relu->mark_folded();
        });
      } else {
        TQ_FAIL(op, "cannot fuse '", name, "' (", m->name(),
                "); supported: Conv2d+BatchNorm2d(+ReLU), Conv+ReLU, Linear+BatchNorm1d, Linear+ReLU with tq::nn "
                "modules");
      }
    }
  }
  for (const auto& step : steps) step();
}

std::map<std::string, std::shared_ptr<torch::nn::Module>> get_observer_dict(torch::nn::Module& model) {
  std::map<std::string, std::shared_ptr<torch::nn::Module>> out;
  for (const auto& item : model.named_modules("", false)) {
    if (is_quantizer(*item.value())) out[item.key()] = item.value();
  }
  return out;
}

void save_quantized_state_dict(torch::nn::Module& model, const std::string& path) {
  bool converted = false;
  for (const auto& [name, m] : walk(model)) {
    const auto* q = dynamic_cast<const nn::Quantizable*>(m);
    converted |= q != nullptr && (q->mode() == nn::QuantMode::Quantized || q->mode() == nn::QuantMode::DynamicQuantized);
  }
  TQ_CHECK(converted, "save_quantized_state_dict", "nothing in the model is converted to int8 (float and prepared "
           "models save with serialize::save_state_dict_file)");
  serialize::save_state_dict_file(serialize::to_pytorch_quantized_layout(serialize::state_dict(model)), path);
}

void load_quantized_state_dict(torch::nn::Module& model, const std::string& path) {
  const char* op = "load_quantized_state_dict";
  auto state = serialize::read_state_dict_file(path);
  std::map<std::string, at::Tensor> given(state.begin(), state.end());
  // Which modules switch to their quantized layout, and how (dynamic ones have no output qparams).
  std::vector<std::pair<nn::Quantizable*, bool>> switches;
  std::map<std::string, const torch::nn::Module*> switching;  // by prefix "conv."
  std::map<std::string, const torch::nn::Module*> modules;
  for (const auto& [name, m] : walk(model)) {
    const std::string prefix = name.empty() ? "" : name + ".";
    modules[prefix] = m;
    auto* q = dynamic_cast<nn::Quantizable*>(m);
    if (q == nullptr || q->mode() != nn::QuantMode::Float || !q->participates()) continue;
    if (given.count(prefix + "scale")) {
      switches.emplace_back(q, false);
    } else if (given.count(prefix + "weight_int8")) {
      switches.emplace_back(q, true);
    } else {
      continue;
    }
    switching[prefix] = m;
  }
  // PyTorch's qnnpack gives a layer built without bias a zero one when it unpacks the weights.
  for (const auto& [prefix, m] : switching) {
    const auto it = given.find(prefix + "bias");
    if (it == given.end() || m->named_parameters(/*recurse=*/false).contains("bias")) continue;
    TQ_CHECK(!at::any(it->second != 0).item<bool>(), op, "'", path, "' has a bias for '",
             prefix.substr(0, prefix.size() - 1), "', which is built without one; nothing was changed");
    given.erase(it);
    state.erase(std::remove_if(state.begin(), state.end(), [&](const auto& e) { return e.first == prefix + "bias"; }),
                state.end());
  }
  // The file is checked against the model before anything changes: a switched module has freed
  // its float weight, so a mismatch found afterwards would leave the model broken.
  const auto own = serialize::state_dict(model);
  std::vector<std::string> missing, unexpected;
  std::set<std::string> own_keys;
  std::string live_batch_norm;
  for (const auto& [k, t] : own) {
    own_keys.insert(k);
    if (given.count(k)) continue;
    missing.push_back(k);
    const std::string prefix = k.substr(0, k.rfind('.') + 1);
    const auto* m = modules.count(prefix) ? modules.at(prefix) : nullptr;
    if (live_batch_norm.empty() && (dynamic_cast<const nn::BatchNorm2dImpl*>(m) != nullptr ||
                                    dynamic_cast<const nn::BatchNorm1dImpl*>(m) != nullptr)) {
      live_batch_norm = prefix.substr(0, prefix.size() - 1);
    }
  }
  TQ_CHECK(live_batch_norm.empty(), op, "'", path, "' has no state for batch norm '", live_batch_norm,
           "', which the quantized model had folded into the layer before it: fuse this model as that one was "
           "(fuse_modules) before loading; nothing was changed");
  TQ_CHECK(missing.empty(), op, "'", path, "' lacks key(s) of this model: ", c10::Join(", ", missing),
           "; nothing was changed");
  for (const auto& [k, v] : state) {
    if (own_keys.count(k)) continue;
    const std::string prefix = k.substr(0, k.rfind('.') + 1);
    const bool layout_key = switching.count(prefix) > 0 && k.find('.', prefix.size()) == std::string::npos;
    const auto* m = modules.count(prefix) ? dynamic_cast<const StatefulModule*>(modules.at(prefix)) : nullptr;
    if (!layout_key && !(m != nullptr && !m->has_state())) unexpected.push_back(k);
  }
  TQ_CHECK(unexpected.empty(), op, "'", path, "' has key(s) this model lacks: ", c10::Join(", ", unexpected),
           "; nothing was changed");
  for (const auto& [prefix, m] : switching) {
    const auto it = given.find(prefix + "weight_int8");
    if (it == given.end()) continue;
    for (const auto& p : m->named_parameters(/*recurse=*/false)) {
      if (p.key() != "weight") continue;
      TQ_CHECK(it->second.sizes() == p.value().sizes(), op, "size mismatch for '", prefix,
               "weight_int8': the file has shape ", it->second.sizes(), ", the model's weight ", p.value().sizes(),
               "; nothing was changed");
    }
  }
  for (auto& [q, dynamic] : switches) q->prepare_quantized_layout(dynamic);
  serialize::load_state_dict(model, state);
}

namespace {
std::shared_ptr<torch::nn::Module> fresh_copy(const torch::nn::Module& model, const ModelFactory& make_model,
                                              const char* op) {
  TQ_CHECK(static_cast<bool>(make_model), op, "no model factory given");
  auto copy = make_model();
  TQ_CHECK(copy != nullptr, op, "the model factory returned no model");
  try {
    serialize::load_state_dict(*copy, serialize::state_dict(model));
  } catch (const c10::Error& e) {
    TQ_FAIL(op, "the factory's model does not match the given one: ", e.what_without_backtrace());
  }
  copy->train(model.is_training());
  return copy;
}
}  // namespace

std::shared_ptr<torch::nn::Module> prepare_copy(const torch::nn::Module& model, const ModelFactory& make_model,
                                                const QConfigMapping& mapping) {
  auto copy = fresh_copy(model, make_model, "prepare_copy");
  prepare(*copy, mapping);
  return copy;
}

std::shared_ptr<torch::nn::Module> prepare_qat_copy(const torch::nn::Module& model, const ModelFactory& make_model,
                                                    const QConfigMapping& mapping) {
  auto copy = fresh_copy(model, make_model, "prepare_qat_copy");
  prepare_qat(*copy, mapping);
  return copy;
}

std::shared_ptr<torch::nn::Module> quantize_dynamic_copy(const torch::nn::Module& model,
                                                         const ModelFactory& make_model,
                                                         const QConfigMapping& mapping) {
  auto copy = fresh_copy(model, make_model, "quantize_dynamic_copy");
  quantize_dynamic(*copy, mapping);
  return copy;
}

int64_t model_size_bytes(const torch::nn::Module& model) {
  int64_t bytes = 0;
  for (const auto& [k, v] : serialize::state_dict(model)) bytes += v.numel() * static_cast<int64_t>(v.element_size());
  return bytes;
}

}  // namespace tq::quant
