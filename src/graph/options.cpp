// The two configurations of graph mode: PyTorch FX's defaults and seed 004's own.
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "tq/graph/graph_quantizer.h"
#include "tq/observers/observer_base.h"

namespace tq::graph {
namespace {

// Seed 004's MinMaxObserver and _minmax_scale_zeropoint: the range as Python floats (doubles),
// widened to include 0, scale = max((max - min) / (qmax - qmin), float32 eps),
// zero_point = clamp(qmin - round_half_even(min / scale), qmin, qmax); the double scale is kept.
class SeedMinMaxObserver : public observers::ObserverBase {
 public:
  SeedMinMaxObserver(QDType dtype, int64_t qmin, int64_t qmax)
      : ObserverBase("SeedMinMaxObserver", dtype, false), qmin_(qmin), qmax_(qmax) {
    // min_val / max_val as buffers so the generic "has it observed?" check sees them.
    min_val_ = register_buffer("min_val", at::full({1}, std::numeric_limits<double>::infinity(), at::kDouble));
    max_val_ = register_buffer("max_val", at::full({1}, -std::numeric_limits<double>::infinity(), at::kDouble));
  }
  at::Tensor forward(const at::Tensor& x) override {
    if (!x.defined() || !x.is_floating_point() || x.numel() == 0) return x;  // the seed's all_tensors = False
    const auto mm = at::aminmax(x.detach());
    const double lo = std::get<0>(mm).item<double>(), hi = std::get<1>(mm).item<double>();
    min_val_.fill_(std::min(min_val_.item<double>(), lo));
    max_val_.fill_(std::max(max_val_.item<double>(), hi));
    return x;
  }
  QParams calculate_qparams() override {
    const double min_val = std::min(0.0, min_val_.item<double>());
    const double max_val = std::max(0.0, max_val_.item<double>());
    double scale = 1.0;
    int64_t zero_point = 0;
    if (max_val != min_val) {
      const double eps = kFloat32Eps;
      scale = std::max((max_val - min_val) / static_cast<double>(qmax_ - qmin_), eps);
      const double zp = static_cast<double>(qmin_) - std::nearbyint(min_val / scale);  // round half to even
      zero_point = static_cast<int64_t>(std::min<double>(qmax_, std::max<double>(qmin_, zp)));
    }
    return {at::full({1}, scale, at::kDouble), at::full({1}, zero_point, at::kLong)};
  }
  std::string extra_repr() const override {
    std::ostringstream s;
    s << "qmin=" << qmin_ << ", qmax=" << qmax_;
    return s.str();
  }

 private:
  int64_t qmin_, qmax_;
  at::Tensor min_val_, max_val_;
};

}  // namespace

GraphQuantizeOptions GraphQuantizeOptions::for_backend(const std::string& backend) {
  GraphQuantizeOptions o;
  o.mapping.set_global(quant::get_default_qconfig(backend));
  o.patterns = default_patterns();
  return o;
}

GraphQuantizeOptions GraphQuantizeOptions::for_backend_qat(const std::string& backend) {
  GraphQuantizeOptions o;
  o.mapping.set_global(quant::get_default_qat_qconfig(backend));
  o.patterns = default_patterns();
  return o;
}

GraphQuantizeOptions GraphQuantizeOptions::dynamic() {
  GraphQuantizeOptions o;
  o.mapping.set_global(quant::default_dynamic_qconfig());
  o.patterns = dynamic_patterns();
  return o;
}

GraphQuantizeOptions GraphQuantizeOptions::fx_test_reference() {
  GraphQuantizeOptions o;
  nn::QConfig q;
  q.activation = observers::ObserverFactory(
      [] { return std::make_shared<SeedMinMaxObserver>(QDType::QUInt8, 0, 255); });
  q.weight = observers::ObserverFactory([] { return std::make_shared<SeedMinMaxObserver>(QDType::QInt8, -127, 128); });
  q.name = "fx_test_reference";
  o.mapping.set_global(q);
  o.patterns = seed_patterns();
  return o;
}

}  // namespace tq::graph
