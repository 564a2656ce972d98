#pragma once
// A QConfig described by names and bit widths, as the `tq` command line and its --qconfig files
// take it: the backend's default QConfig with the activation observer, the weight scheme and the
// bits replaced.
//
//   tq::quant::QConfigSpec spec;
//   spec.activation = "entropy";
//   spec.weight_bits = 4;
//   auto q = tq::quant::make_qconfig("onednn", spec);
#include <optional>
#include <string>

#include "tq/nn/qconfig.h"

namespace tq::quant {

struct QConfigSpec {
  // histogram, minmax, moving-average, entropy, percentile, mse
  std::string activation = "histogram";
  // per-channel, per-tensor, per-channel-mse, per-tensor-mse (symmetric qint8)
  std::string weights = "per-channel";
  double percentile = 99.999;  // for activation = percentile
  // 2..8: fewer than 8 bits narrow the quantization range; values still travel as int8 / uint8.
  int weight_bits = 8, activation_bits = 8;
  // 8-bit activations on [0, 127] (true) or [0, 255] (false); unset: the engine's default, as
  // PyTorch's get_default_qconfig(engine). tq/kernels/int8_saturation.h says which is safe where.
  std::optional<bool> reduce_range;
  // Symmetric activations: the zero point at the middle of [0, 255] (128), so that each int8 value
  // is q - 128 with zero point 0, as TensorRT takes them (tq::onnx::QdqProfile::kTensorRT). Needs the
  // full 8-bit range (reduce_range false): on [0, 127] PyTorch's symmetric zero point, 128, is
  // outside the range.
  bool symmetric_activations = false;
};

// Throws std::invalid_argument naming the field that is out of range or unknown.
nn::QConfig make_qconfig(const std::string& backend, const QConfigSpec& spec);

}  // namespace tq::quant
