// tq quantize: a TorchScript model to int8 TorchScript or ONNX QDQ, calibrated on data, with the
// post-training algorithms (AdaRound, bias correction, equalization, mixed precision) it asks for.
#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "cli_support.h"
#include "progress.h"
#include "tq/core/config_error.h"
#include "tq/core/error_message.h"
#include "tq/export/onnx_qdq.h"
#include "tq/graph/adaround.h"
#include "tq/graph/bias_correction.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/graph/mixed_precision.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_graph.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/quant/qconfig_spec.h"

namespace tq::cli {
namespace {

namespace fs = std::filesystem;

struct QuantizeArgs {
  std::string model, out, calib, mode = "static", engine = "onednn", observer = "histogram", report, qconfig_file;
  std::string weight_observer = "minmax";
  double percentile = 99.999;
  int weight_bits = 8, activation_bits = 8;
  bool adaround = false, bias_correction = false, equalize = false, float_linear_outputs = false;
  bool int8_matmul = false;
  std::string int8_backend = "libtorch-quantized";
  double smooth_quant = -1;  // < 0: off
  double max_accuracy_drop = -1;  // < 0: no search
  std::string eval, eval_labels;
  int64_t eval_limit = 0;
  std::string sensitivity = "sqnr";
  int64_t adaround_iterations = 10000, adaround_samples = 0;
  std::vector<std::string> exclude;
  bool per_tensor = false, fx_test_config = false, reference = false, force = false, per_token = false, gptq = false;
  bool full_range = false;  // activations on [0, 255]: for CPUs with VNNI only
  std::string format = "auto";         // torchscript or onnx; auto: from the output's extension
  int64_t onnx_opset = 0;  // 0: not given (17, or 21 for --mode weight-only)
  int64_t group_size = 0;  // 0: not given (--mode weight-only takes 128)
  std::string onnx_profile = "u8s8";
  int64_t batches = 32, batch_size = 32;
  DataOptions data;
};

// --qconfig FILE.json:
//   {"global": {"activation": "histogram", "weights": "per-channel"},
//    "module_name": {"fc": null, "layer4": {"activation": "minmax"}},
//    "object_type": {"add": null}}
// null keeps that part float; missing fields take the command line's (or the engine's) defaults.
void apply_qconfig_file(const std::string& path, const std::string& engine, const quant::QConfigSpec& defaults,
                        quant::QConfigMapping& mapping) {
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
    quant::QConfigSpec c = defaults;
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
      return quant::make_qconfig(engine, c);
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

// The global QConfig the command line asks for.
quant::QConfigSpec qconfig_choice(const QuantizeArgs& a) {
  quant::QConfigSpec c;
  c.reduce_range = kernels::int8::choose_activation_range(a.engine, a.full_range).reduce_range;
  // TensorRT takes int8 activations with zero point 0: symmetric ones, which need the full range
  // (TensorRT, not this CPU, runs the model).
  if (a.onnx_profile == "tensorrt") {
    c.reduce_range = false;
    c.symmetric_activations = true;
  }
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


// The flags that do not go together: UsageError, before anything is read.
void check_arguments(const QuantizeArgs& a) {
  if (a.fx_test_config && (a.mode != "static" || a.per_tensor || !a.exclude.empty() || !a.qconfig_file.empty())) {
    throw UsageError(
        "--fx-test-config is PyTorch's FX test configuration, fixed: it takes no --mode, --per-tensor-weights, --exclude or --qconfig");
  }
  if (a.fx_test_config && (a.weight_bits != 8 || a.activation_bits != 8 || a.observer != "histogram" || a.weight_observer != "minmax")) {
    throw UsageError("--fx-test-config has its own observers and 8-bit ranges: it takes no bits or observer options");
  }
  if (a.mode != "static" && !a.qconfig_file.empty()) throw UsageError("--qconfig applies to --mode static");
  if (a.mode == "weight-only" && a.weight_bits != 4 && a.weight_bits != 8) {
    throw UsageError("--mode weight-only takes --weight-bits 4 or 8, got " + std::to_string(a.weight_bits));
  }
  if (a.group_size != 0 && a.mode != "weight-only") throw UsageError("--group-size applies to --mode weight-only");
  if (a.gptq && a.mode != "weight-only") throw UsageError("--gptq applies to --mode weight-only");
  if (a.gptq && a.calib.empty()) throw UsageError("--gptq needs --calib DATA: GPTQ weighs each layer's rounding by its inputs");
  if (a.group_size % 32 != 0) {
    throw UsageError("--group-size must be a multiple of 32, got " + std::to_string(a.group_size));
  }
  if (a.per_token && a.mode != "dynamic") throw UsageError("--per-token applies to --mode dynamic");
  if (a.full_range && (a.mode != "static" || a.fx_test_config || a.activation_bits != 8)) {
    throw UsageError("--full-range applies to --mode static with 8-bit activations (without --fx-test-config)");
  }
  const bool search = a.max_accuracy_drop >= 0;
  if (search && (a.eval.empty() || a.mode != "static" || a.fx_test_config || a.adaround || a.bias_correction)) {
    throw UsageError("--max-accuracy-drop needs --eval DATA with labels and --mode static (without --fx-test-config, "
                     "--adaround or --bias-correction)");
  }
  if (!search && !a.eval.empty()) throw UsageError("--eval is for --max-accuracy-drop");
  if (a.mode != "static" && (a.adaround || a.bias_correction || a.equalize || a.smooth_quant >= 0 ||
                             a.float_linear_outputs || a.int8_matmul)) {
    throw UsageError("--adaround, --bias-correction, --equalize, --smooth-quant, --float-linear-outputs and "
                     "--int8-matmul apply to --mode static");
  }
  if (a.int8_backend != "libtorch-quantized" && (a.mode != "static" || a.reference || output_is_onnx(a))) {
    throw UsageError("--int8-backend " + a.int8_backend + " applies to --mode static TorchScript output (not --reference)");
  }
  if (a.int8_backend == "onednn" && !kernels::int8::graph::onednn_form_available()) {
    throw UsageError("--int8-backend onednn: " + kernels::int8::graph::onednn_form_unavailable_reason());
  }
  if (a.int8_matmul && a.fx_test_config) throw UsageError("--int8-matmul does not combine with --fx-test-config (that test's patterns)");
  if (a.smooth_quant >= 0 && (a.adaround || a.bias_correction || a.fx_test_config)) {
    throw UsageError("--smooth-quant does not combine with --adaround, --bias-correction or --fx-test-config");
  }
  if (a.mode == "static" && a.calib.empty()) throw UsageError("--mode static needs --calib DATA");
  if (output_is_onnx(a) && (a.mode == "dynamic" || a.reference || search)) {
    throw UsageError("ONNX output (" + a.out + ") is the QDQ form of a static int8 or weight-only model: it takes no "
                     "--mode dynamic, --reference or --max-accuracy-drop");
  }
  if (a.onnx_profile == "tensorrt" && (!output_is_onnx(a) || a.mode != "static" || a.fx_test_config || a.activation_bits != 8)) {
    throw UsageError("--onnx-profile tensorrt calibrates symmetric 8-bit activations for a static ONNX output "
                     "(not --fx-test-config)");
  }
  if (output_is_onnx(a) && a.calib.empty()) {
    throw UsageError("ONNX output (" + a.out + ") needs --calib DATA: its batches give the model's input shape");
  }
  if (output_is_onnx(a) && a.onnx_opset != 0 && a.onnx_opset < 13) {
    throw UsageError("--onnx-opset " + std::to_string(a.onnx_opset) + " is too old: per-channel DequantizeLinear needs 13");
  }
  if (output_is_onnx(a) && a.mode == "weight-only" && a.onnx_opset != 0 && a.onnx_opset < 21) {
    throw UsageError("--onnx-opset " + std::to_string(a.onnx_opset) + " is too old for --mode weight-only: blocked "
                     "DequantizeLinear and 4-bit types need 21");
  }
  check_output_path(a.out, {a.model}, a.force);
  if (!a.report.empty()) check_output_path(a.report, {a.model}, a.force);
}

// The graph-mode options the flags ask for, with --exclude's modules and operators kept float.
graph::GraphQuantizeOptions quantize_options(const QuantizeArgs& a, const torch::jit::Module& model) {
  graph::GraphQuantizeOptions options;
  if (a.fx_test_config) {
    options = graph::GraphQuantizeOptions::fx_test_reference();
  } else if (a.mode == "dynamic") {
    options = graph::GraphQuantizeOptions::dynamic();
    if (a.per_token) options.mapping.set_global(quant::per_token_dynamic_qconfig());
  } else if (a.mode == "weight-only") {
    options = graph::GraphQuantizeOptions::dynamic();
    const int64_t group = a.group_size != 0 ? a.group_size : 128;
    options.mapping.set_global(a.gptq ? quant::weight_only_gptq_qconfig(a.weight_bits, group)
                                      : quant::weight_only_qconfig(a.weight_bits, group));
  } else {
    options = tool_options(a.engine, a.full_range);
    const quant::QConfigSpec c = qconfig_choice(a);
    options.mapping.set_global(quant::make_qconfig(a.engine, c));
    if (!a.qconfig_file.empty()) apply_qconfig_file(a.qconfig_file, a.engine, c, options.mapping);
    options.equalize = a.equalize;
    if (a.smooth_quant >= 0) options.smooth_quant = graph::SmoothQuantOptions{a.smooth_quant};
    options.float_linear_outputs = a.float_linear_outputs;
    if (a.int8_matmul) graph::register_int8_matmul_patterns(options.patterns);
  }
  options.int8_backend = a.int8_backend;
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
  return options;
}

// What calibration made: its batches, and the reports of the algorithms run on them.
struct Calibrated {
  std::vector<at::Tensor> batches;
  graph::AdaRoundReport adaround;
  graph::BiasCorrectionReport bias;
};

// Runs each batch (the forward's arguments) through the observed model, with a progress bar.
void calibrate_batches(graph::ObservedModel& observed, const std::string& calib,
                       const std::vector<std::vector<c10::IValue>>& bs) {
  apps::ProgressBar bar("calibrating", static_cast<int64_t>(bs.size()));
  for (size_t i = 0; i < bs.size(); ++i) {
    try {
      observed.calibrate(bs[i]);
    } catch (const std::exception& e) {
      throw BadInput(calib + ": " + error_message(e));
    }
    bar.update(static_cast<int64_t>(i) + 1);
  }
  bar.finish();
}

// Calibration on --calib, then AdaRound and bias correction where asked.
Calibrated calibrate(graph::ObservedModel& observed, const QuantizeArgs& a, const torch::jit::Module& model) {
  Calibrated out;
  const auto data = load_calibration_data(a.calib, a.data);
  if (data.is_named()) {
    // A model with several inputs (token ids and an attention mask): the dict's tensors by the
    // forward's argument names.
    if (a.adaround || a.bias_correction || a.max_accuracy_drop >= 0 || output_is_onnx(a)) {
      throw UsageError("--calib " + a.calib + " holds named inputs (a dict): --adaround, --bias-correction, "
                       "--max-accuracy-drop and ONNX output take data of one input tensor");
    }
    std::vector<std::string> names;
    for (const auto& arg : model.get_method("forward").function().getSchema().arguments()) {
      if (arg.name() != "self") names.push_back(arg.name());
    }
    calibrate_batches(observed, a.calib, named_input_batches(data, a.calib, names, a.batch_size, a.batches));
    return out;
  }
  const auto& samples = data.samples;
  out.batches = batches(samples.inputs, a.batch_size, a.batches);
  const auto& bs = out.batches;
  int64_t have = 0;
  for (const auto& b : bs) have += b.size(0);
  std::vector<std::vector<c10::IValue>> inputs;
  for (const auto& b : bs) inputs.push_back({b});
  calibrate_batches(observed, a.calib, inputs);
  if (samples.skipped > 0) std::cerr << "tq: skipped " << samples.skipped << " unreadable images\n";
  if (a.adaround) {
    // By default every calibration sample, up to AIMET's 1024; batches of 32 or fewer.
    const int64_t n = a.adaround_samples > 0 ? a.adaround_samples : std::min<int64_t>(have, 1024);
    const auto o = ptq::AdaRoundOptions().iterations(a.adaround_iterations).num_samples(n).batch_size(std::min<int64_t>(32, n));
    try {
      out.adaround = graph::adaround(observed, bs, o);
    } catch (const c10::Error& e) {
      throw BadInput(a.calib + ": " + error_message(e));
    }
    std::cout << out.adaround.to_string();
  }
  if (a.bias_correction) {
    try {
      out.bias = graph::correct_bias(observed, bs, graph::BiasCorrectionOptions().num_samples(std::min<int64_t>(have, 512)));
    } catch (const c10::Error& e) {
      throw BadInput(a.calib + ": " + error_message(e));
    }
    std::cout << out.bias.to_string();
  }
  return out;
}

// --max-accuracy-drop: the mixed-precision search on --eval's labelled data.
graph::MixedPrecisionResult search_precision(const QuantizeArgs& a, const torch::jit::Module& model,
                                             const graph::GraphQuantizeOptions& options,
                                             const std::vector<at::Tensor>& calibration) {
  auto eval_options = a.data;
  eval_options.labels = a.eval_labels;
  eval_options.limit = a.eval_limit;
  const auto eval = load_samples(a.eval, eval_options);
  if (!eval.labels.defined()) throw BadInput(a.eval + ": --max-accuracy-drop needs labels (--eval-labels, or class folders)");
  const auto eval_batches = batches(eval.inputs, 256, 0);
  graph::MixedPrecisionOptions mp;
  mp.max_drop = a.max_accuracy_drop;
  mp.ranking = a.sensitivity == "metric" ? graph::SensitivityRanking::Metric : graph::SensitivityRanking::OutputSqnr;
  const quant::QConfigSpec aggressive = qconfig_choice(a);
  quant::QConfigSpec eight = aggressive;
  eight.weight_bits = eight.activation_bits = 8;
  auto name = [](const quant::QConfigSpec& c) { return "W" + std::to_string(c.weight_bits) + "A" + std::to_string(c.activation_bits); };
  mp.levels.push_back({name(aggressive), quant::make_qconfig(a.engine, aggressive)});
  if (a.weight_bits != 8 || a.activation_bits != 8) mp.levels.push_back({name(eight), quant::make_qconfig(a.engine, eight)});
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
  auto searched = graph::search_mixed_precision(model, options, calibration, accuracy, mp);
  std::cout << searched.to_string();
  return searched;
}

// --report: the summary with what each algorithm did.
nlohmann::json report_json(const QuantizeArgs& a, const graph::Summary& summary, const kernels::int8::ActivationRangeChoice& range,
                           const Calibrated& calibrated, const graph::MixedPrecisionResult* searched) {
  auto j = summary_json(summary);
  j["model"] = a.model;
  j["output"] = a.out;
  j["engine"] = a.fx_test_config ? "qnnpack" : a.engine;
  j["mode"] = a.fx_test_config ? "fx_test_reference" : a.mode;
  j["equalized"] = summary.equalized;
  j["smoothed"] = summary.smoothed;
  if (a.mode == "static") {
    j["activation_range"] = {{"reduce_range", range.reduce_range}, {"why", range.why},
                             {"full_range_layers", summary.full_range_layers}};
  }
  if (searched) {
    auto& m = j["mixed_precision"];
    m["float_accuracy"] = searched->float_metric;
    m["accuracy"] = searched->metric;
    m["met"] = searched->met;
    m["evaluations"] = searched->evaluations;
    m["layers"] = searched->layer_levels;
    m["sensitivity_order"] = searched->layers;
    m["ranking"] = a.sensitivity;
  }
  if (a.bias_correction) {
    const auto& b = calibrated.bias;
    auto& r = j["bias_correction"];
    r["samples"] = b.samples;
    r["seconds"] = b.seconds;
    r["skipped"] = b.skipped;
    for (const auto& l : b.layers) {
      r["layers"].push_back({{"layer", l.layer}, {"op", l.op}, {"mean_abs_shift", l.mean_abs_shift},
                             {"max_abs_shift", l.max_abs_shift}});
    }
  }
  if (a.adaround) {
    const auto& ar = calibrated.adaround;
    auto& r = j["adaround"];
    r["samples"] = ar.samples;
    r["seconds"] = ar.seconds;
    r["skipped"] = ar.skipped;
    for (const auto& l : ar.layers) {
      r["layers"].push_back({{"layer", l.layer}, {"op", l.op}, {"weights", l.weights}, {"changed", l.changed},
                             {"loss_nearest", l.loss_nearest}, {"loss_adaround", l.loss_adaround},
                             {"seconds", l.seconds}});
    }
  }
  return j;
}

int quantize(const QuantizeArgs& a) {
  check_arguments(a);
  const bool onnx = output_is_onnx(a);
  const bool search = a.max_accuracy_drop >= 0;
  kernels::int8::set_engine(a.fx_test_config ? "qnnpack" : a.engine);
  auto model = load_model(a.model);
  const auto options = quantize_options(a, model);
  graph::ObservedModel observed = [&] {
    try {
      return graph::prepare(model, options);
    } catch (const ConfigError& e) {
      throw UsageError(e.what());  // --exclude or --qconfig names what the model does not have
    }
  }();
  Calibrated calibrated;
  if (a.mode == "static" || a.gptq || onnx) calibrated = calibrate(observed, a, model);
  graph::MixedPrecisionResult searched;
  if (search) searched = search_precision(a, model, options, calibrated.batches);
  if (onnx) {
    const auto profile = a.onnx_profile == "s8s8"       ? onnx::QdqProfile::kS8S8
                         : a.onnx_profile == "tensorrt" ? onnx::QdqProfile::kTensorRT
                                                        : onnx::QdqProfile::kU8S8;
    const int64_t opset = a.onnx_opset != 0 ? a.onnx_opset : a.mode == "weight-only" ? 21 : 17;
    std::vector<int64_t> shape(calibrated.batches.at(0).sizes().begin(), calibrated.batches.at(0).sizes().end());
    const auto exported = onnx::export_qdq(
        observed, a.out, onnx::ExportOptions().input_shapes({shape}).opset(opset).profile(profile));
    std::cout << exported.to_string();
  } else {
    graph::save_torchscript(search ? searched.model : observed.convert(a.reference), a.out);
  }
  const auto summary = observed.summary();
  const auto range = kernels::int8::choose_activation_range(a.fx_test_config ? "qnnpack" : a.engine, a.full_range);
  std::cout << summary.to_string();
  if (a.mode == "static") std::cout << "activation range: " << range.why << "\n";
  std::cout << "wrote " << a.out << "\n";
  if (!a.report.empty()) write_json(report_json(a, summary, range, calibrated, search ? &searched : nullptr), a.report);
  return 0;
}

}  // namespace

Command add_quantize_command(CLI::App& app) {
  auto q = std::make_shared<QuantizeArgs>();
  auto* qc = app.add_subcommand("quantize", "Quantize a TorchScript model to int8 TorchScript.\n"
                                            "  tq quantize resnet18.pt -o resnet18_int8.pt --calib images/ --resize 256 --center-crop 224");
  qc->add_option("model", q->model, "TorchScript file (torch.jit.save)")->required();
  qc->add_option("-o,--output", q->out, "where to write the int8 model (.onnx: ONNX QDQ for ONNX Runtime)")->required();
  qc->add_option("--format", q->format, "torchscript or onnx (default: from the output's extension)")
      ->check(CLI::IsMember({"auto", "torchscript", "onnx"}));
  qc->add_option("--onnx-opset", q->onnx_opset, "ONNX opset of an ONNX output (13 or later; default 17, "
                 "or 21 for --mode weight-only)");
  qc->add_option("--onnx-profile", q->onnx_profile, "ONNX activations: u8s8 (uint8, tq's own numbers) or s8s8 "
                 "(int8, ONNX Runtime's recommended form; the same values) or tensorrt (int8 with zero point 0: "
                 "calibrated with symmetric activations)")
      ->check(CLI::IsMember({"u8s8", "s8s8", "tensorrt"}));
  qc->add_option("--calib", q->calib, "calibration data: .pt, .npy, IDX file or image directory; for a model with "
                 "several inputs, a .pt dict {argument name: tensor} (a tokenizer's output)");
  qc->add_option("--mode", q->mode, "static (calibrated), dynamic (Linear, Embedding) or weight-only (Linear "
                 "weights in --weight-bits 4 or 8 with --group-size; the model then needs tq's library to run)")
      ->check(CLI::IsMember({"static", "dynamic", "weight-only"}));
  qc->add_flag("--gptq", q->gptq, "--mode weight-only: weights chosen by GPTQ (act order, static groups) from --calib's "
               "inputs (at least as many rows per layer as its input features), not rounded to nearest");
  qc->add_option("--group-size", q->group_size, "--mode weight-only: input features per weight scale, a multiple of "
                 "32 that divides every Linear's input features (default 128)")
      ->check(CLI::PositiveNumber);
  qc->add_option("--engine", q->engine, "int8 engine")->check(CLI::IsMember(engines()));
  qc->add_option("--activation-observer", q->observer,
                 "histogram (PyTorch's default), minmax, moving-average, entropy (TensorRT's KL divergence), "
                 "percentile (ONNX Runtime's), mse")
      ->check(CLI::IsMember({"histogram", "minmax", "moving-average", "entropy", "percentile", "mse"}));
  qc->add_option("--percentile", q->percentile, "for --activation-observer percentile (default 99.999)")
      ->check(CLI::Range(1e-9, 100.0));
  qc->add_option("--weight-observer", q->weight_observer, "minmax (PyTorch's default) or mse (per channel: the "
                 "fraction of each channel's range with the least squared error)")
      ->check(CLI::IsMember({"minmax", "mse"}));
  qc->add_option("--weight-bits", q->weight_bits, "weight bits, 2 to 8 (symmetric range; stored as int8); "
                 "--mode weight-only: 4 or 8 (asymmetric groups)")
      ->check(CLI::Range(2, 8));
  qc->add_option("--activation-bits", q->activation_bits, "activation bits, 2 to 8 (stored as uint8)")
      ->check(CLI::Range(2, 8));
  qc->add_flag("--adaround", q->adaround, "learn each conv / linear layer's weight rounding (AdaRound) on the "
               "calibration data after calibrating");
  qc->add_option("--max-accuracy-drop", q->max_accuracy_drop,
                 "mixed precision: raise the most sensitive layers from --weight-bits / --activation-bits to 8 bits, "
                 "then float, until top-1 accuracy on --eval is within this many points of the float model's")
      ->check(CLI::Range(0.0, 100.0));
  qc->add_option("--eval", q->eval, "labelled evaluation data for --max-accuracy-drop (same formats as --calib)");
  qc->add_option("--eval-labels", q->eval_labels, "IDX labels for --eval");
  qc->add_option("--eval-limit", q->eval_limit, "at most this many evaluation samples (0: all)");
  qc->add_option("--sensitivity", q->sensitivity, "how --max-accuracy-drop ranks layers: sqnr (each layer's output "
                 "SQNR, no evaluation) or metric (accuracy gained by that layer alone in float, one evaluation each)")
      ->check(CLI::IsMember({"sqnr", "metric"}));
  qc->add_flag("--equalize", q->equalize, "cross-layer equalization of conv -> (ReLU / ReLU6) -> conv pairs before "
               "calibrating (for per-tensor weights; ReLU6 between them becomes ReLU)");
  qc->add_option("--smooth-quant", q->smooth_quant,
                 "SmoothQuant with this alpha (0 to 1; the paper's default 0.5, all-MiniLM-L6-v2 best at 0.8): "
                 "each int8 Linear input's outlier channels move into its weights (for transformers)")
      ->check(CLI::Range(0.0, 1.0));
  qc->add_flag("--float-linear-outputs", q->float_linear_outputs,
               "an int8 Linear whose output only float ops read returns float32 rather than an 8-bit output "
               "(transformers with float residual adds; the model then needs tq's library to run)");
  qc->add_flag("--int8-matmul", q->int8_matmul,
               "the attention's batched products (q k^T and P V: matmul of two activations, with its constant "
               "scaling) in int8, which PyTorch FX keeps float (tq's operator: the model then needs tq's library)");
  qc->add_option("--int8-backend", q->int8_backend,
                 "the int8 operators the model calls: libtorch-quantized (LibTorch's quantized tensors, every LibTorch) "
                 "or onednn (LibTorch 2.x: plain uint8 tensors and oneDNN's int8 operators, as PyTorch 2.x lowers its own "
                 "int8 models; no quantized dtype, no tq library needed to run it)")
      ->check(CLI::IsMember({"libtorch-quantized", "onednn"}));
  qc->add_flag("--bias-correction", q->bias_correction, "take each conv / linear layer's mean output shift from "
               "quantization out of its bias (after --adaround when both are given)");
  qc->add_option("--adaround-iterations", q->adaround_iterations, "AdaRound iterations per layer (default 10000)")
      ->check(CLI::PositiveNumber);
  qc->add_option("--adaround-samples", q->adaround_samples, "calibration samples AdaRound caches (default: all, at most 1024)")
      ->check(CLI::PositiveNumber);
  qc->add_flag("--per-tensor-weights", q->per_tensor, "per-tensor weight qparams (default: per channel)");
  qc->add_flag("--per-token", q->per_token,
               "--mode dynamic: one activation scale per token (row) and per-channel weights, as torchao's int8 "
               "dynamic activation (for transformers; the model then needs tq's library to run)");
  qc->add_flag("--full-range", q->full_range,
               "8-bit activations on [0, 255] rather than [0, 127], for CPUs with VNNI only: x86 int8 kernels without "
               "VNNI saturate on them (the default range is right on every CPU)");
  qc->add_option("--exclude", q->exclude, "keep a module (qualified name, e.g. layer1.0.conv2) or an operator (add) float");
  qc->add_option("--qconfig", q->qconfig_file,
                 "JSON: {\"global\": {\"activation\": \"minmax\", \"weights\": \"per-tensor\"}, "
                 "\"module_name\": {\"fc\": null}, \"object_type\": {\"add\": null}}");
  qc->add_flag("--fx-test-config", q->fx_test_config, "the patterns and qparams of PyTorch's FX quantization test, test/fx/quantization.py (engine qnnpack)");
  qc->add_flag("--reference", q->reference, "write the reference form (float ops between quantize / dequantize)");
  qc->add_option("--batches", q->batches, "calibration batches")->check(CLI::PositiveNumber);
  qc->add_option("--batch-size", q->batch_size, "calibration batch size")->check(CLI::PositiveNumber);
  qc->add_option("--report", q->report, "write the summary as JSON");
  qc->add_flag("--force", q->force, "replace existing output files");
  add_data_options(qc, q->data);
  return {qc, [q] { return quantize(*q); }};
}

}  // namespace tq::cli
