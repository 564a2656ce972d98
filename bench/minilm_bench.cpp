// all-MiniLM-L6-v2's latency (issue 24's speed table): the float TorchScript encoder against tq's
// quantized encoders and PyTorch's quantize_dynamic (its traced model), all in this one process and
// timed in interleaved rounds, at batch 1 and 16 with 128 tokens each.
//
//   tq_minilm_bench --dir DIR [--threads 2] [--rounds 5] [--iters 3] [--engine onednn] [--json FILE]
//
// DIR is what tools/trace_minilm.py writes: minilm.pt, tokens.pt, and minilm_pytorch_dynamic.pt
// (its row is left out, with a note, when that file is missing). The latency input is the one
// tools/minilm_anchors.py times: the first (longest) sentences, each one's real tokens repeated to
// 128, all attended. GPTQ and static int8 calibrate on every sixth sentence, as the tests do. Each
// row also reports the smallest cosine similarity of its batch-16 embeddings with fp32's (a fast
// model that computes garbage shows there).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tq/core/error_message.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"
#include "tq/quant/qconfig_mapping.h"

namespace {

constexpr int64_t kTokens = 128;

struct Inputs {
  at::Tensor ids, mask;
  std::vector<c10::IValue> args() const { return {ids, mask}; }
};

struct Row {
  std::string name;
  std::optional<torch::jit::Module> model;
  std::string error;
  double min_cosine = 0;
  std::vector<double> ms_batch1, ms_batch16;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

double run_ms(torch::jit::Module& m, const Inputs& in) {
  const auto t0 = std::chrono::steady_clock::now();
  m.forward(in.args());
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The first `rows` sentences, each one's real tokens repeated to kTokens, all attended.
Inputs latency_input(const at::Tensor& ids, const at::Tensor& lengths, int64_t rows) {
  std::vector<at::Tensor> out;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = lengths[r].item<int64_t>();
    out.push_back(ids[r].narrow(0, 0, n).repeat({kTokens / n + 1}).narrow(0, 0, kTokens));
  }
  auto stacked = at::stack(out).contiguous();
  return {stacked, at::ones_like(stacked)};
}

// Every sixth sentence in batches of 64, each cut to its longest row (the tests' calibration set).
std::vector<Inputs> calibration_batches(const at::Tensor& ids, const at::Tensor& mask) {
  const auto pick = at::arange(ids.size(0)).remainder(6) == 5;
  const auto rows = at::arange(ids.size(0)).masked_select(pick);
  const auto cal_ids = ids.index_select(0, rows), cal_mask = mask.index_select(0, rows);
  std::vector<Inputs> out;
  for (int64_t i = 0; i < cal_ids.size(0); i += 64) {
    const int64_t n = std::min<int64_t>(64, cal_ids.size(0) - i);
    const auto m = cal_mask.narrow(0, i, n);
    const int64_t length = m.sum(1).max().item<int64_t>();
    out.push_back({cal_ids.narrow(0, i, n).narrow(1, 0, length).contiguous(), m.narrow(1, 0, length).contiguous()});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"all-MiniLM-L6-v2: fp32, tq's quantized encoders and PyTorch's quantize_dynamic, timed in one process"};
  std::string dir, json_path, engine = "onednn";
  int threads = 2, rounds = 5, iters = 3;
  app.add_option("--dir", dir, "folder written by tools/trace_minilm.py")->required()->check(CLI::ExistingDirectory);
  app.add_option("--threads", threads, "intra-op threads")->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "interleaved rounds")->check(CLI::PositiveNumber);
  app.add_option("--iters", iters, "timed calls of each model per round")->check(CLI::PositiveNumber);
  app.add_option("--engine", engine, "int8 engine of tq's int8 models");
  app.add_option("--json", json_path, "also write the results here");
  CLI11_PARSE(app, argc, argv);

  at::set_num_threads(threads);
  tq::kernels::int8::set_engine(engine);
  at::NoGradGuard no_grad;
  auto tokens = torch::jit::load(dir + "/tokens.pt");
  const auto ids = tokens.attr("input_ids").toTensor(), mask = tokens.attr("attention_mask").toTensor();
  const auto lengths = tokens.attr("lengths").toTensor();
  const Inputs batch1 = latency_input(ids, lengths, 1), batch16 = latency_input(ids, lengths, 16);
  const auto calibration = calibration_batches(ids, mask);

