// Graph mode's files: a TorchScript module saved atomically with the LibTorch version that wrote
// it, and the observed form (ObservedModel::save / load_observed).
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>
#include <string>

#include "observed_model_impl.h"
#include "tq/core/atomic_file.h"
#include "tq/core/check.h"
#include "tq/core/error_message.h"
#include "tq/core/torch_version.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/serialize/state_dict.h"

namespace tq::graph {

namespace fs = std::filesystem;
using Impl = ObservedModel::Impl;

namespace {
// Every file names the LibTorch it was written with (kLibTorchVersionFile), so that a LibTorch that
// cannot read it says which version wrote it.
void save_module(const torch::jit::Module& module, const std::string& path, torch::jit::ExtraFilesMap extra) {
  extra.emplace(kLibTorchVersionFile, libtorch_version());
  write_atomically(path, "save_torchscript", [&](const std::string& tmp) { module.save(tmp, extra); });
}
}  // namespace

void save_torchscript(const torch::jit::Module& module, const std::string& path) { save_module(module, path, {}); }

// The observed form on disk: the user's model as prepare() received it, and in extra files the
// observers' states and a fingerprint of where they sit. load_observed prepares the model again
// with the caller's options (deterministic), checks the fingerprint and restores the states.
namespace {

const char* const kObserversFile = "tq_observers.pt";
const char* const kObservedFile = "tq_observed.json";

std::string fingerprint(const Impl& impl) {
  std::ostringstream s;
  for (const auto& p : impl.points) {
    s << p.kind << ":" << (p.value->node()->kind() == c10::prim::Param ? "input" : kind_of(p.value->node()))
      << (p.smoothing ? ":smoothed" : "") << ";";
  }
  return s.str();
}

}  // namespace

void ObservedModel::save(const std::string& path) const {
  const auto& impl = *impl_;
  serialize::StateDict state;
  for (size_t i = 0; i < impl.points.size(); ++i) {
    for (auto& [name, t] : serialize::state_dict(*impl.points[i].observer)) {
      state.emplace_back("points." + std::to_string(i) + "." + name, t);
    }
    if (impl.points[i].smoothing) {
      for (auto& [name, t] : serialize::state_dict(*impl.points[i].smoothing->range)) {
        state.emplace_back("smoothing." + std::to_string(i) + "." + name, t);
      }
    }
  }
  const nlohmann::json meta = {{"format", 1}, {"batches", impl.batches}, {"points", fingerprint(impl)}};
  torch::jit::ExtraFilesMap extra{{kObserversFile, serialize::state_dict_bytes(state)}, {kObservedFile, meta.dump()}};
  save_module(impl.source, path, extra);
}

ObservedModel load_observed(const std::string& path, const GraphQuantizeOptions& options) {
  std::error_code ec;
  TQ_CHECK(fs::is_regular_file(path, ec), "load_observed", "no such file: ", path);
  torch::jit::ExtraFilesMap extra{{kObserversFile, ""}, {kObservedFile, ""}};
  torch::jit::Module model;
  try {
    model = torch::jit::load(path, c10::nullopt, extra);
  } catch (const std::exception& e) {
    TQ_FAIL("load_observed", path, " is not a TorchScript file: ", error_message(e));
  }
  TQ_CHECK(!extra[kObservedFile].empty() && !extra[kObserversFile].empty(), "load_observed", path,
           " is not an observed model (ObservedModel::save writes those)");
  auto observed = prepare(model, options);
  auto& impl = *observed.impl_;
  const auto meta = nlohmann::json::parse(extra[kObservedFile], nullptr, /*allow_exceptions=*/false);
  TQ_CHECK(meta.is_object() && meta.contains("format") && meta["format"] == 1 && meta.contains("points") &&
               meta["points"].is_string() && meta.contains("batches") && meta["batches"].is_number_integer(),
           "load_observed", path, " has a damaged ", kObservedFile);
  TQ_CHECK(meta["points"].get<std::string>() == fingerprint(impl), "load_observed", path,
           " was observed with other options: its observers do not sit where these options put them");
  const auto state = serialize::parse_state_dict(extra[kObserversFile], path + ":" + kObserversFile);
  for (size_t i = 0; i < impl.points.size(); ++i) {
    const std::string prefix = "points." + std::to_string(i) + ".";
    serialize::StateDict mine;
    for (const auto& [name, t] : state) {
      if (name.rfind(prefix, 0) == 0) mine.emplace_back(name.substr(prefix.size()), t);
    }
    serialize::load_state_dict(*impl.points[i].observer, mine, /*strict=*/true);
    if (impl.points[i].smoothing) {
      const std::string smoothing_prefix = "smoothing." + std::to_string(i) + ".";
      serialize::StateDict range;
      for (const auto& [name, t] : state) {
        if (name.rfind(smoothing_prefix, 0) == 0) range.emplace_back(name.substr(smoothing_prefix.size()), t);
      }
      serialize::load_state_dict(*impl.points[i].smoothing->range, range, /*strict=*/true);
    }
  }
  impl.batches = meta["batches"].get<int64_t>();
  return observed;
}

}  // namespace tq::graph
