#pragma once
// Graph-mode quantization of TorchScript models (seed 004's Quantizer, on TorchScript graphs).
//
//   auto model = tq::graph::load_torchscript("resnet18.pt");        // torch.jit.save from Python
//   auto observed = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::for_backend("onednn"));
//   for (const auto& batch : calibration) observed.calibrate(batch);
//   torch::jit::Module int8 = observed.convert();                    // plain LibTorch runs it
//   tq::graph::save_torchscript(int8, "resnet18_int8.pt");
//   std::cout << observed.summary().to_string();
//
// How (src/graph/README.md has the details): prepare clones the model, freezes it (weights become
// constants, submodule calls are inlined, eval-mode branches fold away), finds the patterns'
// matches as the seed's _find_matches does (nodes in reverse order, inner nodes used once), and
// inserts observers where the seed observes: matched roots' outputs and the inputs that enter
// int8 from float. convert writes a new graph: each match becomes its int8 op, tensors are
// quantized where they enter an int8 region and dequantized only where a float consumer needs
// them, and everything else is copied as float. The user's module is never modified.
#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tq/graph/pattern.h"
#include "tq/quant/qconfig_mapping.h"

namespace torch::nn {
class Module;
}

namespace tq::graph::detail {
struct ObservedModelAccess;  // graph mode's own algorithms reach the observed model's internals
}

namespace torch::jit {
struct Module;
}

namespace tq::graph {

// SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training Quantization for
// Large Language Models"): a Linear input's outlier channels are divided by s_j and the weight's
// input channels multiplied by it, s_j = max|X_j|^alpha / max|W_j|^(1 - alpha), so per-tensor
// int8 activations hold what they could not. max|W_j| is taken over every Linear that reads the
// input (query, key and value share one s).
struct SmoothQuantOptions {
  double alpha = 0.5;  // in [0, 1]: how much of the activations' range moves into the weights
};

struct GraphQuantizeOptions {
  // Which qconfig each node gets: by the qualified name of the module whose forward produced it
  // ("layer1.0.conv2", taken from the TorchScript module hierarchy), by module type ("Conv2d") or
  // operator ("add", "aten::add"), then the enclosing module's, then the global one;
  // set_module_name_none(name) leaves a module float.
  quant::QConfigMapping mapping;
  PatternRegistry patterns = default_patterns();
  // Cross-layer equalization before observing (tq/ptq/equalization.h): batch norms fold into
  // their convolutions, a ReLU6 between two convolutions becomes a ReLU, and every convolution ->
  // (ReLU) -> convolution pair has its channels' weight ranges equalized. For per-tensor weights.
  bool equalize = false;
  // SmoothQuant on every int8 Linear whose input enters int8 from float and is read in int8 by
  // Linears only (with LayerNorm, GELU and residual adds float, every Linear of a transformer).
  // Calibration records each such input's channel ranges; convert divides the input by s (one
  // float multiply before its quantize), takes its per-tensor qparams from the exact range of
  // X / s (the paper's calibration, computed by the qconfig's observer from that range) and
  // quantizes W * s. The channel ranges are observers (named_observers: "smoothing <i>"), saved
  // with the observed model and merged across processes. Not with QAT, AdaRound or bias correction.
  std::optional<SmoothQuantOptions> smooth_quant;
  // A static int8 Linear whose output no int8 op reads returns float32: its integer sums scaled
  // straight to float (tq's operator tq::linear_int8_float_output; the model then needs tq's
  // library to run) instead of quantized to 8 bits and dequantized at once, as PyTorch FX does.
  // What BERT-style encoders need: their FFN output's outlier channels, bound for a float residual
  // add and LayerNorm, do not survive a per-tensor 8-bit output (all-MiniLM-L6-v2: mean cosine
  // 0.94 with it, 0.997 without, docs/ACCURACY.md). Off by default (PyTorch's numbers).
  bool float_linear_outputs = false;
  // Which operators the int8 TorchScript calls. "libtorch-quantized": LibTorch's quantized::
  // operators on quint8 tensors (every LibTorch; deprecated from 2.13). "onednn" (LibTorch 2.x):
  // plain uint8 tensors and the oneDNN operators PyTorch 2.x lowers its own int8 models to, so
  // the model makes no quantized tensor where it runs (tq/kernels/int8_graph.h: lower_to_onednn;
  // static int8 layers only).
  std::string int8_backend = "libtorch-quantized";

