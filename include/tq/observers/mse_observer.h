#pragma once
// MSEObserver: the clipping range with the smallest mean squared quantization error over the
// histogram (pytorch-quantization's "mse" calibrator): candidate ranges end at the centres of the
// magnitude bins from bins / 16 on, and each is scored by quantizing every bin's centre with the
// qparams that range gives, weighted by the bin's count.
#include "tq/observers/calibration_histogram_observer.h"

namespace tq::observers {

struct MSEObserverOptions : CalibrationHistogramOptions<MSEObserverOptions> {};

class MSEObserver : public CalibrationHistogramObserver {
 public:
  explicit MSEObserver(const MSEObserverOptions& options = {});
  std::pair<float, float> choose_range() const override;
};

}  // namespace tq::observers
