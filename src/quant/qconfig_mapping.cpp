#include "tq/quant/qconfig_mapping.h"

#include "tq/core/check.h"
#include "tq/fake_quant/default_fake_quants.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/observers/default_observers.h"
#include "tq/observers/groupwise_weight_observer.h"

namespace tq::quant {

namespace obs = tq::observers;
namespace fq = tq::fake_quant;

QConfigMapping& QConfigMapping::set_global(nn::QConfig qconfig) {
  global_ = std::move(qconfig);
  return *this;
}
QConfigMapping& QConfigMapping::set_object_type(std::string module_type, nn::QConfig qconfig) {
  by_type_.emplace_back(std::move(module_type), std::move(qconfig));
  return *this;
}
QConfigMapping& QConfigMapping::set_module_name(std::string name, nn::QConfig qconfig) {
  by_name_.emplace_back(std::move(name), std::move(qconfig));
  return *this;
}
QConfigMapping& QConfigMapping::set_object_type_none(std::string type) {
  by_type_.emplace_back(std::move(type), std::nullopt);
  return *this;
}
QConfigMapping& QConfigMapping::set_module_name_none(std::string name) {
  by_name_.emplace_back(std::move(name), std::nullopt);
  return *this;
}

std::optional<nn::QConfig> QConfigMapping::resolve(const std::string& qualified_name, const std::string& type_name,
                                                   const std::optional<nn::QConfig>& parent) const {
  for (auto it = by_name_.rbegin(); it != by_name_.rend(); ++it) {
    if (it->first == qualified_name) return it->second;
  }
  for (auto it = by_type_.rbegin(); it != by_type_.rend(); ++it) {
    if (it->first == type_name) return it->second;
  }
  if (parent) return parent;
  return qualified_name.empty() ? global_ : std::nullopt;
}

namespace {
void check_backend(const std::string& backend, const char* op) {
  TQ_CHECK(backend == "x86" || backend == "fbgemm" || backend == "qnnpack" || backend == "onednn", op,
           "unknown backend '", backend, "'; expected x86, fbgemm, qnnpack or onednn");
}
nn::QuantizerFactory weight_observer(const std::string& backend) {
  return backend == "qnnpack" ? obs::default_weight_observer() : obs::default_per_channel_weight_observer();
}
}  // namespace

bool backend_reduces_range(const std::string& backend) { return backend == "x86" || backend == "fbgemm"; }

namespace {
// PyTorch's warning for onednn's full-range default on CPUs without VNNI, naming what decided.
void warn_if_full_range_saturates(const std::string& backend, const char* op) {
  if (backend != "onednn") return;
  const auto isa = kernels::int8::int8_isa(backend);
  if (!isa.saturates) return;
  TORCH_WARN(op, "(\"onednn\"): full-range activations saturate in this machine's int8 kernels (", isa.isa,
             ", no VNNI), so the int8 model may lose accuracy; use the \"x86\" qconfig (reduce_range) for CPUs "
             "without VNNI");
}
}  // namespace

nn::QConfig default_qconfig(const std::string& backend, bool reduce_range) {
  check_backend(backend, "default_qconfig");
  std::string name = backend;
  if (reduce_range != backend_reduces_range(backend)) name += reduce_range ? " reduce_range" : " full range";
  return {obs::with_args<obs::HistogramObserver>(obs::HistogramObserverOptions().reduce_range(reduce_range)),
          weight_observer(backend), name};
}

nn::QConfig get_default_qconfig(const std::string& backend) {
  check_backend(backend, "get_default_qconfig");
  warn_if_full_range_saturates(backend, "get_default_qconfig");
  return default_qconfig(backend, backend_reduces_range(backend));
}

nn::QConfig minmax_qconfig(const std::string& backend) {
  check_backend(backend, "minmax_qconfig");
  const bool reduce = backend_reduces_range(backend);
  return {obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions().reduce_range(reduce)),
          weight_observer(backend), backend + " minmax"};
}

