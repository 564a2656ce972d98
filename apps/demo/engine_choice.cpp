#include "engine_choice.h"

#include <algorithm>

#include "tq/kernels/int8.h"

namespace tq::apps {

std::string use_preferred_engine() {
  const auto engines = kernels::int8::available_engines();
  const std::string engine =
      std::find(engines.begin(), engines.end(), "onednn") != engines.end() ? "onednn" : engines.at(0);
  kernels::int8::set_engine(engine);
  return engine;
}

}  // namespace tq::apps
