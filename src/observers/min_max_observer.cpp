#include "tq/observers/min_max_observer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "tq/core/check.h"
#include "tq/observers/batch_range_reduction.h"
#include "tq/kernels/tensor_kernels.h"

namespace tq::observers {

constexpr float kInf = std::numeric_limits<float>::infinity();

template <class Self>
MinMaxObserver::MinMaxObserver(std::string name, const UniformQuantizationOptions<Self>& o)
    : UniformQuantizationObserverBase(std::move(name), o) {
  TQ_CHECK(is_per_tensor(o.qscheme()), this->name(),
           "qscheme must be per_tensor_affine or per_tensor_symmetric, got ", to_string(o.qscheme()));
  min_val_ = register_buffer("min_val", at::scalar_tensor(kInf, at::kFloat));
  max_val_ = register_buffer("max_val", at::scalar_tensor(-kInf, at::kFloat));
}
template MinMaxObserver::MinMaxObserver(std::string, const UniformQuantizationOptions<MinMaxObserverOptions>&);
template MinMaxObserver::MinMaxObserver(std::string,
                                        const UniformQuantizationOptions<MovingAverageMinMaxObserverOptions>&);

MinMaxObserver::MinMaxObserver(const MinMaxObserverOptions& options) : MinMaxObserver("MinMaxObserver", options) {}

std::pair<float, float> MinMaxObserver::observed_range(const at::Tensor& x) const {
  auto [mn, mx] = kernels::min_max(x);
  TQ_CHECK(!std::isnan(mn), name(), "input contains NaN");
  TQ_CHECK(std::isfinite(mn) && std::isfinite(mx), name(), "input contains Inf (min ", mn, ", max ", mx,
           "); an infinite range has no finite scale");
  reduce_batch_range(&mn, &mx, 1);
  return {mn, mx};
}

at::Tensor MinMaxObserver::forward(const at::Tensor& x_orig) {
  const auto x = checked_input(x_orig);
  const auto [mn, mx] = observed_range(x);
  const float old_mn = min_val_.item<float>(), old_mx = max_val_.item<float>();
  min_val_.fill_(std::min(mn, old_mn));
  max_val_.fill_(std::max(mx, old_mx));
  return x_orig;
}

QParams MinMaxObserver::calculate_qparams() { return calculate_qparams_from(min_val_, max_val_); }

void MinMaxObserver::reset_min_max_vals() {
  min_val_.fill_(kInf);
  max_val_.fill_(-kInf);
}

std::string MinMaxObserver::extra_repr() const {
  std::ostringstream s;
  s << "min_val=" << min_val_.item<float>() << ", max_val=" << max_val_.item<float>() << ", " << quantization_repr();
  return s.str();
}

MovingAverageMinMaxObserver::MovingAverageMinMaxObserver(const MovingAverageMinMaxObserverOptions& options)
    : MinMaxObserver("MovingAverageMinMaxObserver", options), averaging_constant_(options.averaging_constant()) {
  TQ_CHECK(averaging_constant_ > 0 && averaging_constant_ <= 1, name(), "averaging_constant must be in (0, 1], got ",
           averaging_constant_);
  TQ_CHECK(!is_dynamic_ || averaging_constant_ == 1, name(),
           "dynamic quantization needs averaging_constant 1, got ", averaging_constant_);
}

at::Tensor MovingAverageMinMaxObserver::forward(const at::Tensor& x_orig) {
  const auto x = checked_input(x_orig);
  const auto [mn, mx] = observed_range(x);
  float new_mn = mn, new_mx = mx;
  const float old_mn = min_val_.item<float>(), old_mx = max_val_.item<float>();
  if (!(old_mn == kInf && old_mx == -kInf)) {
    // float32, one rounding per tensor op, as PyTorch evaluates min + c * (cur - min).
    const float c = static_cast<float>(averaging_constant_);
    new_mn = old_mn + c * (mn - old_mn);
    new_mx = old_mx + c * (mx - old_mx);
  }
  min_val_.fill_(new_mn);
  max_val_.fill_(new_mx);
  return x_orig;
}

}  // namespace tq::observers
