// tq's half of bench/graph_bench.py: graph-mode quantization of a TorchScript file. Times the
// float TorchScript forward over the calibration batches and tq's calibration over the same
// batches (alternating, so both see the same machine state), prepare and convert, and peak RSS
// of each pass; writes the int8 model and prints one line of JSON.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/api/module.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"

namespace {
using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

// Peak resident set since the last reset (Linux: VmHWM, reset through clear_refs).
void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}
double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Graph-mode quantization timing for one TorchScript model"};
  std::string model_path, out_path, engine = "onednn", activation = "histogram";
  int64_t batches = 8, batch = 16, size = 224;
  int threads = 2;
  app.add_option("--model", model_path, "TorchScript file")->required()->check(CLI::ExistingFile);
  app.add_option("--out", out_path, "where to write the int8 model")->required();
  app.add_option("--batches", batches, "calibration batches")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--size", size, "image size")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "intra-op threads")->check(CLI::PositiveNumber);
  app.add_option("--engine", engine, "int8 engine");
  app.add_option("--activation", activation, "activation observer")->check(CLI::IsMember({"histogram", "minmax"}));
  CLI11_PARSE(app, argc, argv);

  at::set_num_threads(threads);
  tq::kernels::int8::set_engine(engine);
  at::manual_seed(1);
  std::vector<at::Tensor> data;
  for (int64_t i = 0; i < batches; ++i) data.push_back(at::randn({batch, 3, size, size}));

  auto model = tq::graph::load_torchscript(model_path);
  model.eval();
  auto options = tq::graph::GraphQuantizeOptions::for_backend(engine);
  if (activation == "minmax") options.mapping.set_global(tq::quant::minmax_qconfig(engine));

  auto t0 = clock_type::now();
  auto observed = tq::graph::prepare(model, options);
  const double prepare_s = seconds_since(t0);

  at::NoGradGuard no_grad;
  // Warm both (the TorchScript executor profiles its first runs).
  model.forward({data[0]});
  auto observed_module = observed.module();  // a handle on the same module
  observed_module.forward({data[0]});
  double float_s = 0, calib_s = 0, float_peak = 0, calib_peak = 0;
  for (const auto& x : data) {
    reset_peak_rss();
    t0 = clock_type::now();
    model.forward({x});
    float_s += seconds_since(t0);
    float_peak = std::max(float_peak, peak_rss_mb());
    reset_peak_rss();
    t0 = clock_type::now();
    observed.calibrate(x);
    calib_s += seconds_since(t0);
    calib_peak = std::max(calib_peak, peak_rss_mb());
  }
  t0 = clock_type::now();
  auto int8 = observed.convert();
  const double convert_s = seconds_since(t0);
  tq::graph::save_torchscript(int8, out_path);
  const auto summary = observed.summary();
  nlohmann::json j = {{"model", model_path},
                      {"float_forward_s", float_s},
                      {"calibration_s", calib_s},
                      {"calibration_ratio", calib_s / float_s},
                      {"prepare_s", prepare_s},
                      {"convert_s", convert_s},
                      {"float_peak_rss_mb", float_peak},
                      {"calibration_peak_rss_mb", calib_peak},
                      {"quantized_nodes", summary.quantized_count()},
                      {"nodes", summary.nodes.size()}};
  std::cout << j.dump() << std::endl;
  return 0;
}
