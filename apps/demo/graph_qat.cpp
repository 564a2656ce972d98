// Graph-mode QAT of a TorchScript model from C++ (the graph demo's ResNet-18 on Fashion-MNIST):
// fine-tunes it with fake quantization (W8A8 with PyTorch's default QAT fake quantizers, or LSQ
// at 4 or 2 bits), converts, and prints test accuracy. With --bench-iters, times one training
// step (forward, cross-entropy, backward, SGD) of the float model, of tq's QAT model and, given
// --fx-qat (PyTorch FX's prepare_qat_fx model of the same network, traced by
// tools/fx_qat_model.py), of PyTorch's, interleaved in this process.
#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>

#include "engine_choice.h"
#include "idx_reader.h"
#include "tq/core/check.h"
#include "tq/core/error_message.h"
#include "tq/fake_quant/learnable_fake_quantize.h"
#include "tq/graph/qat.h"
#include "tq/kernels/int8.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"
#include "tq/quant/qconfig_mapping.h"

namespace {

namespace fq = tq::fake_quant;
namespace obs = tq::observers;

// LSQ (LearnableFakeQuantize, gradient scaling) at `bits`: activations quint8 [0, 2^b - 1],
// weights per output channel, symmetric [-2^(b-1), 2^(b-1) - 1]; moving-average min/max observers
// set the first scales.
tq::nn::QConfig lsq_qconfig(int bits) {
  const int64_t amax = (1 << bits) - 1, wmin = -(1 << (bits - 1)), wmax = (1 << (bits - 1)) - 1;
  tq::nn::QConfig q;
  q.activation = fq::FakeQuantizeFactory([amax] {
    return std::make_shared<fq::LearnableFakeQuantize>(
        fq::LearnableFakeQuantizeOptions()
            .observer(obs::with_args<obs::MovingAverageMinMaxObserver>(
                obs::MovingAverageMinMaxObserverOptions().quant_min(0).quant_max(amax)))
            .quant_min(0)
            .quant_max(amax)
            .use_grad_scaling(true));
  });
  q.weight = fq::FakeQuantizeFactory([wmin, wmax] {
    return std::make_shared<fq::LearnableFakeQuantize>(
        fq::LearnableFakeQuantizeOptions()
            .observer(obs::with_args<obs::MovingAveragePerChannelMinMaxObserver>(
                obs::MovingAveragePerChannelMinMaxObserverOptions()
                    .dtype(tq::QDType::QInt8)
                    .qscheme(tq::QScheme::PerChannelSymmetric)
                    .quant_min(wmin)
                    .quant_max(wmax)))
            .quant_min(wmin)
            .quant_max(wmax)
            .channel_len(0)  // one scale per output channel, sized by the layer
            .use_grad_scaling(true));
  });
  q.name = "lsq " + std::to_string(bits) + "-bit";
  return q;
}

tq::graph::GraphQuantizeOptions options_for(const std::string& config, const std::string& engine) {
  auto options = tq::graph::GraphQuantizeOptions::for_backend_qat(tq::apps::qconfig_backend(engine));
  if (config == "w8a8" || config == "fp32") return options;
  TQ_CHECK(config == "lsq-w4a4" || config == "lsq-w2a2", "graph_qat", "unknown --config '", config,
           "' (fp32, w8a8, lsq-w4a4, lsq-w2a2)");
  options.mapping.set_global(lsq_qconfig(config == "lsq-w4a4" ? 4 : 2));
  // As LSQ does: the first layer (and its input) and the classifier stay at 8 bits.
  const auto eight = tq::quant::get_default_qat_qconfig(tq::apps::qconfig_backend(engine));
  options.mapping.set_module_name("conv1", eight).set_module_name("relu", eight).set_module_name("fc", eight);
  return options;
}

double accuracy(const std::function<at::Tensor(const at::Tensor&)>& forward, const tq::apps::Dataset& test,
                int64_t limit) {
  at::NoGradGuard no_grad;
  const int64_t n = std::min<int64_t>(limit, test.images.size(0));
  int64_t correct = 0;
  for (int64_t i = 0; i < n; i += 256) {
    const int64_t b = std::min<int64_t>(256, n - i);
    const auto logits = forward(test.images.narrow(0, i, b));
    correct += logits.argmax(1).eq(test.labels.narrow(0, i, b)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

std::vector<at::Tensor> parameters_of(const torch::jit::Module& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p);
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Graph-mode QAT of a TorchScript Fashion-MNIST model"};
  std::string data_dir = "/usr/share/datasets/fashion-mnist", model_path = "build/demo/resnet18_fashion.pt";
  std::string config = "w8a8", fx_qat;
  int64_t steps = 300, batch = 64, threads = 2, eval_limit = 10000, bench_iters = 0;
  double lr = 1e-4, freeze_at = 0.7;
  app.add_option("--model", model_path, "float TorchScript model (torch.jit.save)");
  app.add_option("--data", data_dir, "Fashion-MNIST IDX directory");
  app.add_option("--config", config, "w8a8 | lsq-w4a4 | lsq-w2a2 | fp32 (the float model fine-tuned alike, a baseline)");
  app.add_option("--steps", steps, "QAT steps");
  app.add_option("--batch", batch, "images per step");
  app.add_option("--lr", lr, "Adam learning rate");
  app.add_option("--freeze-at", freeze_at, "fraction of the steps after which observers and batch-norm statistics freeze");
  app.add_option("--threads", threads, "intra-op threads");
  app.add_option("--eval-limit", eval_limit, "test images evaluated");
  app.add_option("--bench-iters", bench_iters, "time this many training steps of each model instead of training");
  app.add_option("--fx-qat", fx_qat, "PyTorch FX's QAT model of the same network (tools/fx_qat_model.py), for --bench-iters");
  CLI11_PARSE(app, argc, argv);
  try {
    at::set_num_threads(static_cast<int>(threads));
    const std::string engine = tq::apps::use_preferred_engine();
    const auto options = options_for(config, engine);
    const auto train = tq::apps::load_fashion_mnist(data_dir, "train");

    if (bench_iters > 0) {
      at::manual_seed(0);
      const auto idx = at::randperm(train.images.size(0)).narrow(0, 0, batch);
      const auto x = train.images.index_select(0, idx), y = train.labels.index_select(0, idx);
      auto fp32 = tq::graph::load_torchscript(model_path);
      fp32.train();
      auto qat = tq::graph::prepare_qat(tq::graph::load_torchscript(model_path), options);
          std::vector<std::pair<std::string, std::function<at::Tensor(const at::Tensor&)>>> models;
      std::vector<std::vector<at::Tensor>> params;
      models.emplace_back("fp32 (LibTorch)", [&](const at::Tensor& in) { return fp32.forward({in}).toTensor(); });
      params.push_back(parameters_of(fp32));
      models.emplace_back("tq QAT", [&](const at::Tensor& in) { return qat.forward(in); });
      params.push_back(qat.parameters());
      torch::jit::Module fx;
      if (!fx_qat.empty()) {
        fx = torch::jit::load(fx_qat);
        fx.train();
        models.emplace_back("PyTorch FX QAT (traced)", [&](const at::Tensor& in) { return fx.forward({in}).toTensor(); });
        params.push_back(parameters_of(fx));
      }
      std::vector<torch::optim::SGD> optimizers;
      for (auto& p : params) optimizers.emplace_back(p, torch::optim::SGDOptions(1e-6).momentum(0.9));
      std::vector<std::vector<double>> ms(models.size());
      for (int64_t it = -3; it < bench_iters; ++it) {  // 3 warm-up rounds (LibTorch's executor profiles)
        for (size_t m = 0; m < models.size(); ++m) {
          const auto t0 = std::chrono::steady_clock::now();
          auto loss = torch::nn::functional::cross_entropy(models[m].second(x), y);
          optimizers[m].zero_grad();
          loss.backward();
          optimizers[m].step();
          const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          if (it >= 0) ms[m].push_back(t);
        }
      }
      std::printf("{\"batch\": %lld, \"threads\": %lld, \"iters\": %lld, \"config\": \"%s\"",
                  static_cast<long long>(batch), static_cast<long long>(threads), static_cast<long long>(bench_iters),
                  config.c_str());
      for (size_t m = 0; m < models.size(); ++m) {
        std::printf(", \"%s ms\": %.1f", models[m].first.c_str(), median(ms[m]));
      }
      std::printf(", \"tq QAT / fp32\": %.2f", median(ms[1]) / median(ms[0]));
      if (models.size() > 2) std::printf(", \"tq QAT / FX QAT\": %.2f", median(ms[1]) / median(ms[2]));
      std::printf("}\n");
      return 0;
    }

    const auto test = tq::apps::load_fashion_mnist(data_dir, "t10k");
    auto model = tq::graph::load_torchscript(model_path);
    model.eval();
    const double float_acc = accuracy([&](const at::Tensor& in) { return model.forward({in}).toTensor(); }, test, eval_limit);
    // fp32: the scripted model itself trains (LibTorch), the baseline QAT's fine-tuning is weighed against.
    const bool fp32 = config == "fp32";
    std::optional<tq::graph::QatModel> qat;
    if (fp32) {
      model.train();
    } else {
      qat = tq::graph::prepare_qat(model, options);  // works on its own copy
    }
    std::function<at::Tensor(const at::Tensor&)> forward = [&](const at::Tensor& in) {
      return fp32 ? model.forward({in}).toTensor() : qat->forward(in);
    };
    torch::optim::Adam adam(fp32 ? parameters_of(model) : qat->parameters(), torch::optim::AdamOptions(lr));
    at::manual_seed(0);
    const int64_t n = train.images.size(0);
    auto order = at::randperm(n);
    const bool lsq = config.rfind("lsq", 0) == 0;
    const auto freeze_step = static_cast<int64_t>(freeze_at * static_cast<double>(steps));
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; ++s) {
      // LSQ: the observers set the first scales, which then learn.
      if (lsq && s == 1) qat->enable_observer(false);
      if (s == freeze_step && qat) {
        qat->enable_observer(false);
        qat->freeze_bn_stats();
      }
      const int64_t start = (s * batch) % (n - batch + 1);
      if (s > 0 && start < batch) order = at::randperm(n);
      const auto idx = order.narrow(0, start, batch);
      auto loss = torch::nn::functional::cross_entropy(forward(train.images.index_select(0, idx)),
                                                       train.labels.index_select(0, idx));
      adam.zero_grad();
      loss.backward();
      adam.step();
      if (s % 50 == 0) std::fprintf(stderr, "graph_qat: step %lld, loss %.3f\n", static_cast<long long>(s), loss.item<double>());
    }
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (fp32) {
      model.eval();
    } else {
      qat->eval();
      qat->enable_observer(false);
    }
    const double trained_acc = accuracy(forward, test, eval_limit);
    std::printf("{\"model\": \"%s\", \"config\": \"%s\", \"steps\": %lld, \"batch\": %lld, \"fp32_accuracy\": %.4f, "
                "\"%s\": %.4f",
                model_path.c_str(), config.c_str(), static_cast<long long>(steps), static_cast<long long>(batch), float_acc,
                fp32 ? "fine_tuned_accuracy" : "fake_quant_accuracy", trained_acc);
    if (config == "w8a8") {  // the int8 engines run 8-bit activations; LSQ's 4 / 2 bits stay simulated
      auto int8 = qat->convert();
      std::printf(", \"int8_accuracy\": %.4f",
                  accuracy([&](const at::Tensor& in) { return int8.forward({in}).toTensor(); }, test, eval_limit));
    }
    std::printf(", \"train_seconds\": %.1f, \"engine\": \"%s\"}\n", train_s, engine.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graph_qat: %s\n", tq::error_message(e).c_str());
    return 1;
  }
}
