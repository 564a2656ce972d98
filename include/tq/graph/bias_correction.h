#pragma once
// Empirical bias correction on a TorchScript model in graph mode (tq/ptq/bias_correction.h): every
// quantized convolution and linear layer with a bias, in graph order, gets the mean shift its
// quantization causes on the calibration data taken out of its bias. Inputs come from the model
// quantized so far (activations with their calibrated qparams, earlier layers with quantized
// weights, AdaRound's where adaround() ran before, and corrected biases), references from the
// float model. The corrected biases stay in the observed model, and convert() uses them.
//
//   auto observed = tq::graph::prepare(model, options);
//   for (const auto& b : calibration) observed.calibrate(b);
//   tq::graph::adaround(observed, calibration, {});          // optional, first
//   auto report = tq::graph::correct_bias(observed, calibration, {});
//   auto int8 = observed.convert();
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "tq/graph/graph_quantizer.h"
#include "tq/ptq/bias_correction.h"

namespace tq::graph {

using ptq::BiasCorrectionOptions;
using ptq::BiasCorrectionReport;

// Throws before changing anything if the model was never calibrated or `data` holds fewer than
// options.num_samples() samples; if a later step fails, the biases are as they were.
BiasCorrectionReport correct_bias(ObservedModel& observed, const std::vector<at::Tensor>& data,
                                  const BiasCorrectionOptions& options = {});

}  // namespace tq::graph
