#include "engine_choice.h"

#include <algorithm>

#include "tq/kernels/int8.h"
#include "tq/kernels/int8_saturation.h"

namespace tq::apps {

std::string use_preferred_engine() {
  const auto engines = kernels::int8::available_engines();
  const std::string engine =
      std::find(engines.begin(), engines.end(), "onednn") != engines.end() ? "onednn" : engines.at(0);
  kernels::int8::set_engine(engine);
  return engine;
}

std::string qconfig_backend(const std::string& engine) {
  return kernels::int8::choose_activation_range(engine, /*target_vnni=*/false).reduce_range ? "x86" : engine;
}

}  // namespace tq::apps
