// tq bench: latency (min / median / p90 / p99), throughput and peak memory of a model, interleaved
// with a second model when one is given.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli_support.h"
#include "progress.h"
#include "tq/kernels/int8.h"

namespace tq::cli {
namespace {

using clock_type = std::chrono::steady_clock;

struct BenchArgs {
  std::string model, vs, shape = "1,3,224,224", engine = "onednn";
  int threads = 2, warmup = 5, iters = 50;
};

double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

nlohmann::json stats(std::vector<double> ms, int64_t batch) {
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * (ms.size() - 1) + 0.5))]; };
  return {{"min_ms", ms.front()}, {"median_ms", pct(0.5)}, {"p90_ms", pct(0.9)}, {"p99_ms", pct(0.99)},
          {"throughput_per_s", 1000.0 * batch / pct(0.5)}};
}

int bench(const BenchArgs& a) {
  std::vector<int64_t> shape;
  std::stringstream ss(a.shape);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      shape.push_back(std::stoll(item));
    } catch (...) {
      throw UsageError("--input-shape must be comma-separated integers, got '" + a.shape + "'");
    }
    if (shape.back() <= 0) throw UsageError("--input-shape values must be positive, got '" + a.shape + "'");
  }
  at::set_num_threads(a.threads);
  kernels::int8::set_engine(a.engine);
  std::vector<torch::jit::Module> models{load_model(a.model)};
  if (!a.vs.empty()) models.push_back(load_model(a.vs));
  at::NoGradGuard no_grad;
  const auto x = at::randn(shape);
  for (auto& m : models) {
    for (int i = 0; i < a.warmup; ++i) run_model(m, x, "bench");
  }
  std::vector<std::vector<double>> times(models.size());
  apps::ProgressBar bar("benchmarking", a.iters);
  for (int i = 0; i < a.iters; ++i) {
    for (size_t k = 0; k < models.size(); ++k) {  // interleaved
      const auto t0 = clock_type::now();
      models[k].forward({x});
      times[k].push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    }
    bar.update(i + 1);
  }
  bar.finish();
  nlohmann::json j = {{"input_shape", shape}, {"threads", a.threads}, {"peak_rss_mb", peak_rss_mb()}};
  j["model"] = stats(times[0], shape[0]);
  std::cout << a.model << ": median " << j["model"]["median_ms"].get<double>() << " ms, p90 "
            << j["model"]["p90_ms"].get<double>() << " ms, min " << j["model"]["min_ms"].get<double>() << " ms, "
            << j["model"]["throughput_per_s"].get<double>() << " samples/s\n";
  if (models.size() == 2) {
    j["vs"] = stats(times[1], shape[0]);
    const double ratio = j["vs"]["median_ms"].get<double>() / j["model"]["median_ms"].get<double>();
    std::cout << a.vs << ": median " << j["vs"]["median_ms"].get<double>() << " ms; " << a.model << " is " << ratio
              << "x as fast\n";
    j["speedup"] = ratio;
  }
  std::cout << "peak RSS " << j["peak_rss_mb"].get<double>() << " MB\n" << j.dump() << "\n";
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto b = std::make_shared<BenchArgs>();
  auto* bc = app.add_subcommand("bench", "Latency (min / median / p90 / p99), throughput, peak memory.\n"
                                         "  tq bench resnet18_int8.pt --input-shape 1,3,224,224 --vs resnet18.pt");
  bc->add_option("model", b->model, "TorchScript file")->required();
  bc->add_option("--input-shape", b->shape, "comma-separated input shape");
  bc->add_option("--threads", b->threads, "intra-op threads")->check(CLI::PositiveNumber);
  bc->add_option("--warmup", b->warmup, "untimed runs first")->check(CLI::NonNegativeNumber);
  bc->add_option("--iters", b->iters, "timed runs")->check(CLI::PositiveNumber);
  bc->add_option("--vs", b->vs, "a second model, timed interleaved with the first");
  bc->add_option("--engine", b->engine, "int8 engine")->check(CLI::IsMember(engines()));
  return {bc, [b] { return bench(*b); }};
}

}  // namespace tq::cli
