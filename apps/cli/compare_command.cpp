// tq compare: output SQNR, top-1 agreement and accuracy of a quantized model against its float
// model; per layer (--per-layer) and by sensitivity (--sensitivity).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <iostream>
#include <memory>

#include "cli_support.h"
#include "progress.h"
#include "sensitivity.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"

namespace tq::cli {
namespace {

struct CompareArgs {
  std::string float_model, quant_model, data, engine = "onednn", report, plot;
  int64_t batch_size = 32, batches = 0;
  bool sensitivity = false, per_layer = false;
  DataOptions data_options;
};

int compare(const CompareArgs& a) {
  kernels::int8::set_engine(a.engine);
  auto fm = load_model(a.float_model);
  auto qm = load_model(a.quant_model);
  const auto samples = load_samples(a.data, a.data_options);
  const auto bs = batches(samples.inputs, a.batch_size, a.batches);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> fo, qo;
  apps::ProgressBar bar("comparing", static_cast<int64_t>(bs.size()));
  for (size_t i = 0; i < bs.size(); ++i) {
    fo.push_back(first_tensor(run_model(fm, bs[i], a.float_model)));
    qo.push_back(first_tensor(run_model(qm, bs[i], a.quant_model)));
    bar.update(static_cast<int64_t>(i) + 1);
  }
  bar.finish();
  const auto f = at::cat(fo), q = at::cat(qo);
  if (!f.sizes().equals(q.sizes())) throw BadInput("the two models' outputs have different shapes");
  nlohmann::json j = {{"float_model", a.float_model}, {"quantized_model", a.quant_model}, {"samples", f.size(0)},
                      {"output_sqnr_db", sqnr_db(f, q)}};
  std::cout << "samples " << f.size(0) << ", output SQNR " << j["output_sqnr_db"].get<double>() << " dB";
  if (f.dim() == 2) {
    const auto ft = f.argmax(1), qt = q.argmax(1);
    j["top1_agreement"] = ft.eq(qt).to(at::kDouble).mean().item<double>();
    std::cout << ", top-1 agreement " << 100 * j["top1_agreement"].get<double>() << "%";
    if (samples.labels.defined()) {
      const auto labels = samples.labels.narrow(0, 0, f.size(0));
      j["float_accuracy"] = ft.eq(labels).to(at::kDouble).mean().item<double>();
      j["quantized_accuracy"] = qt.eq(labels).to(at::kDouble).mean().item<double>();
      std::cout << ", accuracy " << 100 * j["float_accuracy"].get<double>() << "% float, "
                << 100 * j["quantized_accuracy"].get<double>() << "% quantized";
    }
  }
  std::cout << "\n";
  if (a.per_layer) {
    // Numeric-Suite style: each quantized layer's output in both models (the int8 model made by
    // tq from this float model with the engine's defaults).
    const auto layers = graph::compare_layers(fm, qm, tool_options(a.engine, false), bs);
    if (layers.empty()) {
      throw BadInput(a.quant_model + ": no layer of it matches the float model's (was it made by tq from " +
                     a.float_model + "?)");
    }
    nlohmann::json rows = nlohmann::json::array();
    std::vector<std::pair<std::string, double>> bars;
    std::cout << "per-layer SQNR (each quantized layer's output, int8 vs float):\n";
    for (const auto& l : layers) {
      std::cout << "  " << l.layer << ": " << l.sqnr_db << " dB\n";
      rows.push_back({{"layer", l.layer}, {"sqnr_db", l.sqnr_db}});
      bars.emplace_back(l.layer, l.sqnr_db);
    }
    j["per_layer"] = rows;
    std::sort(bars.begin(), bars.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
    if (!a.plot.empty()) {
      write_layer_svg("SQNR (dB) of each quantized layer's output, int8 vs float, lowest first", bars, a.plot);
      std::cout << "wrote " << a.plot << "\n";
    }
  }
  if (a.sensitivity) {
    // Calibrate each single-layer model on the first batches, evaluate on the same data.
    const std::vector<at::Tensor> calib(bs.begin(), bs.begin() + std::min<size_t>(bs.size(), 8));
    const auto layers = layer_sensitivity(fm, tool_options(a.engine, false), calib, bs);
    nlohmann::json rows = nlohmann::json::array();
    std::cout << "layers by sensitivity (output SQNR with that layer alone quantized):\n";
    for (const auto& l : layers) {
      std::cout << "  " << l.layer << " (" << l.op << "): " << l.output_sqnr_db << " dB\n";
      rows.push_back({{"layer", l.layer}, {"op", l.op}, {"output_sqnr_db", l.output_sqnr_db}});
    }
    j["sensitivity"] = rows;
    if (!a.plot.empty() && !a.per_layer) {
      std::vector<std::pair<std::string, double>> bars;
      for (const auto& l : layers) bars.emplace_back(l.layer, l.output_sqnr_db);
      write_layer_svg("Output SQNR (dB) with one layer quantized, most sensitive first", bars, a.plot);
      std::cout << "wrote " << a.plot << "\n";
    }
  }
  if (!a.report.empty()) write_json(j, a.report);
  return 0;
}

}  // namespace

Command add_compare_command(CLI::App& app) {
  auto c = std::make_shared<CompareArgs>();
  auto* cc = app.add_subcommand("compare", "Output SQNR, top-1 agreement and accuracy of a quantized model against its float model.\n"
                                           "  tq compare resnet18.pt resnet18_int8.pt --data val/ --resize 256 --center-crop 224");
  cc->add_option("float_model", c->float_model, "float TorchScript file")->required();
  cc->add_option("quantized_model", c->quant_model, "quantized TorchScript file")->required();
  cc->add_option("--data", c->data, "evaluation data: .pt, IDX file or image directory")->required();
  cc->add_option("--batch-size", c->batch_size, "batch size")->check(CLI::PositiveNumber);
  cc->add_option("--batches", c->batches, "at most this many batches (0: all)")->check(CLI::NonNegativeNumber);
  cc->add_option("--engine", c->engine, "int8 engine")->check(CLI::IsMember(engines()));
  cc->add_option("--report", c->report, "write the figures as JSON");
  cc->add_flag("--sensitivity", c->sensitivity,
               "quantize one layer at a time (default qconfig) and rank layers by the output SQNR they leave");
  cc->add_flag("--per-layer", c->per_layer,
               "SQNR of each quantized layer's output, int8 vs float (the int8 model made by tq from FLOAT)");
  cc->add_option("--plot", c->plot, "with --per-layer or --sensitivity: an SVG bar chart of the per-layer SQNR");
  add_data_options(cc, c->data_options);
  return {cc, [c] {
            if (!c->plot.empty() && !c->sensitivity && !c->per_layer) throw UsageError("--plot needs --per-layer or --sensitivity");
            if (!c->plot.empty()) check_output_path(c->plot, {c->float_model, c->quant_model}, true);
            return compare(*c);
          }};
}

}  // namespace tq::cli
