#include "model_demo.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "engine_choice.h"
#include "fashion_cnn.h"
#include "progress.h"
#include "tq/kernels/int8.h"
#include "tq/quant/quantize.h"
#include "tq/serialize/state_dict.h"

namespace tq::apps {
namespace {

constexpr int64_t kBatch = 64;

void train(FashionCnn& model, const Dataset& data, int64_t batches, double lr, const std::string& label) {
  model->train();
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(lr));
  const int64_t n = data.images.size(0);
  const auto order = at::randperm(n);
  ProgressBar bar(label, batches);
  for (int64_t b = 0; b < batches; ++b) {
    const auto idx = order.narrow(0, (b * kBatch) % (n - kBatch), kBatch);
    const auto logits = model->forward(data.images.index_select(0, idx));
    const auto loss = at::nll_loss(at::log_softmax(logits, 1), data.labels.index_select(0, idx));
    adam.zero_grad();
    loss.backward();
    adam.step();
    bar.update(b + 1);
  }
  bar.finish();
  model->eval();
}

// Median milliseconds per forward of `batch` images (after warm-up).
double latency_ms(FashionCnn& model, const Dataset& data, int64_t batch, int64_t runs) {
  at::NoGradGuard no_grad;
  const auto x = data.images.narrow(0, 0, batch).contiguous();
  for (int i = 0; i < 10; ++i) model->forward(x);
  std::vector<double> t;
  for (int64_t r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    model->forward(x);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

void calibrate(FashionCnn& model, const Dataset& data, int64_t batches, const std::string& label) {
  at::NoGradGuard no_grad;
  model->eval();
  ProgressBar bar(label, batches);
  for (int64_t b = 0; b < batches; ++b) {
    model->forward(data.images.narrow(0, b * kBatch, kBatch));
    bar.update(b + 1);
  }
  bar.finish();
}

}  // namespace

nlohmann::json run_model_demo(const Dataset& train_set, const Dataset& test_set, const ModelDemoOptions& o) {
  std::string engine = o.engine;
  if (engine.empty()) {
    engine = use_preferred_engine();
  } else {
    kernels::int8::set_engine(engine);
  }
  std::filesystem::create_directories(o.out_dir);
  const std::string weights = o.out_dir + "/fashion_cnn_float.pt";

  at::manual_seed(0);
  FashionCnn float_model;
  if (std::filesystem::exists(weights)) {
    tq::serialize::load_state_dict_file(*float_model, weights);
    std::printf("loaded cached float weights from %s\n", weights.c_str());
  } else {
    const int64_t batches = o.epochs * (train_set.images.size(0) / kBatch);
    train(float_model, train_set, batches, 1e-3, "training fp32");
    tq::serialize::save_state_dict_file(*float_model, weights);
  }
  float_model->eval();

  // A fresh copy of the trained float model (the quantization below works in place).
  auto fresh = [&] { return load_fashion_cnn(weights); };

  nlohmann::json rows = nlohmann::json::array();
  auto record = [&](const std::string& variant, FashionCnn& m, const std::string& path) {
    const double acc = accuracy(m, test_set);
    const int64_t bytes = tq::quant::model_size_bytes(*m);
    const double l64 = latency_ms(m, test_set, 64, o.latency_runs);
    const double l1 = latency_ms(m, test_set, 1, o.latency_runs * 5);
    rows.push_back({{"variant", variant}, {"accuracy", acc}, {"size_bytes", bytes}, {"latency_ms_batch64", l64},
                    {"latency_ms_batch1", l1}, {"engine", path}});
  };

  // fp32 on its fastest path: oneDNN convolutions and, without them, ATen's im2col + OpenBLAS.
  {
    auto& ctx = at::globalContext();
    const bool mkldnn = ctx.userEnabledMkldnn();
    double best64 = 1e30, best1 = 1e30;
    std::string path64, path1;
    for (bool use_mkldnn : {true, false}) {
      ctx.setUserEnabledMkldnn(use_mkldnn);
      const double l64 = latency_ms(float_model, test_set, 64, o.latency_runs);
      const double l1 = latency_ms(float_model, test_set, 1, o.latency_runs * 5);
      const std::string name = use_mkldnn ? "onednn fp32" : "aten+openblas fp32";
      if (l64 < best64) best64 = l64, path64 = name;
      if (l1 < best1) best1 = l1, path1 = name;
    }
    ctx.setUserEnabledMkldnn(mkldnn);
    rows.push_back({{"variant", "fp32"}, {"accuracy", accuracy(float_model, test_set)},
                    {"size_bytes", tq::quant::model_size_bytes(*float_model)}, {"latency_ms_batch64", best64},
                    {"latency_ms_batch1", best1},
                    {"engine", path64 == path1 ? path64 : path64 + " (batch 64), " + path1 + " (batch 1)"}});
  }

  {
    auto m = fresh();
    tq::quant::fuse_modules(*m, FashionCnnImpl::fusion_groups());
    tq::quant::prepare(*m, tq::quant::QConfigMapping().set_global(
                           tq::quant::minmax_qconfig(qconfig_backend(engine))));
    calibrate(m, train_set, o.calibration_batches, "calibrating (MinMax)");
    tq::quant::convert(*m);
    record("static int8 (MinMax)", m, engine);
    tq::serialize::save_state_dict_file(*m, o.out_dir + "/fashion_cnn_int8_minmax.pt");
  }
  {
    auto m = fresh();
    tq::quant::fuse_modules(*m, FashionCnnImpl::fusion_groups());
    tq::quant::prepare(*m, tq::quant::QConfigMapping().set_global(
                           tq::quant::get_default_qconfig(qconfig_backend(engine))));
    calibrate(m, train_set, o.calibration_batches, "calibrating (Histogram)");
    tq::quant::convert(*m);
    record("static int8 (Histogram)", m, engine);
  }
  {
    auto m = fresh();
    tq::quant::quantize_dynamic(*m);
    record("dynamic int8 (Linear)", m, engine + " (Linear), fp32 conv");
  }
  {
    auto m = fresh();
    tq::quant::fuse_modules(*m, FashionCnnImpl::fusion_groups());
    m->train();
    tq::quant::prepare_qat(*m, tq::quant::QConfigMapping().set_global(
                               tq::quant::get_default_qat_qconfig(qconfig_backend(engine))));
    train(m, train_set, o.qat_batches, 1e-4, "QAT fine-tuning");
    tq::quant::convert(*m);
    record("QAT int8", m, engine);
  }
  return rows;
}

}  // namespace tq::apps
