#pragma once
// PyTorch's ready-made observer constructors (torch.ao.quantization.observer.default_*), with the
// same arguments. Each returns a factory that makes a fresh observer per call.
#include "tq/observers/histogram_observer.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"
#include "tq/observers/simple_observers.h"

namespace tq::observers {

ObserverFactory default_observer();                   // MinMax, quint8, quant range [0, 127]
ObserverFactory default_weight_observer();            // MinMax, qint8, per_tensor_symmetric
ObserverFactory weight_observer_range_neg_127_to_127();
ObserverFactory default_histogram_observer();         // Histogram, quant range [0, 127]
ObserverFactory default_per_channel_weight_observer();
ObserverFactory per_channel_weight_observer_range_neg_127_to_127();
ObserverFactory default_dynamic_quant_observer();     // Placeholder, quint8, dynamic
ObserverFactory default_float_qparams_observer();     // PerChannel, float qparams, ch_axis 0
ObserverFactory default_float_qparams_observer_4bit();
ObserverFactory default_placeholder_observer();
ObserverFactory default_debug_observer();             // Recording
ObserverFactory default_fixed_qparams_range_0to1_observer();    // scale 1/256, zero_point 0
ObserverFactory default_fixed_qparams_range_neg1to1_observer(); // scale 2/256, zero_point 128

}  // namespace tq::observers
