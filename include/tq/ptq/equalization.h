#pragma once
// Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
// Equalization and Bias Correction", sec. 4.1): for two layers in a row with a scale-equivariant
// activation between them (ReLU, or none), channel i of the first layer's output is divided by
// s_i and the second layer's input channel i multiplied by it, s_i = sqrt(r1_i / r2_i) with r1_i,
// r2_i the channel's weight ranges in each layer. The function is unchanged; both ranges become
// sqrt(r1_i r2_i), which per-tensor weight quantization needs when channels differ widely
// (depthwise-separable blocks).
#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

#include "tq/ptq/weighted_layer.h"

namespace tq::ptq {

// Equalizes `first` (conv or linear) with `second` (conv with groups 1, depthwise conv, or linear)
// in place and returns s [channels]. Throws if the channel counts do not chain.
at::Tensor equalize_pair(WeightedLayer& first, WeightedLayer& second);

// Equalizes the pairs in turn, sweeping until no scale moves by more than `tolerance` (a layer in
// two pairs, expand -> depthwise -> project, moves with both); returns the sweeps it took.
int equalize_pairs(const std::vector<std::pair<WeightedLayer*, WeightedLayer*>>& pairs, int max_sweeps = 50,
                   double tolerance = 1e-4);

}  // namespace tq::ptq
