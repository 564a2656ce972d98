#pragma once
// The int8 engine the demos run on: onednn where LibTorch has it, else the first available.
#include <string>

namespace tq::apps {

// Sets the engine (tq::kernels::int8::set_engine) and returns its name.
std::string use_preferred_engine();

// The backend whose default qconfigs the demos take for `engine`: one whose activation range runs
// right on every CPU, as the tq tool chooses it ("x86", reduce_range, on the x86 engines: full-range
// activations saturate in int8 kernels without VNNI; tq/kernels/int8_saturation.h).
std::string qconfig_backend(const std::string& engine);

}  // namespace tq::apps
