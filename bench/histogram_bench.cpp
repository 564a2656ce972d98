// tq's half of bench/histogram_observer_bench.py: the same seeded data as the Python side
// (LibTorch's CPU generator gives the same torch.randn stream as PyTorch for the same seed),
// HistogramObserver updates over every batch, then calculate_qparams; prints JSON.
#include <ATen/ATen.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "tq/observers/histogram_observer.h"

int main(int argc, char** argv) {
  CLI::App app{"HistogramObserver timing on seeded random batches"};
  int64_t seed = 0, batches = 32, bins = 2048;
  std::vector<int64_t> shape{32, 64, 56, 56};
  app.add_option("--seed", seed, "torch.manual_seed value")->required();
  app.add_option("--batches", batches, "number of calibration batches")->check(CLI::PositiveNumber);
  app.add_option("--bins", bins, "histogram bins")->check(CLI::PositiveNumber);
  app.add_option("--shape", shape, "batch shape")->expected(1, 8);
  CLI11_PARSE(app, argc, argv);
  const int threads = tq::bench::configure_process();

  at::manual_seed(seed);
  tq::observers::HistogramObserver ob(tq::observers::HistogramObserverOptions().bins(bins).reduce_range(true));
  using clock = std::chrono::steady_clock;
  double update_s = 0;
  for (int64_t b = 0; b < batches; ++b) {
    at::Tensor x = at::randn(shape);
    const auto t0 = clock::now();
    ob.forward(x);
    update_s += std::chrono::duration<double>(clock::now() - t0).count();
  }
  const auto t0 = clock::now();
  const auto qp = ob.calculate_qparams();
  const double qparams_s = std::chrono::duration<double>(clock::now() - t0).count();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  nlohmann::json out = {{"threads", threads},
                        {"update_s", update_s},
                        {"calculate_qparams_s", qparams_s},
                        {"scale", qp.scale.item<double>()},
                        {"zero_point", qp.zero_point.item<int64_t>()},
                        {"min_val", ob.min_val().item<double>()},
                        {"max_val", ob.max_val().item<double>()},
                        {"peak_rss_mb", usage.ru_maxrss / 1024.0}};
  std::cout << out.dump() << std::endl;
  return 0;
}
