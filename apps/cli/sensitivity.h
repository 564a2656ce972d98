#pragma once
// Per-layer sensitivity for `tq compare --sensitivity`: each quantizable layer quantized alone
// (every other layer float), ranked by the SQNR of the model's output against the float model's.
// The layers that cost the most are the ones to keep float (`tq quantize --exclude`).
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "tq/graph/graph_quantizer.h"

namespace tq::cli {

// 10 log10(|ref|^2 / |ref - x|^2): how far x is from ref, in dB.
double sqnr_db(const at::Tensor& ref, const at::Tensor& x);

struct LayerSensitivity {
  std::string layer;  // module path ("layer1.0.conv1")
  std::string op;     // its quantized operator
  double output_sqnr_db = 0;
};

// `calibration` and `evaluation` are batches; layers ranked from the most to the least costly.
// `defaults`: the configuration each layer is quantized with alone (its global qconfig).
std::vector<LayerSensitivity> layer_sensitivity(const torch::jit::Module& float_model,
                                                const graph::GraphQuantizeOptions& defaults,
                                                const std::vector<at::Tensor>& calibration,
                                                const std::vector<at::Tensor>& evaluation);

// A bar chart of an SQNR per layer, as an SVG file a browser opens (written to a temporary name,
// then renamed); the first three bars are highlighted.
void write_layer_svg(const std::string& title, const std::vector<std::pair<std::string, double>>& layers,
                     const std::string& path);

}  // namespace tq::cli
