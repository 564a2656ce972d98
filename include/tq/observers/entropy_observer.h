#pragma once
// EntropyObserver: TensorRT's KL-divergence calibration (Migacz 2017, as MXNet formulates it).
// Over the histogram of |x|, every threshold from `levels` bins up to all of them is tried: the
// distribution clipped there (outliers added to its last bin) is compared with its quantized
// version (merged into `levels` groups, spread back over the non-empty bins), and the threshold
// with the smallest KL divergence wins. `levels` is the number of quantization levels magnitudes
// get: all of them for one-sided data (after ReLU), half for signed data.
#include "tq/observers/calibration_histogram_observer.h"

namespace tq::observers {

struct EntropyObserverOptions : CalibrationHistogramOptions<EntropyObserverOptions> {};

class EntropyObserver : public CalibrationHistogramObserver {
 public:
  explicit EntropyObserver(const EntropyObserverOptions& options = {});
  std::pair<float, float> choose_range() const override;
};

}  // namespace tq::observers
