#include "tq/observers/observer_base.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <sstream>

#include "tq/core/check.h"
#include "tq/kernels/tensor_kernels.h"

namespace tq::observers {

ObserverBase::ObserverBase(std::string name, QDType dtype, bool is_dynamic)
    : torch::nn::Module(std::move(name)), dtype_(dtype), is_dynamic_(is_dynamic) {}

void ObserverBase::reset_min_max_vals() {
  TQ_FAIL(name(), "cannot reset min/max values in this observer");
}

void ObserverBase::pretty_print(std::ostream& stream) const { stream << name() << "(" << extra_repr() << ")"; }

bool ObserverBase::has_observed() const {
  for (const auto& b : named_buffers(/*recurse=*/false)) {
    if (b.key() == "min_val") {
      const auto& t = b.value();
      return t.numel() > 0 && std::isfinite(t.flatten()[0].item<float>());
    }
  }
  return true;
}

UniformQuantizationObserverBase::UniformQuantizationObserverBase(std::string name, QDType dtype, QScheme qscheme,
                                                                 bool reduce_range,
                                                                 c10::optional<int64_t> quant_min,
                                                                 c10::optional<int64_t> quant_max, double eps,
                                                                 bool is_dynamic)
    : ObserverBase(std::move(name), dtype, is_dynamic), qscheme_(qscheme), reduce_range_(reduce_range) {
  const std::string& op = this->name();
  TQ_CHECK(is_quantized(dtype), op, "dtype must be quint8, qint8, qint32 or quint4x2, got ", to_string(dtype));
  TQ_CHECK(quant_min.has_value() == quant_max.has_value(), op,
           "quant_min and quant_max must be given together (got only ", quant_min ? "quant_min" : "quant_max", ")");
  TQ_CHECK(std::isfinite(eps) && eps > 0, op, "eps must be positive and finite, got ", eps);
  has_customized_qrange_ = quant_min.has_value();
  if (has_customized_qrange_) validate_qmin_qmax(*quant_min, *quant_max, dtype, op.c_str());
  range_ = calculate_qmin_qmax(quant_min ? &*quant_min : nullptr, quant_max ? &*quant_max : nullptr, dtype,
                               reduce_range);
  TQ_CHECK(!(is_symmetric(qscheme) && reduce_range && dtype == QDType::QUInt8), op,
           "cannot reduce range for symmetric quantization with quint8");
  eps_ = register_buffer("eps", at::full({1}, static_cast<float>(eps), at::kFloat));
}

void UniformQuantizationObserverBase::use_full_range() {
  if (has_customized_qrange_ || !reduce_range_) return;
  reduce_range_ = false;
  range_ = calculate_qmin_qmax(nullptr, nullptr, dtype_, /*reduce_range=*/false);
}

QParams UniformQuantizationObserverBase::calculate_qparams_from(const at::Tensor& min_val,
                                                                const at::Tensor& max_val) const {
  QParamsSpec spec;
  spec.dtype = dtype_;
  spec.qscheme = qscheme_;
  spec.quant_min = range_.quant_min;
  spec.quant_max = range_.quant_max;
  spec.has_customized_qrange = has_customized_qrange_;
  spec.eps = eps_.item<float>();
  if (min_val.numel() > 0 && (min_val.flatten()[0].item<float>() == std::numeric_limits<float>::infinity())) {
    // As PyTorch's observers do.
    TORCH_WARN("[", name(), "] must run observer before calling calculate_qparams. Returning default values.");
  }
  return tq::calculate_qparams(min_val, max_val, spec);
}

at::Tensor UniformQuantizationObserverBase::checked_input(const at::Tensor& x) const {
  const std::string& op = name();
  TQ_CHECK(x.defined(), op, "input is undefined");
  TQ_CHECK(at::isFloatingType(x.scalar_type()), op, "input must be a floating-point tensor, got ", x.scalar_type());
  TQ_CHECK(x.numel() > 0, op, "input is empty (shape ", x.sizes(), "); there is nothing to observe");
  kernels::check_kernels_exist(x, op.c_str());
  if (x.scalar_type() == at::kDouble) {
    // Observers compute in float32: a finite float64 value beyond its range would become Inf.
    const double largest = x.detach().abs().masked_fill(x.detach().isinf(), 0).max().item<double>();
    TQ_CHECK(largest <= std::numeric_limits<float>::max(), op, "float64 input holds ", largest,
             ", beyond float32's range (", std::numeric_limits<float>::max(), ") in which observers compute");
  }
  return x.detach().to(at::kFloat).contiguous();
}

std::string UniformQuantizationObserverBase::quantization_repr() const {
  std::ostringstream s;
  s << "dtype=" << to_string(dtype_) << ", qscheme=" << to_string(qscheme_) << ", quant_min=" << quant_min()
    << ", quant_max=" << quant_max();
  return s.str();
}

}  // namespace tq::observers
