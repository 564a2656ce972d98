#pragma once
// Base of the observers that pick a clipping range from a histogram of everything observed:
// EntropyObserver, PercentileObserver, MSEObserver. The histogram covers [-T, T] with a fixed
// number of bins; when data exceeds T the range doubles by merging pairs of bins, which is exact
// (no re-binning error) and keeps memory fixed whatever the data's range.
//
// Buffers: histogram (float64 counts, [bins]), threshold (T), min_val, max_val (running extremes,
// which every chosen range is clipped to).
#include "tq/observers/observer_base.h"

#include <utility>

namespace tq::observers {

template <class Self>
struct CalibrationHistogramOptions : UniformQuantizationOptions<Self> {
  TQ_OPTION(Self, int64_t, bins) = 2048;  // a multiple of 4: pairs merge around zero
};

class CalibrationHistogramObserver : public UniformQuantizationObserverBase {
 public:
  at::Tensor forward(const at::Tensor& x) override;
  // The chosen range clipped to [min_val, max_val], then PyTorch's _calculate_qparams.
  QParams calculate_qparams() override;
  void reset_min_max_vals() override;
  void validate_state() const override;
  std::string extra_repr() const override;

  // The range the method picks, before clipping to what was observed.
  virtual std::pair<float, float> choose_range() const = 0;
  // choose_range() clipped to [min_val, max_val]; (0, 0) before any data.
  std::pair<float, float> clipped_range() const;

  int64_t bins() const { return bins_; }
  const at::Tensor& histogram() const { return histogram_; }
  float threshold() const { return threshold_.item<float>(); }
  const at::Tensor& min_val() const { return min_val_; }
  const at::Tensor& max_val() const { return max_val_; }

 protected:
  template <class Self>
  CalibrationHistogramObserver(std::string name, const CalibrationHistogramOptions<Self>& o)
      : CalibrationHistogramObserver(std::move(name), static_cast<const UniformQuantizationOptions<Self>&>(o),
                                     o.bins()) {}
  template <class Self>
  CalibrationHistogramObserver(std::string name, const UniformQuantizationOptions<Self>& o, int64_t bins)
      : UniformQuantizationObserverBase(std::move(name), o) {
    init(bins, o.qscheme(), o.is_dynamic());
  }

  // Bin width (2T / bins) and magnitude histogram m[k] = count of |x| in [k w, (k + 1) w).
  double bin_width() const;
  std::vector<double> magnitudes() const;
  // Data never went below zero: the quantization range can start at 0.
  bool one_sided() const;
  // Quantization levels available for magnitudes: all of them for one-sided data, else half.
  int64_t magnitude_levels() const;

 private:
  void init(int64_t bins, QScheme qscheme, bool is_dynamic);
  // Doubles T, merging pairs of bins.
  void double_range();

  int64_t bins_ = 0;
  at::Tensor histogram_;  // [bins] float64
  at::Tensor threshold_;  // 0-dim float32, 0 until non-zero data was seen
  at::Tensor min_val_;    // 0-dim float32
  at::Tensor max_val_;
};

}  // namespace tq::observers
