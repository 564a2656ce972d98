#pragma once
// AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"):
// each weight rounds down or up as a learned variable decides, chosen to reconstruct the layer's
// output rather than to be closest to the weight. tq runs it on the seed's AdaroundFakeQuantizer:
//   h(V) = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1), zeta 1.1, gamma -0.1, V initialised so
//          that h(V) is the fractional part of W / s (soft rounding starts at the weight itself);
//   loss = mean over samples and positions of the squared output error summed over channels
//          + lambda * sum(1 - |2 h(V) - 1|^beta)   (no regularisation during the warm start;
//          beta then falls from beta_start to beta_end on a cosine, as AIMET does);
//   Adam on V; finally hard rounding (V >= 0).
// Inputs come from the model quantized so far, targets from the float model (asymmetric
// reconstruction); the graph and eager drivers collect them.
//
//   auto r = tq::ptq::adaround_layer(layer, weight_observer_factory, inputs, targets, {});
//   r.weight_q  // qint8, ready for the int8 engines
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "tq/core/options.h"
#include "tq/observers/observer_base.h"
#include "tq/ptq/weighted_layer.h"

namespace tq::ptq {

struct AdaRoundOptions {
  void validate() const;  // throws on values outside their ranges

  // AIMET's defaults.
  TQ_OPTION(AdaRoundOptions, int64_t, iterations) = 10000;
  TQ_OPTION(AdaRoundOptions, double, reg_lambda) = 0.01;
  TQ_OPTION(AdaRoundOptions, double, beta_start) = 20.0;
  TQ_OPTION(AdaRoundOptions, double, beta_end) = 2.0;
  TQ_OPTION(AdaRoundOptions, double, warm_start) = 0.2;  // fraction of iterations without regularisation
  TQ_OPTION(AdaRoundOptions, int64_t, batch_size) = 32;   // cached samples per iteration
  TQ_OPTION(AdaRoundOptions, double, learning_rate) = 1e-3;
  // Samples cached per layer (the graph and eager drivers take this many from the calibration data).
  TQ_OPTION(AdaRoundOptions, int64_t, num_samples) = 1024;
  TQ_OPTION(AdaRoundOptions, uint64_t, seed) = 0;  // batch sampling (at::randperm)
};

struct AdaRoundResult {
  at::Tensor rounded_weight;  // float, on the quantization grid
  at::Tensor weight_q;        // qint8 (per tensor, or per channel along axis 0)
  at::Tensor scale, zero_point;
  // Reconstruction loss (the loss's first term) on all samples: nearest rounding, then AdaRound.
  double loss_nearest = 0, loss_adaround = 0;
  int64_t changed = 0;        // weights rounded differently from nearest
};

// `weight_observer` makes the observer whose qparams the weight takes (symmetric, signed: qint8
// per tensor or per channel along axis 0). inputs: [N, ...] the layer's inputs; targets: the float
// layer's outputs for the same samples. Nothing given is modified.
AdaRoundResult adaround_layer(const WeightedLayer& layer, const observers::ObserverFactory& weight_observer,
                              const at::Tensor& inputs, const at::Tensor& targets, const AdaRoundOptions& options);

// What the graph and eager drivers report.
struct AdaRoundLayerReport {
  std::string layer;  // module path ("layer1.0.conv1")
  std::string op;     // "aten::conv2d", "Conv2d"
  int64_t weights = 0, changed = 0;
  double loss_nearest = 0, loss_adaround = 0;  // reconstruction loss on the cached samples
  double seconds = 0;
};

struct AdaRoundReport {
  std::vector<AdaRoundLayerReport> layers;
  std::vector<std::string> skipped;  // "layer: why"
  int64_t samples = 0;
  double seconds = 0;
  std::string to_string() const;
};

// Why AdaRound cannot round with this weight quantizer ("" if it can): it needs an observer (a
// grid computed from the float weight) with a symmetric qscheme. The drivers skip such layers.
std::string adaround_unsupported(torch::nn::Module& weight_quantizer);

// The reconstruction loss: squared error summed over dim 1 (features / channels), mean over the rest.
at::Tensor reconstruction_loss(const at::Tensor& output, const at::Tensor& target);
// beta at iteration `it` (cosine from beta_start to beta_end after the warm start).
double adaround_beta(const AdaRoundOptions& o, int64_t it);

}  // namespace tq::ptq
