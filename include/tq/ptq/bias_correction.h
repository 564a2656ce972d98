#pragma once
// Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization", sec. 4.2, with data):
// quantizing a layer's weights (and its input) shifts the mean of its pre-activation output; the
// shift, measured per output channel on calibration data, is taken out of the bias.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "tq/core/options.h"

#include "tq/ptq/weighted_layer.h"

namespace tq::ptq {

struct BiasCorrectionOptions {
  TQ_OPTION(BiasCorrectionOptions, int64_t, num_samples) = 512;
};

// What the graph and eager drivers report.
struct BiasCorrectionReport {
  struct Layer {
    std::string layer, op;
    double mean_abs_shift = 0, max_abs_shift = 0;  // over output channels
  };
  std::vector<Layer> layers;
  std::vector<std::string> skipped;  // "layer: why"
  int64_t samples = 0;
  double seconds = 0;
  std::string to_string() const;
};

// E[layer(quantized_inputs; quantized_weight)] - E[layer(float_inputs; layer.weight)] per output
// channel, before the activation (means over samples and positions). Subtract it from the bias.
at::Tensor bias_correction_shift(const WeightedLayer& layer, const at::Tensor& quantized_weight,
                                 const at::Tensor& float_inputs, const at::Tensor& quantized_inputs);

}  // namespace tq::ptq
