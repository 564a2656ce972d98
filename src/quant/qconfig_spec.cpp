#include "tq/quant/qconfig_spec.h"

#include <stdexcept>

#include "tq/observers/default_observers.h"
#include "tq/observers/entropy_observer.h"
#include "tq/observers/histogram_observer.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/mse_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"
#include "tq/observers/per_channel_mse_observer.h"
#include "tq/observers/percentile_observer.h"
#include "tq/quant/qconfig_mapping.h"

namespace tq::quant {

nn::QConfig make_qconfig(const std::string& engine, const QConfigSpec& c) {
  namespace obs = tq::observers;
  const bool reduce = c.reduce_range.value_or(backend_reduces_range(engine));
  auto q = default_qconfig(engine, reduce);
  if (c.weight_bits < 2 || c.weight_bits > 8 || c.activation_bits < 2 || c.activation_bits > 8) {
    throw std::invalid_argument("bits must be between 2 and 8, got weights " + std::to_string(c.weight_bits) +
                                ", activations " + std::to_string(c.activation_bits));
  }
  if (c.symmetric_activations && (reduce || c.activation_bits != 8)) {
    throw std::invalid_argument("symmetric activations take 8 bits on the full range [0, 255] (reduce_range false)");
  }
  // Activations: quint8 on [0, 2^bits - 1] (the engine's reduced range at 8 bits).
  auto act = [&](auto options) {
    if (c.symmetric_activations) options.qscheme(tq::QScheme::PerTensorSymmetric);
    if (c.activation_bits == 8) return options.reduce_range(reduce);
    return options.quant_min(0).quant_max((int64_t{1} << c.activation_bits) - 1);
  };
  if (c.activation == "histogram") {
    q.activation = obs::with_args<obs::HistogramObserver>(act(obs::HistogramObserverOptions()));
  } else if (c.activation == "minmax") {
    q.activation = obs::with_args<obs::MinMaxObserver>(act(obs::MinMaxObserverOptions()));
  } else if (c.activation == "moving-average") {
    q.activation = obs::with_args<obs::MovingAverageMinMaxObserver>(act(obs::MovingAverageMinMaxObserverOptions()));
  } else if (c.activation == "entropy") {
    q.activation = obs::with_args<obs::EntropyObserver>(act(obs::EntropyObserverOptions()));
  } else if (c.activation == "percentile") {
    q.activation = obs::with_args<obs::PercentileObserver>(act(obs::PercentileObserverOptions().percentile(c.percentile)));
  } else if (c.activation == "mse") {
    q.activation = obs::with_args<obs::MSEObserver>(act(obs::MSEObserverOptions()));
  } else {
    throw std::invalid_argument("unknown activation observer '" + c.activation +
                                "' (expected histogram, minmax, moving-average, entropy, percentile, mse)");
  }
  // Weights: qint8, symmetric, on [-2^(bits-1), 2^(bits-1) - 1].
  const int64_t wmax = (int64_t{1} << (c.weight_bits - 1)) - 1, wmin = -wmax - 1;
  if (c.weights == "per-channel") {
    if (c.weight_bits != 8) {
      q.weight = obs::with_args<obs::PerChannelMinMaxObserver>(obs::PerChannelMinMaxObserverOptions()
                                                                   .dtype(tq::QDType::QInt8)
                                                                   .qscheme(tq::QScheme::PerChannelSymmetric)
                                                                   .quant_min(wmin)
                                                                   .quant_max(wmax));
    }
  } else if (c.weights == "per-tensor") {
    q.weight = obs::with_args<obs::MinMaxObserver>(
        obs::MinMaxObserverOptions().dtype(tq::QDType::QInt8).qscheme(tq::QScheme::PerTensorSymmetric).quant_min(wmin).quant_max(wmax));
  } else if (c.weights == "per-tensor-mse") {
    q.weight = obs::with_args<obs::MSEObserver>(
        obs::MSEObserverOptions().dtype(tq::QDType::QInt8).qscheme(tq::QScheme::PerTensorSymmetric).quant_min(wmin).quant_max(wmax));
  } else if (c.weights == "per-channel-mse") {
    q.weight = obs::with_args<obs::PerChannelMSEObserver>(obs::PerChannelMSEObserverOptions().quant_min(wmin).quant_max(wmax));
  } else {
    throw std::invalid_argument("weights must be per-channel, per-tensor, per-channel-mse or per-tensor-mse, got '" +
                                c.weights + "'");
  }
  return q;
}

}  // namespace tq::quant
