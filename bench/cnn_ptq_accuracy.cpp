// The demo CNN's rows of the post-training accuracy table (docs/ACCURACY.md): the Fashion-MNIST
// CNN written with tq::nn (apps/demo), trained by `make demo`, quantized in eager mode with each
// method and bit width; rows {model, method, weight_bits, act_bits, accuracy, seconds} as JSON
// (seconds: calibration plus the algorithm, not the evaluation). bench/ptq_accuracy.py merges them.
//
//   build/bench/tq_cnn_ptq_accuracy --data /usr/share/datasets/fashion-mnist \
//       --weights build/demo/fashion_cnn_float.pt --out build/bench/cnn_ptq_accuracy.json
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "fashion_cnn.h"
#include "idx_reader.h"
#include "tq/kernels/int8.h"
#include "tq/quant/adaround.h"
#include "tq/quant/bias_correction.h"
#include "tq/quant/equalization.h"
#include "tq/quant/qconfig_spec.h"
#include "tq/quant/quantize.h"

namespace {


struct Run {
  std::string method;
  tq::quant::QConfigSpec spec;
  bool adaround = false, bias_correction = false, equalize = false;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"post-training accuracy of the demo's Fashion-MNIST CNN"};
  std::string data_dir, weights, out, engine = "onednn";
  int threads = 2;
  int64_t calib_images = 1024, batch = 64, iterations = 10000, samples = 1024;
  app.add_option("--data", data_dir, "folder with Fashion-MNIST's IDX files")->required()->check(CLI::ExistingDirectory);
  app.add_option("--weights", weights, "the trained float CNN (make demo's fashion_cnn_float.pt)")->required()->check(CLI::ExistingFile);
  app.add_option("--out", out, "JSON file to write")->required();
  app.add_option("--engine", engine, "int8 engine");
  app.add_option("--threads", threads, "intra-op threads")->check(CLI::PositiveNumber);
  app.add_option("--calib-images", calib_images, "training images used for calibration")->check(CLI::PositiveNumber);
  app.add_option("--adaround-iterations", iterations, "AdaRound iterations per layer")->check(CLI::PositiveNumber);
  app.add_option("--adaround-samples", samples, "samples AdaRound caches per layer")->check(CLI::PositiveNumber);
  std::vector<std::string> only;
  app.add_option("--only", only, "run only these methods (fp32 always)");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads);
  try {
    tq::kernels::int8::set_engine(engine);
    const auto train = tq::apps::load_fashion_mnist(data_dir, "train");
    const auto test = tq::apps::load_fashion_mnist(data_dir, "t10k");
    std::vector<at::Tensor> calibration;
    for (int64_t i = 0; i < calib_images; i += batch) {
      calibration.push_back(train.images.narrow(0, i, std::min(batch, calib_images - i)));
    }

    std::vector<Run> runs;
    auto spec = [](const std::string& act, int wb, int ab, const std::string& weights = "per-channel") {
      tq::quant::QConfigSpec s;
      s.activation = act;
      s.weights = weights;
      s.weight_bits = wb;
      s.activation_bits = ab;
      return s;
    };
    for (int wb : {8, 4, 3, 2}) runs.push_back({"nearest", spec("minmax", wb, 8)});
    for (int wb : {4, 3, 2}) {
      runs.push_back({"adaround", spec("minmax", wb, 8), true});
      runs.push_back({"adaround+bias_correction", spec("minmax", wb, 8), true, true});
      runs.push_back({"bias_correction", spec("minmax", wb, 8), false, true});
    }
    for (int ab : {8, 6, 4}) {
      for (const char* obs : {"minmax", "histogram", "entropy", "percentile", "mse"}) runs.push_back({obs, spec(obs, 8, ab)});
    }
    runs.push_back({"nearest (per-tensor)", spec("minmax", 8, 8, "per-tensor")});
    runs.push_back({"equalization (per-tensor)", spec("minmax", 8, 8, "per-tensor"), false, false, true});
    runs.push_back({"nearest (per-tensor)", spec("minmax", 4, 8, "per-tensor")});
    runs.push_back({"equalization (per-tensor)", spec("minmax", 4, 8, "per-tensor"), false, false, true});

    auto fresh = [&] { return tq::apps::load_fashion_cnn(weights); };
    nlohmann::json rows = nlohmann::json::array();
    {
      auto m = fresh();
      rows.push_back({{"model", "fashion_cnn"}, {"method", "fp32"}, {"weight_bits", 32}, {"act_bits", 32},
                      {"accuracy", 100.0 * tq::apps::accuracy(m, test)}, {"seconds", 0.0}});
    }
    for (const auto& r : runs) {
      if (!only.empty() && std::find(only.begin(), only.end(), r.method) == only.end()) continue;
      auto m = fresh();
      const auto t0 = std::chrono::steady_clock::now();
      tq::quant::fuse_modules(*m, tq::apps::FashionCnnImpl::fusion_groups());
      if (r.equalize) tq::quant::equalize(*m, {{"conv1", "conv2"}, {"fc1", "fc2"}});
      tq::quant::prepare(*m, tq::quant::QConfigMapping().set_global(tq::quant::make_qconfig(engine, r.spec)));
      {
        at::NoGradGuard no_grad;
        for (const auto& b : calibration) m->forward(b);
      }
      auto forward = [&](const at::Tensor& x) { return m->forward(x); };
      if (r.adaround) {
        const auto report = tq::quant::adaround(*m, forward, calibration,
                                                tq::ptq::AdaRoundOptions().iterations(iterations).num_samples(samples));
        std::cerr << report.to_string();
      }
      if (r.bias_correction) {
        tq::quant::correct_bias(*m, forward, calibration, tq::ptq::BiasCorrectionOptions().num_samples(std::min<int64_t>(512, calib_images)));
      }
      tq::quant::convert(*m);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double acc = 100.0 * tq::apps::accuracy(m, test);
      rows.push_back({{"model", "fashion_cnn"}, {"method", r.method}, {"weight_bits", r.spec.weight_bits},
                      {"act_bits", r.spec.activation_bits}, {"accuracy", acc}, {"seconds", seconds}});
      std::printf("fashion_cnn %s W%dA%d: accuracy %.2f%%, %.1f s\n", r.method.c_str(), r.spec.weight_bits,
                  r.spec.activation_bits, acc, seconds);
      std::fflush(stdout);
    }
    const nlohmann::json doc = {{"threads", threads}, {"engine", engine}, {"calib_images", calib_images},
                                {"adaround_iterations", iterations}, {"adaround_samples", samples}, {"rows", rows}};
    const std::string tmp = out + ".tmp";
    {
      std::ofstream f(tmp);
      if (!f) throw std::runtime_error("cannot write " + tmp);
      f << doc.dump(1) << "\n";
    }
    std::filesystem::rename(tmp, out);
  } catch (const std::exception& e) {
    std::cerr << "tq_cnn_ptq_accuracy: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
