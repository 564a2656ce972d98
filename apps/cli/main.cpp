// tq: quantize, inspect, benchmark and compare TorchScript models from the command line.
// Exit codes: 0 success, 1 usage error, 2 bad input file, 3 runtime failure.
#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/api/module.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data.h"
#include "sensitivity.h"
#include "tq/core/atomic_file.h"
#include "tq/core/error_message.h"
#include "progress.h"
#include "tq/export/onnx_qdq.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/graph/adaround.h"
#include "tq/graph/bias_correction.h"
#include "tq/graph/mixed_precision.h"
#include "tq/quant/qconfig_spec.h"

namespace {

namespace fs = std::filesystem;
using tq::cli::BadInput;
using clock_type = std::chrono::steady_clock;

// A usage problem found after parsing (paths, conflicting flags): exit code 1.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string clean(const std::exception& e) { return tq::error_message(e); }

torch::jit::Module load_model(const std::string& path) {
  try {
    return tq::graph::load_torchscript(path);
  } catch (const std::exception& e) {
    throw BadInput(clean(e));
  }
}

void check_output_path(const std::string& out, const std::vector<std::string>& inputs, bool force) {
  std::error_code ec;
  if (fs::is_directory(out, ec)) throw UsageError("output " + out + " is a directory");
  for (const auto& in : inputs) {
    if (fs::exists(out, ec) && fs::equivalent(out, in, ec)) throw UsageError("output " + out + " is the input model");
  }
  if (fs::exists(out, ec) && !force) throw UsageError("output " + out + " exists (use --force to replace it)");
  const auto parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) throw UsageError("no such directory: " + parent.string());
}

void write_json(const nlohmann::json& j, const std::string& path) {
  tq::write_atomically(path, "tq", [&](const std::string& tmp) {
    std::ofstream f(tmp);
    if (!f) throw std::runtime_error("cannot open " + tmp);
    f << j.dump(2) << "\n";
    f.close();
    if (!f) throw std::runtime_error("write failed");
  });
}

nlohmann::json summary_json(const tq::graph::Summary& s) {
  nlohmann::json nodes = nlohmann::json::array(), points = nlohmann::json::array();
  for (const auto& e : s.nodes) {
    nlohmann::json n = {{"op", e.op}, {"module", e.module_path}, {"quantized", e.quantized}};
    if (!e.handler.empty()) n["handler"] = e.handler;
    if (!e.why_float.empty()) n["why_float"] = e.why_float;
    if (e.has_qparams) n["qparams"] = {{"scale", e.qparams.scale}, {"zero_point", e.qparams.zero_point}};
    nodes.push_back(n);
  }
  for (const auto& p : s.points) {
    points.push_back({{"kind", p.kind}, {"op", p.op}, {"module", p.module_path}, {"scale", p.qparams.scale},
                      {"zero_point", p.qparams.zero_point}});
  }
  return {{"quantized_nodes", s.quantized_count()}, {"nodes", nodes}, {"quantization_points", points}};
}

at::Tensor first_tensor(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor();
  if (v.isTuple() && !v.toTupleRef().elements().empty()) return first_tensor(v.toTupleRef().elements()[0]);
  if (v.isList() && !v.toListRef().empty()) return first_tensor(v.toListRef()[0]);
  throw std::runtime_error("the model's output is not a tensor");
}

c10::IValue run(torch::jit::Module& m, const at::Tensor& x, const std::string& what) {
  try {
    return m.forward({x});
  } catch (const std::exception& e) {
    std::ostringstream s;
    s << what << ": the model failed on input of shape " << x.sizes() << ": " << clean(e);
    throw BadInput(s.str());
  }
}

// ----------------------------------------------------------------------------------------------

struct QuantizeArgs {
  std::string model, out, calib, mode = "static", engine = "onednn", observer = "histogram", report, qconfig_file;
  std::string weight_observer = "minmax";
  double percentile = 99.999;
  int weight_bits = 8, activation_bits = 8;
  bool adaround = false, bias_correction = false, equalize = false;
  double max_accuracy_drop = -1;  // < 0: no search
  std::string eval, eval_labels;
  int64_t eval_limit = 0;
  std::string sensitivity = "sqnr";
  int64_t adaround_iterations = 10000, adaround_samples = 0;
  std::vector<std::string> exclude;
  bool per_tensor = false, seed = false, reference = false, force = false;
  bool full_range = false;  // activations on [0, 255]: for CPUs with VNNI only
  std::string format = "auto";         // torchscript or onnx; auto: from the output's extension
  int64_t onnx_opset = 17;
  std::string onnx_profile = "u8s8";
  int64_t batches = 32, batch_size = 32;
  tq::cli::DataOptions data;
};

