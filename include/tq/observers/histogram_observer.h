#pragma once
// HistogramObserver: a running histogram of everything observed (re-binned when the range grows)
// and an L2-error search for the clipping range, as PyTorch 2.x computes it. Memory is fixed by
// `bins` (bins * 16 floats at most while re-binning), whatever the data's range or outliers.
#include <vector>

#include "tq/observers/observer_base.h"

namespace tq::observers {

struct HistogramObserverOptions : UniformQuantizationOptions<HistogramObserverOptions> {
  TQ_OPTION(HistogramObserverOptions, int64_t, bins) = 2048;
  // Accepted for PyTorch compatibility; PyTorch 2.x re-bins with a fixed upsample rate of 16.
  TQ_OPTION(HistogramObserverOptions, int64_t, upsample_rate) = 128;
};

class HistogramObserver : public UniformQuantizationObserverBase {
 public:
  explicit HistogramObserver(const HistogramObserverOptions& options = {});
  at::Tensor forward(const at::Tensor& x) override;
  QParams calculate_qparams() override;
  void reset_min_max_vals() override;
  std::string extra_repr() const override;
  std::vector<std::string> resizable_buffers() const override { return {"min_val", "max_val"}; }
  void validate_state() const override;
  void merge_across_processes(Collective& group, const std::string& name) override;

  int64_t bins() const { return bins_; }
  const at::Tensor& histogram() const { return histogram_; }
  const at::Tensor& min_val() const { return min_val_; }
  const at::Tensor& max_val() const { return max_val_; }

  // Adds another observer's state (its histogram over [min_val, max_val]), as if its data had
  // been observed here: both histograms are re-binned onto the union of the ranges with the rule
  // forward uses when the range grows (a range equal to the union is kept as is), then added.
  // Merging the states of observers that saw disjoint shards, in shard order, is tq's rule for
  // distributed calibration; an empty state (min_val +inf) changes nothing.
  void merge(const at::Tensor& histogram, float min_val, float max_val);
  // The clipping range the L2 search picks (PyTorch's _non_linear_param_search).
  std::pair<float, float> non_linear_param_search() const;

  static constexpr int64_t kUpsampleRate = 16;

 private:
  double quantization_error(int64_t start_bin, int64_t end_bin) const;
  // histogram h over [lo, hi] re-binned onto [new_lo, new_hi], which contains it.
  std::vector<float> rebin(const float* h, float lo, float hi, float new_lo, float new_hi) const;

  int64_t bins_;
  int64_t dst_nbins_;
  at::Tensor histogram_;  // [bins] float32
  at::Tensor min_val_;    // 0-dim
  at::Tensor max_val_;
};

// torch.histc(x, bins, min, max) on float32 data, with ATen's bin arithmetic.
at::Tensor histc(const at::Tensor& x, int64_t bins, float min, float max);

}  // namespace tq::observers
