#pragma once
// AdaRound on a TorchScript model in graph mode: after calibration, every quantized convolution
// and linear layer, in graph order, gets its weight rounding learned (tq/ptq/adaround.h) from
// inputs the model quantized so far produces (activations quantized with their calibrated
// qparams, earlier layers with their AdaRound weights) and targets from the float model (the
// layer's output after its fused ReLU). convert() then uses those int8 weights.
//
//   auto observed = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::for_backend("onednn"));
//   for (const auto& b : calibration) observed.calibrate(b);
//   auto report = tq::graph::adaround(observed, calibration, tq::ptq::AdaRoundOptions().iterations(2000));
//   auto int8 = observed.convert();
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "tq/graph/graph_quantizer.h"
#include "tq/ptq/adaround.h"

namespace tq::graph {

using ptq::AdaRoundLayerReport;
using ptq::AdaRoundReport;

// `data`: batches of the model's (single) input; the first options.num_samples() samples are
// cached. Throws before changing anything if the model was never calibrated or `data` holds fewer
// samples than options.num_samples() or one batch. On success the observed model keeps the learned
// weights for convert(); running adaround again replaces them.
AdaRoundReport adaround(ObservedModel& observed, const std::vector<at::Tensor>& data, const ptq::AdaRoundOptions& options);

}  // namespace tq::graph