  // PyTorch FX's get_default_qconfig_mapping(backend) with tq's default patterns.
  static GraphQuantizeOptions for_backend(const std::string& backend);
  // PyTorch FX's get_default_qat_qconfig_mapping(backend), for prepare_qat (tq/graph/qat.h).
  static GraphQuantizeOptions for_backend_qat(const std::string& backend);
  // Dynamic quantization of Linear (default_dynamic_qconfig) and weight-only 8-bit Embedding
  // (float_qparams_weight_only_qconfig): no calibration needed.
  static GraphQuantizeOptions dynamic();
  // The reference configuration of PyTorch's FX quantization test (test/fx/quantization.py): its
  // patterns and its qparams (_minmax_scale_zeropoint in double precision, activations quint8
  // [0, 255], weights qint8 per tensor on [-127, 128]); bit-exact with that test's Quantizer.
  static GraphQuantizeOptions fx_test_reference();
};

// What happened to one node of the frozen float graph.
struct SummaryEntry {
  std::string op;            // "aten::conv2d"
  std::string module_path;   // innermost module ("layer1.0.conv1"; "" = the top module)
  std::string pattern;       // the matched pattern ("" if none)
  std::string handler;       // the handler's name
  bool quantized = false;    // part of an int8 match
  std::string why_float;     // when not quantized and a reason is known
  bool has_qparams = false;  // output qparams (root of an observed match)
  TensorQParams qparams;
};

struct Summary {
  std::vector<SummaryEntry> nodes;
  // A quantization point: a value observed for its qparams (a match's output or an int8 input).
  struct Point {
    std::string kind;         // "output" or "input"
    std::string op;           // producer's operator ("aten::conv2d"; "input" for graph inputs)
    std::string module_path;  // producer's innermost module
    std::string consumer;     // for inputs: the operator that takes it quantized
    TensorQParams qparams;
  };
  std::vector<Point> points;  // filled once calibrated, in graph order
  std::vector<std::string> equalized;  // "first -> second" pairs (GraphQuantizeOptions::equalize)
  // Inputs SmoothQuant rescales: "layer, layer (C channels, s from a to b)", s once calibrated.
  std::vector<std::string> smoothed;
  // Int8 convolutions / linears (module paths) whose activations are quantized on the full uint8
  // range: right on VNNI CPUs, saturating without VNNI (tq/kernels/int8_saturation.h). Once calibrated.
  std::vector<std::string> full_range_layers;
  int quantized_count() const;
  std::string to_string() const;
};

class ObservedModel {
 public:
  // Runs the model on one batch (or the given inputs) and records statistics.
  c10::IValue calibrate(const at::Tensor& batch);
  c10::IValue calibrate(std::vector<c10::IValue> inputs);
  int64_t batches_seen() const;
  // The int8 model (reference = float ops between quantize / dequantize pairs). Throws if no
  // batch was seen while some value needs observing (dynamic quantization needs none). The observed model is unchanged and can go on calibrating.
  torch::jit::Module convert(bool reference = false) const;
  // Kinds, modules, qparams and what stays float (qparams once calibrated).
  Summary summary() const;
  // The observed TorchScript module (for saving or inspection; tq's observe op runs inside).
  const torch::jit::Module& module() const;
  // Saves the observed form: the model as prepare() received it, with the observers' states (a
  // TorchScript file with extra entries). load_observed() with the same options goes on from there.
  void save(const std::string& path) const;

  // The observer (or fake quantizer) at each quantization point, in graph order, named
  // "<kind> <index> (%<value>)". Each is a tq::nn quantizer module: what distributed calibration
  // synchronizes and what a user inspects.
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> named_observers() const;

  struct Impl;
  explicit ObservedModel(std::shared_ptr<Impl> impl);

 private:
  friend struct detail::ObservedModelAccess;
  friend ObservedModel load_observed(const std::string& path, const struct GraphQuantizeOptions& options);
  std::shared_ptr<Impl> impl_;
};

// Numeric-Suite-style comparison of a float model with an int8 model tq made from it (with the
// same options): the output of each quantized layer in both, on the same inputs, as SQNR. Layers
// are named by module path ("layer1.0.conv1"); tq names each int8 layer's output value after it,
// and the name survives saving. Layers found on one side only are left out.
struct LayerComparison {
  std::string layer;
  double sqnr_db = 0;
};
std::vector<LayerComparison> compare_layers(const torch::jit::Module& float_model, const torch::jit::Module& int8_model,
                                            const GraphQuantizeOptions& options, const std::vector<at::Tensor>& inputs);

// The int8 model's attribute listing its full-range layers (Summary::full_range_layers).
inline constexpr const char* kFullRangeLayersAttribute = "tq_full_range_layers";

// Reads a torch.jit.save file (scripted or traced). Throws a one-line error naming the file if it
// is missing, not TorchScript, or has no forward method. An int8 model of tq's whose layers take
// full-range activations warns, naming them, where the int8 engine in use saturates.
torch::jit::Module load_torchscript(const std::string& path);
// Writes to a temporary name beside `path`, then renames (an existing file is replaced only once
// the new one is complete).
void save_torchscript(const torch::jit::Module& module, const std::string& path);

ObservedModel prepare(const torch::jit::Module& model, const GraphQuantizeOptions& options);
// Throws if the file is not an observed model, or if `options` would put observers elsewhere.
ObservedModel load_observed(const std::string& path, const GraphQuantizeOptions& options);
// prepare, calibrate on every batch, convert.
torch::jit::Module quantize(const torch::jit::Module& model, const GraphQuantizeOptions& options,
                            const std::vector<at::Tensor>& calibration, bool reference = false);

}  // namespace tq::graph
