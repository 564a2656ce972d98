// tq's half of bench/resnet18_bench.py: ResNet-18 from tq modules, random weights; times
// fuse + prepare + calibration (N batches) + convert, then fp32 and int8 latency at batch 1 and
// 16 (median after warm-up). Prints JSON.
#include <ATen/ATen.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "resnet18.h"
#include "tq/kernels/int8.h"
#include "tq/quant/quantize.h"

namespace {
using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}
double median_ms(tq::bench::ResNet18& m, const at::Tensor& x, int runs) {
  at::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) m->forward(x);
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = clock_type::now();
    m->forward(x);
    t.push_back(seconds_since(t0) * 1e3);
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ResNet-18 eager quantization timing"};
  int64_t batches = 32, batch_size = 16;
  int runs = 10;
  std::string engine = "onednn";
  app.add_option("--batches", batches, "calibration batches")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", batch_size, "calibration batch size")->check(CLI::PositiveNumber);
  app.add_option("--runs", runs, "latency runs")->check(CLI::PositiveNumber);
  app.add_option("--engine", engine, "quantized engine");
  CLI11_PARSE(app, argc, argv);
  const int threads = tq::bench::configure_process();
  tq::kernels::int8::set_engine(engine);
  at::manual_seed(0);

  tq::bench::ResNet18 model;
  model->eval();
  const auto x1 = at::randn({1, 3, 224, 224}), x16 = at::randn({16, 3, 224, 224});
  const double fp32_b1 = median_ms(model, x1, runs), fp32_b16 = median_ms(model, x16, runs);

  const auto t0 = clock_type::now();
  tq::quant::fuse_modules(*model, model->fusion_groups());
  tq::quant::prepare(*model, tq::quant::QConfigMapping().set_global(tq::quant::get_default_qconfig(engine)));
  const double prepare_s = seconds_since(t0);
  const auto t1 = clock_type::now();
  {
    at::NoGradGuard no_grad;
    for (int64_t b = 0; b < batches; ++b) model->forward(at::randn({batch_size, 3, 224, 224}));
  }
  const double calibrate_s = seconds_since(t1);
  const auto t2 = clock_type::now();
  tq::quant::convert(*model);
  const double convert_s = seconds_since(t2);
  const double int8_b1 = median_ms(model, x1, runs), int8_b16 = median_ms(model, x16, runs);

  nlohmann::json out = {{"threads", threads},        {"engine", engine},          {"prepare_s", prepare_s},
                        {"calibrate_s", calibrate_s}, {"convert_s", convert_s},     {"images", batches * batch_size},
                        {"fp32_ms_b1", fp32_b1},      {"fp32_ms_b16", fp32_b16},    {"int8_ms_b1", int8_b1},
                        {"int8_ms_b16", int8_b16}};
  std::cout << out.dump() << std::endl;
  return 0;
}