// --qconfig FILE.json:
//   {"global": {"activation": "histogram", "weights": "per-channel"},
//    "module_name": {"fc": null, "layer4": {"activation": "minmax"}},
//    "object_type": {"add": null}}
// null keeps that part float; missing fields take the command line's (or the engine's) defaults.
void apply_qconfig_file(const std::string& path, const std::string& engine, const tq::quant::QConfigSpec& defaults,
                        tq::quant::QConfigMapping& mapping) {
  std::ifstream f(path);
  if (!f) throw BadInput("no such file: " + path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw BadInput(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  auto parse = [&](const nlohmann::json& spec, const std::string& where) {
    if (!spec.is_object()) throw BadInput(path + ": " + where + " must be an object or null");
    tq::quant::QConfigSpec c = defaults;
    for (const auto& [key, value] : spec.items()) {
      if (key == "activation" && value.is_string()) {
        c.activation = value.get<std::string>();
      } else if (key == "weights" && value.is_string()) {
        c.weights = value.get<std::string>();
      } else if (key == "weight_bits" && value.is_number_integer()) {
        c.weight_bits = value.get<int>();
      } else if (key == "activation_bits" && value.is_number_integer()) {
        c.activation_bits = value.get<int>();
      } else {
        throw BadInput(path + ": " + where + ": unknown field '" + key +
                       "' (expected activation, weights, weight_bits, activation_bits)");
      }
    }
    try {
      return tq::quant::make_qconfig(engine, c);
    } catch (const std::invalid_argument& e) {
      throw BadInput(path + ": " + where + ": " + e.what());
    }
  };
  if (!j.is_object()) throw BadInput(path + ": expected a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (key == "global") {
      if (value.is_null()) throw BadInput(path + ": global cannot be null (use --exclude to keep parts float)");
      mapping.set_global(parse(value, "global"));
    } else if (key == "module_name" || key == "object_type") {
      if (!value.is_object()) throw BadInput(path + ": " + key + " must map names to qconfigs");
      for (const auto& [name, spec] : value.items()) {
        const bool module = key == "module_name";
        if (spec.is_null()) {
          module ? (void)mapping.set_module_name_none(name) : (void)mapping.set_object_type_none(name);
        } else {
          module ? (void)mapping.set_module_name(name, parse(spec, key + "." + name))
                 : (void)mapping.set_object_type(name, parse(spec, key + "." + name));
        }
      }
    } else {
      throw BadInput(path + ": unknown key '" + key + "' (expected global, module_name, object_type)");
    }
  }
}

// The tool's configuration for an engine: the engine's defaults (per-channel weights, histogram
// activations) with the activation range the tool chooses. The int8 model must not saturate
// wherever it is deployed, which is not where it is quantized: so [0, 127] on every x86 engine
// (PyTorch's x86 backend does the same) unless --full-range targets VNNI CPUs.
tq::graph::GraphQuantizeOptions tool_options(const std::string& engine, bool full_range) {
  tq::graph::GraphQuantizeOptions o;
  tq::quant::QConfigSpec c;
  c.reduce_range = tq::kernels::int8::choose_activation_range(engine, full_range).reduce_range;
  o.mapping.set_global(tq::quant::make_qconfig(engine, c));
  return o;
}

// The global QConfig the command line asks for.
tq::quant::QConfigSpec qconfig_choice(const QuantizeArgs& a) {
  tq::quant::QConfigSpec c;
  c.reduce_range = tq::kernels::int8::choose_activation_range(a.engine, a.full_range).reduce_range;
  c.activation = a.observer;
  c.weights = std::string(a.per_tensor ? "per-tensor" : "per-channel") + (a.weight_observer == "mse" ? "-mse" : "");
  c.percentile = a.percentile;
  c.weight_bits = a.weight_bits;
  c.activation_bits = a.activation_bits;
  return c;
}

// ONNX from --format onnx, or from an .onnx output with --format auto.
bool output_is_onnx(const QuantizeArgs& a) {
  if (a.format != "auto") return a.format == "onnx";
  const auto ext = fs::path(a.out).extension().string();
  return ext == ".onnx" || ext == ".ONNX";
}

int quantize(const QuantizeArgs& a) {
  if (a.seed && (a.mode != "static" || a.per_tensor || !a.exclude.empty() || !a.qconfig_file.empty())) {
    throw UsageError(
        "--seed-config is seed 004's fixed configuration: it takes no --mode, --per-tensor-weights, --exclude or --qconfig");
  }
  if (a.seed && (a.weight_bits != 8 || a.activation_bits != 8 || a.observer != "histogram" || a.weight_observer != "minmax")) {
    throw UsageError("--seed-config has its own observers and 8-bit ranges: it takes no bits or observer options");
  }
  if (a.mode == "dynamic" && !a.qconfig_file.empty()) throw UsageError("--qconfig applies to --mode static");
  if (a.full_range && (a.mode != "static" || a.seed || a.activation_bits != 8)) {
    throw UsageError("--full-range applies to --mode static with 8-bit activations (without --seed-config)");
  }
  const bool search = a.max_accuracy_drop >= 0;
  if (search && (a.eval.empty() || a.mode != "static" || a.seed || a.adaround || a.bias_correction)) {
    throw UsageError("--max-accuracy-drop needs --eval DATA with labels and --mode static (without --seed-config, "
                     "--adaround or --bias-correction)");
  }
  if (!search && !a.eval.empty()) throw UsageError("--eval is for --max-accuracy-drop");
  if (a.mode == "dynamic" && (a.adaround || a.bias_correction || a.equalize)) {
    throw UsageError("--adaround, --bias-correction and --equalize apply to --mode static");
  }
  if (a.mode == "static" && a.calib.empty()) throw UsageError("--mode static needs --calib DATA");
  const bool onnx = output_is_onnx(a);
  if (onnx && (a.mode != "static" || a.reference || search)) {
    throw UsageError("ONNX output (" + a.out + ") is the QDQ form of a static int8 model: it takes no --mode dynamic, "
                     "--reference or --max-accuracy-drop");
  }
  if (onnx && a.onnx_opset < 13) {
    throw UsageError("--onnx-opset " + std::to_string(a.onnx_opset) + " is too old: per-channel DequantizeLinear needs 13");
  }
  check_output_path(a.out, {a.model}, a.force);
  if (!a.report.empty()) check_output_path(a.report, {a.model}, a.force);
  tq::kernels::int8::set_engine(a.seed ? "qnnpack" : a.engine);
  auto model = load_model(a.model);
  tq::graph::GraphQuantizeOptions options;
  if (a.seed) {
    options = tq::graph::GraphQuantizeOptions::seed();
  } else if (a.mode == "dynamic") {
    options = tq::graph::GraphQuantizeOptions::dynamic();
  } else {
    options = tool_options(a.engine, a.full_range);
    const tq::quant::QConfigSpec c = qconfig_choice(a);
    options.mapping.set_global(tq::quant::make_qconfig(a.engine, c));
    if (!a.qconfig_file.empty()) apply_qconfig_file(a.qconfig_file, a.engine, c, options.mapping);
    options.equalize = a.equalize;
  }
  // --exclude takes a module's qualified name, or an operator ("add", "aten::cat").
  for (const auto& name : a.exclude) {
    bool is_module = false;
    for (const auto& m : model.named_modules()) is_module |= m.name == name;
    if (is_module) {
      options.mapping.set_module_name_none(name);
    } else {
      options.mapping.set_object_type_none(name);
    }
  }
  tq::graph::ObservedModel observed = [&] {
    try {
      return tq::graph::prepare(model, options);
    } catch (const c10::Error& e) {
      const std::string msg = clean(e);
      if (msg.find("qconfig mapping names") != std::string::npos) throw UsageError(msg);
      throw;
    }
  }();
  tq::graph::AdaRoundReport adaround_report;
  tq::graph::BiasCorrectionReport bias_report;
  std::vector<at::Tensor> bs;  // calibration batches
  if (!a.calib.empty() && a.mode == "static") {
    const auto samples = tq::cli::load_samples(a.calib, a.data);
    bs = tq::cli::batches(samples.inputs, a.batch_size, a.batches);
    int64_t have = 0;
    for (const auto& b : bs) have += b.size(0);
    tq::apps::ProgressBar bar("calibrating", static_cast<int64_t>(bs.size()));
    for (size_t i = 0; i < bs.size(); ++i) {
      try {
        observed.calibrate(bs[i]);
      } catch (const std::exception& e) {
        throw BadInput(a.calib + ": " + clean(e));
      }
      bar.update(static_cast<int64_t>(i) + 1);
    }
    bar.finish();
    if (samples.skipped > 0) std::cerr << "tq: skipped " << samples.skipped << " unreadable images\n";
    if (a.adaround) {
      // By default every calibration sample, up to AIMET's 1024; batches of 32 or fewer.
      const int64_t n = a.adaround_samples > 0 ? a.adaround_samples : std::min<int64_t>(have, 1024);
      const auto o = tq::ptq::AdaRoundOptions()
                         .iterations(a.adaround_iterations)
                         .num_samples(n)
                         .batch_size(std::min<int64_t>(32, n));
      try {
        adaround_report = tq::graph::adaround(observed, bs, o);
      } catch (const c10::Error& e) {
        throw BadInput(a.calib + ": " + clean(e));
      }
      std::cout << adaround_report.to_string();
    }
    if (a.bias_correction) {
      try {
        bias_report = tq::graph::correct_bias(observed, bs,
                                              tq::graph::BiasCorrectionOptions().num_samples(std::min<int64_t>(have, 512)));
      } catch (const c10::Error& e) {
        throw BadInput(a.calib + ": " + clean(e));
      }
      std::cout << bias_report.to_string();
    }
  }
  torch::jit::Module int8;
  tq::graph::MixedPrecisionResult searched;
  if (search) {
    auto eval_options = a.data;
    eval_options.labels = a.eval_labels;
    eval_options.limit = a.eval_limit;
    const auto eval = tq::cli::load_samples(a.eval, eval_options);
    if (!eval.labels.defined()) throw BadInput(a.eval + ": --max-accuracy-drop needs labels (--eval-labels, or class folders)");
    const auto eval_batches = tq::cli::batches(eval.inputs, 256, 0);
    tq::graph::MixedPrecisionOptions mp;
    mp.max_drop = a.max_accuracy_drop;
    mp.ranking = a.sensitivity == "metric" ? tq::graph::SensitivityRanking::Metric : tq::graph::SensitivityRanking::OutputSqnr;
    const tq::quant::QConfigSpec aggressive = qconfig_choice(a);
    tq::quant::QConfigSpec eight = aggressive;
    eight.weight_bits = eight.activation_bits = 8;
    auto name = [](const tq::quant::QConfigSpec& c) { return "W" + std::to_string(c.weight_bits) + "A" + std::to_string(c.activation_bits); };
    mp.levels.push_back({name(aggressive), tq::quant::make_qconfig(a.engine, aggressive)});
    if (a.weight_bits != 8 || a.activation_bits != 8) mp.levels.push_back({name(eight), tq::quant::make_qconfig(a.engine, eight)});
    mp.levels.push_back({"float", std::nullopt});
    const auto& labels = eval.labels;
    auto accuracy = [&](torch::jit::Module& m) {
      int64_t correct = 0, seen = 0;
      for (const auto& b : eval_batches) {
        auto out = m.forward({b});
        while (out.isTuple()) out = out.toTupleRef().elements()[0];
        correct += out.toTensor().argmax(1).eq(labels.narrow(0, seen, b.size(0))).sum().item<int64_t>();
        seen += b.size(0);
      }
      return 100.0 * static_cast<double>(correct) / static_cast<double>(seen);
    };
    searched = tq::graph::search_mixed_precision(model, options, bs, accuracy, mp);
    std::cout << searched.to_string();
    int8 = searched.model;
  } else if (!onnx) {
    int8 = observed.convert(a.reference);
  }
  if (onnx) {
    const auto profile = a.onnx_profile == "s8s8" ? tq::onnx::QdqProfile::kS8S8 : tq::onnx::QdqProfile::kU8S8;
    std::vector<int64_t> shape(bs.at(0).sizes().begin(), bs.at(0).sizes().end());
    const auto exported = tq::onnx::export_qdq(
        observed, a.out, tq::onnx::ExportOptions().input_shapes({shape}).opset(a.onnx_opset).profile(profile));
    std::cout << exported.to_string();
  } else {
    tq::graph::save_torchscript(int8, a.out);
  }
  const auto summary = observed.summary();
  const auto range = tq::kernels::int8::choose_activation_range(a.seed ? "qnnpack" : a.engine, a.full_range);
  const bool static_int8 = a.mode == "static";
  std::cout << summary.to_string();
  if (static_int8) std::cout << "activation range: " << range.why << "\n";
  std::cout << "wrote " << a.out << "\n";
  if (!a.report.empty()) {
    auto j = summary_json(summary);
    j["model"] = a.model;
    j["output"] = a.out;
    j["engine"] = a.seed ? "qnnpack" : a.engine;
    j["mode"] = a.seed ? "seed" : a.mode;
    j["equalized"] = summary.equalized;
    if (static_int8) {
      j["activation_range"] = {{"reduce_range", range.reduce_range}, {"why", range.why},
                               {"full_range_layers", summary.full_range_layers}};
    }
    if (search) {
      auto& m = j["mixed_precision"];
      m["float_accuracy"] = searched.float_metric;
      m["accuracy"] = searched.metric;
      m["met"] = searched.met;
      m["evaluations"] = searched.evaluations;
      m["layers"] = searched.layer_levels;
      m["sensitivity_order"] = searched.layers;
      m["ranking"] = a.sensitivity;
    }
    if (a.bias_correction) {
      auto& r = j["bias_correction"];
      r["samples"] = bias_report.samples;
      r["seconds"] = bias_report.seconds;
      r["skipped"] = bias_report.skipped;
      for (const auto& l : bias_report.layers) {
        r["layers"].push_back({{"layer", l.layer}, {"op", l.op}, {"mean_abs_shift", l.mean_abs_shift},
                               {"max_abs_shift", l.max_abs_shift}});
      }
    }
    if (a.adaround) {
      auto& r = j["adaround"];
      r["samples"] = adaround_report.samples;
      r["seconds"] = adaround_report.seconds;
      r["skipped"] = adaround_report.skipped;
      for (const auto& l : adaround_report.layers) {
        r["layers"].push_back({{"layer", l.layer}, {"op", l.op}, {"weights", l.weights}, {"changed", l.changed},
                               {"loss_nearest", l.loss_nearest}, {"loss_adaround", l.loss_adaround},
                               {"seconds", l.seconds}});
      }
    }
    write_json(j, a.report);
  }
  return 0;
}

int inspect(const std::string& path, const std::string& engine) {
  auto model = load_model(path);
  int64_t params = 0, bytes = 0;
  for (const auto& p : model.named_parameters()) {
    params += p.value.numel();
    bytes += p.value.numel() * static_cast<int64_t>(p.value.element_size());
  }
  for (const auto& b : model.named_buffers()) bytes += b.value.numel() * static_cast<int64_t>(b.value.element_size());
  std::map<std::string, int> ops;
  for (auto* n : model.get_method("forward").graph()->nodes()) ops[n->kind().toQualString()]++;
  std::cout << path << ": " << params << " parameters, " << bytes << " bytes of parameters and buffers\n";
  tq::kernels::int8::set_engine(engine);
  auto observed = tq::graph::prepare(model, tool_options(engine, false));
  const auto summary = observed.summary();
  std::map<std::string, int> ops_frozen;
  for (const auto& e : summary.nodes) ops_frozen[e.op]++;
  std::cout << "operators (frozen forward graph):\n";
  for (const auto& [op, count] : ops_frozen) std::cout << "  " << op << " x" << count << "\n";
  std::map<std::string, int> patterns;
  for (const auto& e : summary.nodes) {
    if (e.quantized) patterns[e.handler + " " + e.pattern]++;
  }
  std::cout << "patterns that match (" << engine << " defaults):\n";
  for (const auto& [p, count] : patterns) std::cout << "  " << p << ": " << count << " nodes\n";
  std::map<std::string, int> left;
  for (const auto& e : summary.nodes) {
    if (!e.quantized) left[e.op + (e.why_float.empty() ? "" : " (" + e.why_float + ")")]++;
  }
  std::cout << "would stay float:\n";
  for (const auto& [p, count] : left) std::cout << "  " << p << " x" << count << "\n";
  return 0;
}

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
  tq::kernels::int8::set_engine(a.engine);
  std::vector<torch::jit::Module> models{load_model(a.model)};
  if (!a.vs.empty()) models.push_back(load_model(a.vs));
  at::NoGradGuard no_grad;
  const auto x = at::randn(shape);
  for (auto& m : models) {
    for (int i = 0; i < a.warmup; ++i) run(m, x, "bench");
  }
  std::vector<std::vector<double>> times(models.size());
  tq::apps::ProgressBar bar("benchmarking", a.iters);
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

struct CompareArgs {
  std::string float_model, quant_model, data, engine = "onednn", report, plot;
  int64_t batch_size = 32, batches = 0;
  bool sensitivity = false, per_layer = false;
  tq::cli::DataOptions data_options;
};

int compare(const CompareArgs& a) {
  tq::kernels::int8::set_engine(a.engine);
  auto fm = load_model(a.float_model);
  auto qm = load_model(a.quant_model);
  const auto samples = tq::cli::load_samples(a.data, a.data_options);
  const auto bs = tq::cli::batches(samples.inputs, a.batch_size, a.batches);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> fo, qo;
  tq::apps::ProgressBar bar("comparing", static_cast<int64_t>(bs.size()));
  for (size_t i = 0; i < bs.size(); ++i) {
    fo.push_back(first_tensor(run(fm, bs[i], a.float_model)));
    qo.push_back(first_tensor(run(qm, bs[i], a.quant_model)));
    bar.update(static_cast<int64_t>(i) + 1);
  }
  bar.finish();
  const auto f = at::cat(fo), q = at::cat(qo);
  if (!f.sizes().equals(q.sizes())) throw BadInput("the two models' outputs have different shapes");
  nlohmann::json j = {{"float_model", a.float_model}, {"quantized_model", a.quant_model}, {"samples", f.size(0)},
                      {"output_sqnr_db", tq::cli::sqnr_db(f, q)}};
  std::cout << "samples " << f.size(0) << ", output SQNR " << j["output_sqnr_db"].get<double>() << " dB";
  if (f.dim() == 2) {
    const auto ft = f.argmax(1), qt = q.argmax(1);
    j["top1_agreement"] = ft.eq(qt).to(at::kDouble).mean().item<double>();
    std::cout << ", top-1 agreement " << 100 * j["top1_agreement"].get<double>() << "%";
    if (samples.labels.defined()) {
      const auto labels = samples.labels.narrow(0, 0, f.size(0));
      j["float_accuracy"] = ft.eq(labels).to(at::kDouble).mean().item<double>();
      j["quantized_accuracy"] = qt.eq(labels).to(at::kDouble).mean().item<double>();
      std::cout << ", accuracy " << 100 * j["float_accuracy"].get<double>() << "% float, "
                << 100 * j["quantized_accuracy"].get<double>() << "% quantized";
    }
  }
  std::cout << "\n";
  if (a.per_layer) {
    // Numeric-Suite style: each quantized layer's output in both models (the int8 model made by
    // tq from this float model with the engine's defaults).
    const auto layers = tq::graph::compare_layers(fm, qm, tool_options(a.engine, false), bs);
    if (layers.empty()) {
      throw BadInput(a.quant_model + ": no layer of it matches the float model's (was it made by tq from " +
                     a.float_model + "?)");
    }
    nlohmann::json rows = nlohmann::json::array();
    std::vector<std::pair<std::string, double>> bars;
    std::cout << "per-layer SQNR (each quantized layer's output, int8 vs float):\n";
    for (const auto& l : layers) {
      std::cout << "  " << l.layer << ": " << l.sqnr_db << " dB\n";
      rows.push_back({{"layer", l.layer}, {"sqnr_db", l.sqnr_db}});
      bars.emplace_back(l.layer, l.sqnr_db);
    }
    j["per_layer"] = rows;
    std::sort(bars.begin(), bars.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
    if (!a.plot.empty()) {
      tq::cli::write_layer_svg("SQNR (dB) of each quantized layer's output, int8 vs float, lowest first", bars, a.plot);
      std::cout << "wrote " << a.plot << "\n";
    }
  }
  if (a.sensitivity) {
    // Calibrate each single-layer model on the first batches, evaluate on the same data.
    const std::vector<at::Tensor> calib(bs.begin(), bs.begin() + std::min<size_t>(bs.size(), 8));
    const auto layers = tq::cli::layer_sensitivity(fm, tool_options(a.engine, false), calib, bs);
    nlohmann::json rows = nlohmann::json::array();
    std::cout << "layers by sensitivity (output SQNR with that layer alone quantized):\n";
    for (const auto& l : layers) {
      std::cout << "  " << l.layer << " (" << l.op << "): " << l.output_sqnr_db << " dB\n";
      rows.push_back({{"layer", l.layer}, {"op", l.op}, {"output_sqnr_db", l.output_sqnr_db}});
    }
    j["sensitivity"] = rows;
    if (!a.plot.empty() && !a.per_layer) {
      std::vector<std::pair<std::string, double>> bars;
      for (const auto& l : layers) bars.emplace_back(l.layer, l.output_sqnr_db);
      tq::cli::write_layer_svg("Output SQNR (dB) with one layer quantized, most sensitive first", bars, a.plot);
      std::cout << "wrote " << a.plot << "\n";
    }
  }
  if (!a.report.empty()) write_json(j, a.report);
  return 0;
}

void add_data_options(CLI::App* cmd, tq::cli::DataOptions& d) {
  cmd->add_option("--labels", d.labels, "IDX labels file (image folders give labels by sub-folder)");
  cmd->add_option("--resize", d.resize, "images: resize the shorter side to this")->check(CLI::NonNegativeNumber);
  cmd->add_option("--center-crop", d.center_crop, "images: square center crop")->check(CLI::NonNegativeNumber);
  cmd->add_option("--channels", d.channels, "images: 1 (grey) or 3 (RGB)")->check(CLI::IsMember({1, 3}));
  cmd->add_option("--mean", d.mean, "per-channel mean (images: ImageNet's by default)");
  cmd->add_option("--std", d.std, "per-channel std (images: ImageNet's by default)");
  cmd->add_flag("--normalize-idx", d.normalize_idx, "IDX: apply --mean / --std after scaling to [0, 1]");
  cmd->add_flag("--skip-bad", d.skip_bad, "skip unreadable images (counted) instead of failing");
  cmd->add_option("--limit", d.limit, "use at most this many samples")->check(CLI::NonNegativeNumber);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tq: quantize, inspect, benchmark and compare TorchScript models (PyTorch's quantization in C++)"};
  app.require_subcommand(1);
  app.footer("Exit codes: 0 success, 1 usage error, 2 bad input file, 3 runtime failure.");
  const std::vector<std::string> engines = {"onednn", "qnnpack", "x86", "fbgemm"};

  QuantizeArgs q;
  auto* qc = app.add_subcommand("quantize", "Quantize a TorchScript model to int8 TorchScript.\n"
                                            "  tq quantize resnet18.pt -o resnet18_int8.pt --calib images/ --resize 256 --center-crop 224");
  qc->add_option("model", q.model, "TorchScript file (torch.jit.save)")->required();
  qc->add_option("-o,--output", q.out, "where to write the int8 model (.onnx: ONNX QDQ for ONNX Runtime)")->required();
  qc->add_option("--format", q.format, "torchscript or onnx (default: from the output's extension)")
      ->check(CLI::IsMember({"auto", "torchscript", "onnx"}));
  qc->add_option("--onnx-opset", q.onnx_opset, "ONNX opset of an ONNX output (13 or later; default 17)");
  qc->add_option("--onnx-profile", q.onnx_profile, "ONNX activations: u8s8 (uint8, tq's own numbers) or s8s8 "
                 "(int8, ONNX Runtime's recommended form; the same values)")
      ->check(CLI::IsMember({"u8s8", "s8s8"}));
  qc->add_option("--calib", q.calib, "calibration data: .pt, IDX file or image directory");
  qc->add_option("--mode", q.mode, "static (calibrated) or dynamic (Linear, Embedding)")
      ->check(CLI::IsMember({"static", "dynamic"}));
  qc->add_option("--engine", q.engine, "int8 engine")->check(CLI::IsMember(engines));
  qc->add_option("--activation-observer", q.observer,
                 "histogram (PyTorch's default), minmax, moving-average, entropy (TensorRT's KL divergence), "
                 "percentile (ONNX Runtime's), mse")
      ->check(CLI::IsMember({"histogram", "minmax", "moving-average", "entropy", "percentile", "mse"}));
  qc->add_option("--percentile", q.percentile, "for --activation-observer percentile (default 99.999)")
      ->check(CLI::Range(1e-9, 100.0));
  qc->add_option("--weight-observer", q.weight_observer, "minmax (PyTorch's default) or mse (per channel: the "
                 "fraction of each channel's range with the least squared error)")
      ->check(CLI::IsMember({"minmax", "mse"}));
  qc->add_option("--weight-bits", q.weight_bits, "weight bits, 2 to 8 (symmetric range; stored as int8)")
      ->check(CLI::Range(2, 8));
  qc->add_option("--activation-bits", q.activation_bits, "activation bits, 2 to 8 (stored as uint8)")
      ->check(CLI::Range(2, 8));
  qc->add_flag("--adaround", q.adaround, "learn each conv / linear layer's weight rounding (AdaRound) on the "
               "calibration data after calibrating");
  qc->add_option("--max-accuracy-drop", q.max_accuracy_drop,
                 "mixed precision: raise the most sensitive layers from --weight-bits / --activation-bits to 8 bits, "
                 "then float, until top-1 accuracy on --eval is within this many points of the float model's")
      ->check(CLI::Range(0.0, 100.0));
  qc->add_option("--eval", q.eval, "labelled evaluation data for --max-accuracy-drop (same formats as --calib)");
  qc->add_option("--eval-labels", q.eval_labels, "IDX labels for --eval");
  qc->add_option("--eval-limit", q.eval_limit, "at most this many evaluation samples (0: all)");
  qc->add_option("--sensitivity", q.sensitivity, "how --max-accuracy-drop ranks layers: sqnr (each layer's output "
                 "SQNR, no evaluation) or metric (accuracy gained by that layer alone in float, one evaluation each)")
      ->check(CLI::IsMember({"sqnr", "metric"}));
  qc->add_flag("--equalize", q.equalize, "cross-layer equalization of conv -> (ReLU / ReLU6) -> conv pairs before "
               "calibrating (for per-tensor weights; ReLU6 between them becomes ReLU)");
  qc->add_flag("--bias-correction", q.bias_correction, "take each conv / linear layer's mean output shift from "
               "quantization out of its bias (after --adaround when both are given)");
  qc->add_option("--adaround-iterations", q.adaround_iterations, "AdaRound iterations per layer (default 10000)")
      ->check(CLI::PositiveNumber);
  qc->add_option("--adaround-samples", q.adaround_samples, "calibration samples AdaRound caches (default: all, at most 1024)")
      ->check(CLI::PositiveNumber);
  qc->add_flag("--per-tensor-weights", q.per_tensor, "per-tensor weight qparams (default: per channel)");
  qc->add_flag("--full-range", q.full_range,
               "8-bit activations on [0, 255] rather than [0, 127], for CPUs with VNNI only: x86 int8 kernels without "
               "VNNI saturate on them (the default range is right on every CPU)");
  qc->add_option("--exclude", q.exclude, "keep a module (qualified name, e.g. layer1.0.conv2) or an operator (add) float");
  qc->add_option("--qconfig", q.qconfig_file,
                 "JSON: {\"global\": {\"activation\": \"minmax\", \"weights\": \"per-tensor\"}, "
                 "\"module_name\": {\"fc\": null}, \"object_type\": {\"add\": null}}");
  qc->add_flag("--seed-config", q.seed, "seed 004's own patterns and qparams (engine qnnpack)");
  qc->add_flag("--reference", q.reference, "write the reference form (float ops between quantize / dequantize)");
  qc->add_option("--batches", q.batches, "calibration batches")->check(CLI::PositiveNumber);
  qc->add_option("--batch-size", q.batch_size, "calibration batch size")->check(CLI::PositiveNumber);
  qc->add_option("--report", q.report, "write the summary as JSON");
  qc->add_flag("--force", q.force, "replace existing output files");
  add_data_options(qc, q.data);

  std::string inspect_model, inspect_engine = "onednn";
  auto* ic = app.add_subcommand("inspect", "Operators, matching patterns, what would stay float and why.\n"
                                           "  tq inspect resnet18.pt");
  ic->add_option("model", inspect_model, "TorchScript file")->required();
  ic->add_option("--engine", inspect_engine, "int8 engine whose defaults to apply")->check(CLI::IsMember(engines));

  BenchArgs b;
  auto* bc = app.add_subcommand("bench", "Latency (min / median / p90 / p99), throughput, peak memory.\n"
                                         "  tq bench resnet18_int8.pt --input-shape 1,3,224,224 --vs resnet18.pt");
  bc->add_option("model", b.model, "TorchScript file")->required();
  bc->add_option("--input-shape", b.shape, "comma-separated input shape");
  bc->add_option("--threads", b.threads, "intra-op threads")->check(CLI::PositiveNumber);
  bc->add_option("--warmup", b.warmup, "untimed runs first")->check(CLI::NonNegativeNumber);
  bc->add_option("--iters", b.iters, "timed runs")->check(CLI::PositiveNumber);
  bc->add_option("--vs", b.vs, "a second model, timed interleaved with the first");
  bc->add_option("--engine", b.engine, "int8 engine")->check(CLI::IsMember(engines));

  CompareArgs c;
  auto* cc = app.add_subcommand("compare", "Output SQNR, top-1 agreement and accuracy of a quantized model against its float model.\n"
                                           "  tq compare resnet18.pt resnet18_int8.pt --data val/ --resize 256 --center-crop 224");
  cc->add_option("float_model", c.float_model, "float TorchScript file")->required();
  cc->add_option("quantized_model", c.quant_model, "quantized TorchScript file")->required();
  cc->add_option("--data", c.data, "evaluation data: .pt, IDX file or image directory")->required();
  cc->add_option("--batch-size", c.batch_size, "batch size")->check(CLI::PositiveNumber);
  cc->add_option("--batches", c.batches, "at most this many batches (0: all)")->check(CLI::NonNegativeNumber);
  cc->add_option("--engine", c.engine, "int8 engine")->check(CLI::IsMember(engines));
  cc->add_option("--report", c.report, "write the figures as JSON");
  cc->add_flag("--sensitivity", c.sensitivity,
               "quantize one layer at a time (default qconfig) and rank layers by the output SQNR they leave");
  cc->add_flag("--per-layer", c.per_layer,
               "SQNR of each quantized layer's output, int8 vs float (the int8 model made by tq from FLOAT)");
  cc->add_option("--plot", c.plot, "with --per-layer or --sensitivity: an SVG bar chart of the per-layer SQNR");
  add_data_options(cc, c.data_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  try {
    if (*cc && !c.plot.empty() && !c.sensitivity && !c.per_layer) throw UsageError("--plot needs --per-layer or --sensitivity");
    if (*cc && !c.plot.empty()) check_output_path(c.plot, {c.float_model, c.quant_model}, true);
    if (*qc) return quantize(q);
    if (*ic) return inspect(inspect_model, inspect_engine);
    if (*bc) return bench(b);
    if (*cc) return compare(c);
  } catch (const UsageError& e) {
    std::cerr << "tq: " << e.what() << "\n";
    return 1;
  } catch (const std::invalid_argument& e) {
    std::cerr << "tq: " << e.what() << "\n";
    return 1;
  } catch (const BadInput& e) {
    std::cerr << "tq: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tq: " << clean(e) << "\n";
    return 3;
  }
  return 1;
}
