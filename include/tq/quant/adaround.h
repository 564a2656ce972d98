#pragma once
// AdaRound on an eager tq::nn model (tq/ptq/adaround.h for the algorithm): after prepare and
// calibration, every observed Linear / Conv, in the order forward() calls them, learns its weight
// rounding from inputs the model quantized so far produces (activations quantized with their
// calibrated qparams, earlier layers with their learned weights) and targets from the float
// model (the layer's output after its fused ReLU). convert() then uses the learned int8 weights.
//
//   tq::quant::fuse_modules(*net, groups);
//   tq::quant::prepare(*net, mapping);
//   for (const auto& b : calibration) net->forward(b);
//   auto forward = [&](const at::Tensor& x) { return net->forward(x); };
//   auto report = tq::quant::adaround(*net, forward, calibration, tq::ptq::AdaRoundOptions().iterations(2000));
//   tq::quant::convert(*net);
#include <torch/nn/module.h>

#include <vector>

#include "tq/ptq/adaround.h"
#include "tq/quant/forward_fn.h"

namespace tq::quant {

// `data`: batches of the model's input; the first options.num_samples() samples are cached and
// forward() runs on chunks the size of the first batch. Layers that cannot take part (QAT batch
// norm attached, called more than once per forward, asymmetric weights) are reported as skipped.
// Throws before changing anything if an observer never saw data or `data` holds fewer samples
// than options.num_samples() or one AdaRound batch. Runs in eval mode without gradients, restoring
// the model's training flag. Running it again replaces the learned weights.
ptq::AdaRoundReport adaround(torch::nn::Module& model, const ForwardFn& forward, const std::vector<at::Tensor>& data,
                             const ptq::AdaRoundOptions& options);

}  // namespace tq::quant
