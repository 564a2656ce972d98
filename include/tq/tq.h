#pragma once
// Everything public in tq.
#include "tq/core/dtypes.h"
#include "tq/numerics/fake_quantize.h"
#include "tq/numerics/qparams.h"
#include "tq/observers/default_observers.h"
#include "tq/observers/entropy_observer.h"
#include "tq/observers/mse_observer.h"
#include "tq/observers/per_channel_mse_observer.h"
#include "tq/observers/percentile_observer.h"
#include "tq/serialize/state_dict.h"
