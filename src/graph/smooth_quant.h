#pragma once
// SmoothQuant in graph mode (GraphQuantizeOptions::smooth_quant): which Linear inputs it rescales,
// their factors and their qparams. Not installed.
#include <ATen/core/Tensor.h>

#include <string>

#include "observed_model_impl.h"

namespace tq::graph::detail {

// Gives each quantization point SmoothQuant can rescale its SmoothedInput: an input entering int8
// from float, observed by its own per-tensor uniform observer, read in int8 by static Linears
// only (each the single reader of its constant weight). Call before the observe ops go in.
void choose_smoothed_inputs(ObservedModel::Impl& impl);
// s [channels] of a smoothed point; throws naming its layers if calibration recorded no range or
// the range is not finite.
at::Tensor smoothing_factors(const ObservedModel::Impl& impl, const ObservedModel::Impl::Point& p);
// The point's qparams: its observer's formula on the range of X * (1 / s), exact from the
// channels' ranges.
TensorQParams smoothed_qparams(const ObservedModel::Impl& impl, const ObservedModel::Impl::Point& p);
// "layer, layer (C channels, s from a to b)"; s once calibrated.
std::string describe_smoothed(const ObservedModel::Impl& impl, const ObservedModel::Impl::Point& p);

}  // namespace tq::graph::detail
