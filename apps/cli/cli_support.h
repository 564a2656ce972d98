#pragma once
// What the tq tool's subcommands share: its error kinds, loading and running models, output
// paths, JSON reports and the data options. Each subcommand has a file of its own (a Command).
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "data.h"
#include "tq/graph/graph_quantizer.h"

namespace tq::cli {

// A usage problem found after parsing (paths, conflicting flags): exit code 1. BadInput (a
// problem with an input file, data.h) is exit code 2; anything else, 3.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One subcommand: registered on the app, run when the command line names it.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;  // the exit code
};
Command add_quantize_command(CLI::App& app);
Command add_inspect_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_compare_command(CLI::App& app);

// The int8 engines --engine takes.
const std::vector<std::string>& engines();

// A TorchScript file; BadInput if it cannot be loaded.
torch::jit::Module load_model(const std::string& path);
// The model on one input; BadInput, naming `what` and the input's shape, if it fails.
c10::IValue run_model(torch::jit::Module& m, const at::Tensor& x, const std::string& what);
// The first tensor of a model's output (a tensor, or the first of a tuple / list).
at::Tensor first_tensor(const c10::IValue& v);

// UsageError unless `out` can be written: not a directory, not one of the inputs, not an existing
// file without --force, in a directory that exists.
void check_output_path(const std::string& out, const std::vector<std::string>& inputs, bool force);
// Pretty JSON, written to a temporary name and renamed.
void write_json(const nlohmann::json& j, const std::string& path);
nlohmann::json summary_json(const graph::Summary& s);

// The tool's configuration for an engine: the engine's defaults (per-channel weights, histogram
// activations) with the activation range the tool chooses. The int8 model must not saturate
// wherever it is deployed, which is not where it is quantized: so [0, 127] on every x86 engine
// (PyTorch's x86 backend does the same) unless full_range targets VNNI CPUs.
graph::GraphQuantizeOptions tool_options(const std::string& engine, bool full_range);
// --labels, --resize, --center-crop, ... for the commands that read data.
void add_data_options(CLI::App* cmd, DataOptions& d);

}  // namespace tq::cli
