#pragma once
// Empirical bias correction on an eager tq::nn model (tq/ptq/bias_correction.h): every observed
// Linear / Conv with a bias, in the order forward() calls them, gets the mean shift its
// quantization causes on the calibration data taken out of its bias. Inputs come from the model
// quantized so far (activations with their calibrated qparams, earlier layers with the int8
// weights convert() will give, AdaRound's where it ran first, and corrected biases), references
// from the float model.
//
//   tq::quant::prepare(*net, mapping);
//   for (const auto& b : calibration) net->forward(b);
//   tq::quant::correct_bias(*net, forward, calibration);
//   tq::quant::convert(*net);
#include <torch/nn/module.h>

#include <vector>

#include "tq/ptq/bias_correction.h"
#include "tq/quant/forward_fn.h"

namespace tq::quant {

// Throws before changing anything if an observer never saw data or `data` holds fewer than
// options.num_samples() samples; the biases change only once every layer is done.
ptq::BiasCorrectionReport correct_bias(torch::nn::Module& model, const ForwardFn& forward,
                                       const std::vector<at::Tensor>& data,
                                       const ptq::BiasCorrectionOptions& options = {});

}  // namespace tq::quant
