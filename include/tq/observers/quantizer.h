#pragma once
// What every observer and fake quantizer (FakeQuantize family, LSQ, AdaRound) answers, whichever
// it is: PyTorch's workflows read dtype, qscheme, ch_axis and calculate_qparams() from either.
#include <ATen/core/Tensor.h>

#include <string>

#include "tq/core/dtypes.h"
#include "tq/numerics/qparams.h"

namespace tq {

class Collective;

class Quantizer {
 public:
  virtual ~Quantizer() = default;
  // Observers record x and return it; fake quantizers return x fake-quantized.
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  virtual QParams calculate_qparams() = 0;
  virtual QDType dtype() const = 0;
  virtual QScheme qscheme() const = 0;
  // The channel axis of per-channel schemes; -1 per tensor.
  virtual int64_t ch_axis() const { return -1; }
  virtual bool is_dynamic() const { return false; }
  // Whether calculate_qparams has data to work from (always, for fixed and learned qparams).
  virtual bool has_observed() const { return true; }
  // The integers values are quantized to ([0, 127] for reduce_range uint8); nullopt where no
  // integer range applies (placeholders, float16, float qparams).
  virtual c10::optional<QRange> quant_range() const { return c10::nullopt; }
  // Makes this quantizer hold the statistics of every rank's data, identically on every rank
  // (distributed calibration; collective: every rank calls it in the same order). `name` names it
  // in errors. Throws for quantizers that cannot merge (rules: tq/distributed/observer_sync.h).
  virtual void merge_across_processes(Collective& group, const std::string& name);
};

}  // namespace tq