  auto fp32 = tq::graph::load_torchscript(dir + "/minilm.pt");
  fp32.eval();
  using Make = std::function<torch::jit::Module()>;
  auto graph_mode = [&](std::function<tq::graph::GraphQuantizeOptions()> options, bool calibrate) -> Make {
    return [&fp32, &calibration, options, calibrate] {
      auto observed = tq::graph::prepare(fp32, options());
      if (calibrate) {
        for (const auto& b : calibration) observed.calibrate(b.args());
      }
      return observed.convert();
    };
  };
  auto with_global = [](tq::graph::GraphQuantizeOptions o, tq::nn::QConfig q) {
    o.mapping.set_global(std::move(q));
    return o;
  };
  const std::vector<std::pair<std::string, Make>> makers = {
      {"fp32 (TorchScript)", [&] { return fp32; }},
      {"PyTorch quantize_dynamic, Linear only (traced)",
       [&] {
         const auto path = dir + "/minilm_pytorch_dynamic.pt";
         if (!std::filesystem::exists(path)) throw std::runtime_error("no " + path + " (tools/trace_minilm.py writes it)");
         auto m = torch::jit::load(path);
         m.eval();
         return m;
       }},
      {"tq dynamic int8 (default_dynamic_qconfig)", graph_mode([] { return tq::graph::GraphQuantizeOptions::dynamic(); }, false)},
      {"tq dynamic int8, per-channel weights",
       graph_mode([&] { return with_global(tq::graph::GraphQuantizeOptions::dynamic(), tq::quant::per_channel_dynamic_qconfig()); },
                  false)},
      {"tq dynamic int8, per-token",
       graph_mode([&] { return with_global(tq::graph::GraphQuantizeOptions::dynamic(), tq::quant::per_token_dynamic_qconfig()); },
                  false)},
      {"tq static W8A8 (" + engine + " default qconfig)",
       graph_mode([engine] { return tq::graph::GraphQuantizeOptions::for_backend(engine); }, true)},
      {"tq static W8A8, Linear only (add, LayerNorm, softmax float)",
       graph_mode(
           [engine] {
             auto o = tq::graph::GraphQuantizeOptions::for_backend(engine);
             for (const char* op : {"add", "layer_norm", "softmax"}) o.mapping.set_object_type_none(op);
             return o;
           },
           true)},
      {"tq static W8A8, Linear only + int8 q k^T and P V",
       graph_mode(
           [engine] {
             auto o = tq::graph::GraphQuantizeOptions::for_backend(engine);
             for (const char* op : {"add", "layer_norm", "softmax"}) o.mapping.set_object_type_none(op);
             tq::graph::register_int8_matmul_patterns(o.patterns);
             return o;
           },
           true)},
      {"tq static W8A8, Linear only, float outputs, SmoothQuant 0.8",
       graph_mode(
           [engine] {
             auto o = tq::graph::GraphQuantizeOptions::for_backend(engine);
             for (const char* op : {"add", "layer_norm", "softmax"}) o.mapping.set_object_type_none(op);
             o.float_linear_outputs = true;
             o.smooth_quant = tq::graph::SmoothQuantOptions{0.8};
             return o;
           },
           true)},
      {"tq weight-only W8 g128",
       graph_mode([&] { return with_global(tq::graph::GraphQuantizeOptions::dynamic(), tq::quant::weight_only_qconfig(8, 128)); },
                  false)},
      {"tq weight-only W4 g128, round to nearest",
       graph_mode([&] { return with_global(tq::graph::GraphQuantizeOptions::dynamic(), tq::quant::weight_only_qconfig(4, 128)); },
                  false)},
      {"tq weight-only W4 g128, GPTQ act order",
       graph_mode(
           [&] { return with_global(tq::graph::GraphQuantizeOptions::dynamic(), tq::quant::weight_only_gptq_qconfig(4, 128)); },
           true)},
  };

  std::vector<Row> rows;
  const auto reference = fp32.forward(batch16.args()).toTensor();
  for (const auto& [name, make] : makers) {
    Row r{name};
    try {
      r.model = make();
      const auto out = r.model->forward(batch16.args()).toTensor();
      r.min_cosine = at::cosine_similarity(out, reference, 1).min().item<double>();
      r.model->forward(batch1.args());  // warm-up: the TorchScript executor profiles its first runs
      r.model->forward(batch16.args());
    } catch (const std::exception& e) {
      r.error = tq::error_message(e);
      r.model.reset();
    }
    std::cerr << "built: " << name << (r.error.empty() ? "" : " (failed: " + r.error + ")") << "\n";
    rows.push_back(std::move(r));
  }
  // Interleaved rounds: a change in the machine's load hits every row alike.
  for (int round = 0; round < rounds; ++round) {
    for (auto* in : {&batch16, &batch1}) {
      for (auto& r : rows) {
        if (!r.model) continue;
        for (int i = 0; i < iters; ++i) (in == &batch16 ? r.ms_batch16 : r.ms_batch1).push_back(run_ms(*r.model, *in));
      }
    }
  }

  const double fp32_16 = median(rows.front().ms_batch16), fp32_1 = median(rows.front().ms_batch1);
  std::printf("| model | min cosine vs fp32 (16x128) | ms, batch 1 | ms, batch 16 | speed vs fp32, batch 1 | batch 16 |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  nlohmann::json j = {{"threads", threads}, {"engine", engine}, {"tokens", kTokens}, {"rounds", rounds}, {"iters", iters}};
  for (const auto& r : rows) {
    if (!r.model) {
      std::printf("| %s | failed: %s | | | | |\n", r.name.c_str(), r.error.c_str());
      j["rows"].push_back({{"name", r.name}, {"error", r.error}});
      continue;
    }
    const double m1 = median(r.ms_batch1), m16 = median(r.ms_batch16);
    std::printf("| %s | %.4f | %.2f | %.1f | %.2fx | %.2fx |\n", r.name.c_str(), r.min_cosine, m1, m16, fp32_1 / m1,
                fp32_16 / m16);
    j["rows"].push_back({{"name", r.name}, {"min_cosine", r.min_cosine}, {"ms_batch1", m1}, {"ms_batch16", m16}});
  }
  if (!json_path.empty()) {
    {
      std::ofstream f(json_path + ".tmp");
      f << j.dump(2) << "\n";
    }
    std::filesystem::rename(json_path + ".tmp", json_path);
  }
  return 0;
}
