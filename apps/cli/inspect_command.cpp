// tq inspect: a TorchScript model's operators, the patterns that match and what would stay float.
#include <torch/csrc/jit/api/module.h>

#include <iostream>
#include <map>
#include <memory>

#include "cli_support.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"

namespace tq::cli {
namespace {

int inspect(const std::string& path, const std::string& engine) {
  auto model = load_model(path);
  int64_t params = 0, bytes = 0;
  for (const auto& p : model.named_parameters()) {
    params += p.value.numel();
    bytes += p.value.numel() * static_cast<int64_t>(p.value.element_size());
  }
  for (const auto& b : model.named_buffers()) bytes += b.value.numel() * static_cast<int64_t>(b.value.element_size());
  std::map<std::string, int> ops;
  for (auto* n : model.get_method("forward").graph()->nodes()) ops[n->kind().toQualString()]++;
  std::cout << path << ": " << params << " parameters, " << bytes << " bytes of parameters and buffers\n";
  kernels::int8::set_engine(engine);
  auto observed = graph::prepare(model, tool_options(engine, false));
  const auto summary = observed.summary();
  std::map<std::string, int> ops_frozen;
  for (const auto& e : summary.nodes) ops_frozen[e.op]++;
  std::cout << "operators (frozen forward graph):\n";
  for (const auto& [op, count] : ops_frozen) std::cout << "  " << op << " x" << count << "\n";
  std::map<std::string, int> patterns;
  for (const auto& e : summary.nodes) {
    if (e.quantized) patterns[e.handler + " " + e.pattern]++;
  }
  std::cout << "patterns that match (" << engine << " defaults):\n";
  for (const auto& [p, count] : patterns) std::cout << "  " << p << ": " << count << " nodes\n";
  std::map<std::string, int> left;
  for (const auto& e : summary.nodes) {
    if (!e.quantized) left[e.op + (e.why_float.empty() ? "" : " (" + e.why_float + ")")]++;
  }
  std::cout << "would stay float:\n";
  for (const auto& [p, count] : left) std::cout << "  " << p << " x" << count << "\n";
  return 0;
}

}  // namespace

Command add_inspect_command(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto engine = std::make_shared<std::string>("onednn");
  auto* ic = app.add_subcommand("inspect", "Operators, matching patterns, what would stay float and why.\n"
                                           "  tq inspect resnet18.pt");
  ic->add_option("model", *model, "TorchScript file")->required();
  ic->add_option("--engine", *engine, "int8 engine whose defaults to apply")->check(CLI::IsMember(engines()));
  return {ic, [model, engine] { return inspect(*model, *engine); }};
}

}  // namespace tq::cli