nn::QConfig get_default_qat_qconfig(const std::string& backend) {
  check_backend(backend, "get_default_qat_qconfig");
  warn_if_full_range_saturates(backend, "get_default_qat_qconfig");
  const bool reduce = backend_reduces_range(backend);
  auto act = fq::fake_quantize_with_args<fq::FusedMovingAvgObsFakeQuantize>(fq::FakeQuantizeOptions().observer(
      obs::with_args<obs::MovingAverageMinMaxObserver>(
          obs::MovingAverageMinMaxObserverOptions().quant_min(0).quant_max(255).reduce_range(reduce))));
  auto weight = backend == "qnnpack" ? fq::default_fused_wt_fake_quant() : fq::default_fused_per_channel_wt_fake_quant();
  return {act, weight, backend + " qat"};
}

nn::QConfig default_dynamic_qconfig() {
  return {obs::default_dynamic_quant_observer(), obs::default_weight_observer(), "dynamic"};
}

nn::QConfig float_qparams_weight_only_qconfig() {
  return {obs::default_placeholder_observer(), obs::default_float_qparams_observer(), "float_qparams weight-only"};
}

nn::QConfig float_qparams_weight_only_qconfig_4bit() {
  return {obs::default_placeholder_observer(), obs::default_float_qparams_observer_4bit(),
          "float_qparams weight-only 4-bit"};
}

nn::QConfig float16_dynamic_qconfig() {
  auto fp16 = obs::with_args<obs::PlaceholderObserver>(
      obs::PlaceholderObserverOptions().dtype(QDType::Float16).is_dynamic(true));
  return {fp16, fp16, "float16 dynamic"};
}

nn::QConfig per_channel_dynamic_qconfig() {
  return {obs::default_dynamic_quant_observer(), obs::default_per_channel_weight_observer(), "per-channel dynamic"};
}

// The activation's placeholder says "per token" as PyTorch's observers say "per channel": a
// symmetric per-channel qint8 scheme, dynamic (the channel axis being the token's row).
nn::QConfig per_token_dynamic_qconfig() {
  return {obs::with_args<obs::PlaceholderObserver>(obs::PlaceholderObserverOptions()
                                                       .dtype(QDType::QInt8)
                                                       .qscheme(QScheme::PerChannelSymmetric)
                                                       .quant_min(-127)
                                                       .quant_max(127)
                                                       .eps(1e-5)
                                                       .is_dynamic(true)),
          obs::default_per_channel_weight_observer(), "per-token dynamic"};
}

nn::QConfig weight_only_qconfig(int64_t bits, int64_t group_size) {
  auto options = obs::GroupwiseWeightObserverOptions().bits(bits).group_size(group_size);
  obs::GroupwiseWeightObserver check(options);  // refuses bad bits and group sizes now, not at convert
  return {obs::default_placeholder_observer(), obs::with_args<obs::GroupwiseWeightObserver>(options),
          "weight-only " + std::to_string(bits) + "-bit g" + std::to_string(group_size)};
}

nn::QConfig weight_only_gptq_qconfig(int64_t bits, int64_t group_size, double damp, bool act_order) {
  auto options = obs::GroupwiseWeightObserverOptions().bits(bits).group_size(group_size).gptq(true).gptq_damp(damp)
                     .gptq_act_order(act_order);
  obs::GroupwiseWeightObserver check(options);
  return {obs::default_placeholder_observer(), obs::with_args<obs::GroupwiseWeightObserver>(options),
          "weight-only " + std::to_string(bits) + "-bit g" + std::to_string(group_size) + " GPTQ" +
              (act_order ? " act-order" : "")};
}

bool is_weight_only(const nn::QConfig& qconfig) {
  if (!qconfig.weight) return false;
  const auto made = qconfig.weight();
  return dynamic_cast<const obs::GroupwiseWeightObserver*>(made.get()) != nullptr;
}

bool is_per_token_dynamic(const nn::QConfig& qconfig) {
  if (!qconfig.activation) return false;
  const auto made = qconfig.activation();
  const auto* p = dynamic_cast<const obs::PlaceholderObserver*>(made.get());
  return p && p->options().is_dynamic() && p->options().dtype() == QDType::QInt8 &&
         p->options().qscheme() == QScheme::PerChannelSymmetric;
}

}  // namespace tq::quant
