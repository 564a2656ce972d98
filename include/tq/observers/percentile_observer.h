#pragma once
// PercentileObserver: ONNX Runtime's percentile calibration. Symmetric schemes clip |x| at the
// given percentile of the magnitude histogram; affine schemes cut (100 - percentile) / 2 percent
// from each end of the signed histogram. Thresholds sit on bin edges, as ONNX Runtime's do.
#include "tq/observers/calibration_histogram_observer.h"

namespace tq::observers {

struct PercentileObserverOptions : CalibrationHistogramOptions<PercentileObserverOptions> {
  TQ_OPTION(PercentileObserverOptions, double, percentile) = 99.999;  // in (0, 100]
};

class PercentileObserver : public CalibrationHistogramObserver {
 public:
  explicit PercentileObserver(const PercentileObserverOptions& options = {});
  std::pair<float, float> choose_range() const override;
  double percentile() const { return percentile_; }

 private:
  double percentile_;
};

}  // namespace tq::observers
