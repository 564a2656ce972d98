// tq demo on real data (Fashion-MNIST): first every observer calibrated on training images, with
// the qparams each picks and the SQNR it gives on the test images (observers.json); then a CNN
// trained in C++ and quantized four ways, with accuracy, size and latency (results.json).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "idx_reader.h"
#include "model_demo.h"
#include "progress.h"
#include "tq/core/check.h"
#include "tq/numerics/fake_quantize.h"
#include "tq/observers/default_observers.h"

namespace obs = tq::observers;

namespace {

struct Variant {
  std::string name;
  std::string config;
  obs::ObserverFactory make;
  int64_t ch_axis = -1;  // per-channel fake quantization axis, or -1
};

double sqnr_db(const at::Tensor& x, const at::Tensor& xq) {
  const double signal = x.pow(2).sum().item<double>();
  const double noise = (x - xq).pow(2).sum().item<double>();
  return noise == 0 ? INFINITY : 10.0 * std::log10(signal / noise);
}

// Writes to a temporary file and renames it, so a reader never sees half a file.
void write_json(const nlohmann::json& j, const std::filesystem::path& path) {
  std::filesystem::create_directories(path.parent_path());
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp);
    TQ_CHECK(f.good(), "tq_demo", "cannot write '", tmp, "'");
    f << j.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tq demo: observers calibrated on Fashion-MNIST"};
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = "build/demo";
  int64_t batch_size = 64, calib_batches = 100;
  int threads = 2;
  std::string engine;
  app.add_option("--data", data_dir, "folder with Fashion-MNIST's gzipped IDX files")->check(CLI::ExistingDirectory);
  app.add_option("--out", out_dir, "where observers.json is written");
  app.add_option("--batch-size", batch_size, "calibration batch size")->check(CLI::PositiveNumber);
  app.add_option("--calibration-batches", calib_batches, "number of calibration batches")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "intra-op threads")->check(CLI::PositiveNumber);
  app.add_option("--engine", engine, "quantized engine (onednn, qnnpack, fbgemm, x86); default: onednn if present");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads);

  try {
    const auto train = tq::apps::load_fashion_mnist(data_dir, "train");
    const auto test = tq::apps::load_fashion_mnist(data_dir, "t10k");
    std::printf("Fashion-MNIST: %lld training and %lld test images; calibrating on %lld batches of %lld\n\n",
                static_cast<long long>(train.images.size(0)), static_cast<long long>(test.images.size(0)),
                static_cast<long long>(calib_batches), static_cast<long long>(batch_size));

    using tq::QDType;
    using tq::QScheme;
    std::vector<Variant> variants = {
        {"MinMaxObserver", "quint8 affine", obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions())},
        {"MinMaxObserver", "qint8 symmetric",
         obs::with_args<obs::MinMaxObserver>(
             obs::MinMaxObserverOptions().dtype(QDType::QInt8).qscheme(QScheme::PerTensorSymmetric))},
        {"MovingAverageMinMaxObserver", "quint8 affine, c=0.01",
         obs::with_args<obs::MovingAverageMinMaxObserver>(obs::MovingAverageMinMaxObserverOptions())},
        {"HistogramObserver", "quint8 affine",
         obs::with_args<obs::HistogramObserver>(obs::HistogramObserverOptions())},
        {"HistogramObserver", "quint8 affine, reduce_range",
         obs::with_args<obs::HistogramObserver>(obs::HistogramObserverOptions().reduce_range(true))},
        {"HistogramObserver", "4-bit [0, 15]",
         obs::with_args<obs::HistogramObserver>(obs::HistogramObserverOptions().quant_min(0).quant_max(15))},
        {"MinMaxObserver", "4-bit [0, 15]",
         obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions().quant_min(0).quant_max(15))},
        {"PerChannelMinMaxObserver", "quint8 affine, per image row",
         obs::with_args<obs::PerChannelMinMaxObserver>(obs::PerChannelMinMaxObserverOptions().ch_axis(2)), 2},
    };

    nlohmann::json results = nlohmann::json::array();
    std::printf("%-28s %-30s %12s %6s %10s %10s %9s %9s\n", "observer", "config", "scale", "zp", "clip_min",
                "clip_max", "SQNR dB", "calib ms");
    for (const auto& v : variants) {
      auto ob = v.make();
      tq::apps::ProgressBar bar("calibrating " + v.name, calib_batches);
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t b = 0; b < calib_batches; ++b) {
        ob->forward(train.images.narrow(0, (b * batch_size) % (train.images.size(0) - batch_size), batch_size));
        bar.update(b + 1);
      }
      auto qp = ob->calculate_qparams();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      bar.finish();
      auto* uniform = dynamic_cast<obs::UniformQuantizationObserverBase*>(ob.get());
      const int64_t qmin = uniform->quant_min(), qmax = uniform->quant_max();
      at::Tensor fq;
      if (v.ch_axis >= 0) {
        fq = tq::fake_quantize_per_channel_affine(test.images, qp.scale, qp.zero_point, v.ch_axis, qmin, qmax);
      } else {
        fq = tq::fake_quantize_per_tensor_affine(test.images, qp.scale, qp.zero_point, qmin, qmax);
      }
      const double sqnr = sqnr_db(test.images, fq);
      const double s0 = qp.scale[0].item<double>();
      const double z0 = qp.zero_point[0].item<double>();
      const double clip_min = (qmin - z0) * s0, clip_max = (qmax - z0) * s0;
      const bool per_channel = v.ch_axis >= 0;
      std::printf("%-28s %-30s %12.6g %6s %10.4f %10.4f %9.2f %9.1f\n", v.name.c_str(), v.config.c_str(), s0,
                  per_channel ? "[row]" : std::to_string(static_cast<int64_t>(z0)).c_str(), clip_min, clip_max, sqnr,
                  ms);
      results.push_back({{"observer", v.name},
                         {"config", v.config},
                         {"quant_min", qmin},
                         {"quant_max", qmax},
                         {"scale", std::vector<float>(qp.scale.data_ptr<float>(), qp.scale.data_ptr<float>() + qp.scale.numel())},
                         {"zero_point", qp.zero_point.to(at::kDouble).contiguous().data_ptr<double>()[0]},
                         {"sqnr_db", sqnr},
                         {"calibration_ms", ms}});
    }
    const auto out = std::filesystem::path(out_dir) / "observers.json";
    write_json({{"dataset", "fashion-mnist"},
                {"calibration_batches", calib_batches},
                {"batch_size", batch_size},
                {"threads", threads},
                {"results", results}},
               out);
    std::printf("\nwrote %s\n\n", out.c_str());

    tq::apps::ModelDemoOptions mo;
    mo.out_dir = out_dir;
    mo.engine = engine;
    const auto rows = tq::apps::run_model_demo(train, test, mo);
    std::printf("\nFashion-MNIST CNN, %d threads\n", threads);
    std::printf("%-26s %9s %12s %14s %13s  %s\n", "variant", "accuracy", "size bytes", "ms / batch 64",
                "ms / image", "engine");
    for (const auto& r : rows) {
      std::printf("%-26s %8.2f%% %12lld %14.3f %13.3f  %s\n", r.at("variant").get<std::string>().c_str(),
                  100.0 * r.at("accuracy").get<double>(), static_cast<long long>(r.at("size_bytes").get<int64_t>()),
                  r.at("latency_ms_batch64").get<double>(), r.at("latency_ms_batch1").get<double>(),
                  r.at("engine").get<std::string>().c_str());
    }
    const auto results_path = std::filesystem::path(out_dir) / "results.json";
    write_json(rows, results_path);
    std::printf("\nwrote %s\n", results_path.c_str());
  } catch (const std::exception& e) {
    std::cerr << "tq_demo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
