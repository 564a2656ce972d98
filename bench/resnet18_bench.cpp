// tq's half of bench/resnet18_bench.py: ResNet-18 from tq modules, random weights; times
// fuse + prepare + calibration (N batches) + convert, then fp32 and int8 latency at batch 1 and
// 16 (median after warm-up). Prints JSON. --int8-backends a,b converts one identically calibrated
// copy per int8 backend and times them interleaved in this process (backends.<name> in the JSON).
#include <ATen/ATen.h>
#include <torch/version.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "resnet18.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_backend.h"
#include "tq/quant/quantize.h"

namespace {
using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}
double median(std::vector<double> t) {
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
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
  return median(t);
}
// The int8 models, one per backend, timed in turn run by run: median ms each.
std::vector<double> interleaved_ms(std::vector<tq::bench::ResNet18>& models, const std::vector<std::string>& backends,
                                   const at::Tensor& x, int runs) {
  at::NoGradGuard no_grad;
  std::vector<std::vector<double>> t(models.size());
  for (int i = -3; i < runs; ++i) {
    for (size_t k = 0; k < models.size(); ++k) {
      tq::kernels::int8::ScopedInt8Backend scope(backends[k]);
      const auto t0 = clock_type::now();
      models[k]->forward(x);
      if (i >= 0) t[k].push_back(seconds_since(t0) * 1e3);
    }
  }
  std::vector<double> out;
  for (auto& v : t) out.push_back(median(v));
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ResNet-18 eager quantization timing"};
  int64_t batches = 32, batch_size = 16;
  int runs = 10;
  std::string engine = "onednn";
  std::vector<std::string> backends = {"libtorch-quantized"};
  app.add_option("--batches", batches, "calibration batches")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", batch_size, "calibration batch size")->check(CLI::PositiveNumber);
  app.add_option("--runs", runs, "latency runs")->check(CLI::PositiveNumber);
  app.add_option("--engine", engine, "quantized engine");
  app.add_option("--int8-backends", backends, "int8 backends to compare (comma-separated)")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  const int threads = tq::bench::configure_process();
  tq::kernels::int8::set_engine(engine);
  at::manual_seed(0);

  const auto x1 = at::randn({1, 3, 224, 224}), x16 = at::randn({16, 3, 224, 224});
  double fp32_b1 = 0, fp32_b16 = 0, prepare_s = 0, calibrate_s = 0, convert_s = 0;
  std::vector<tq::bench::ResNet18> models;
  for (const auto& name : backends) {
    tq::kernels::int8::find_backend(name);  // an unknown name fails here, before any work
    at::manual_seed(1);  // the same weights and calibration data for every copy
    tq::bench::ResNet18 model;
    model->eval();
    if (models.empty()) {
      fp32_b1 = median_ms(model, x1, runs);
      fp32_b16 = median_ms(model, x16, runs);
    }

    const auto t0 = clock_type::now();
    tq::quant::fuse_modules(*model, model->fusion_groups());
    tq::quant::prepare(*model, tq::quant::QConfigMapping().set_global(tq::quant::get_default_qconfig(engine)));
    prepare_s = seconds_since(t0);
    const auto t1 = clock_type::now();
    {
      at::NoGradGuard no_grad;
      for (int64_t b = 0; b < batches; ++b) model->forward(at::randn({batch_size, 3, 224, 224}));
    }
    calibrate_s = seconds_since(t1);
    const auto t2 = clock_type::now();
    {
      tq::kernels::int8::ScopedInt8Backend scope(name);  // convert packs the weights for this backend
      tq::quant::convert(*model);
    }
    convert_s = seconds_since(t2);
    models.push_back(model);
  }
  const auto int8_b1 = interleaved_ms(models, backends, x1, runs), int8_b16 = interleaved_ms(models, backends, x16, runs);

  nlohmann::json out = {{"threads", threads},           {"engine", engine},          {"prepare_s", prepare_s},
                        {"calibrate_s", calibrate_s},    {"convert_s", convert_s},     {"images", batches * batch_size},
                        {"fp32_ms_b1", fp32_b1},         {"fp32_ms_b16", fp32_b16},    {"int8_ms_b1", int8_b1[0]},
                        {"int8_ms_b16", int8_b16[0]},    {"libtorch", TORCH_VERSION}};
  at::Tensor first;
  for (size_t k = 0; k < models.size(); ++k) {
    at::NoGradGuard no_grad;
    tq::kernels::int8::ScopedInt8Backend scope(backends[k]);
    const auto y = models[k]->forward(x16);
    if (k == 0) first = y;
    out["backends"][backends[k]] = {{"int8_ms_b1", int8_b1[k]},
                                    {"int8_ms_b16", int8_b16[k]},
                                    {"max_abs_diff_from_first", (y - first).abs().max().item<double>()},
                                    {"top1_agreement_with_first",
                                     y.argmax(1).eq(first.argmax(1)).to(at::kDouble).mean().item<double>()}};
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
