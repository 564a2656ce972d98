#pragma once
// The int8 engine the demos run on: onednn where LibTorch has it, else the first available.
#include <string>

namespace tq::apps {

// Sets the engine (tq::kernels::int8::set_engine) and returns its name.
std::string use_preferred_engine();

}  // namespace tq::apps
