// The state-dict loader: any bytes give a StateDict or a tq::Error, never a crash; what parses is
// then loaded (non-strict) into a module, whose shape and type checks must hold too.
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <string>

#include "fuzz_inputs.h"
#include "tq/core/check.h"
#include "tq/serialize/state_dict.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tq::serialize::StateDict state;
  try {
    state = tq::serialize::parse_state_dict(tq::fuzz::state_dict_file(data, size), "fuzz.pt");
  } catch (const tq::Error&) {
    return 0;
  }
  // Loading never changes its shapes (a Linear has no resizable buffers): one for every input.
  static torch::nn::LinearImpl linear(4, 3);
  try {
    tq::serialize::load_state_dict(linear, state, /*strict=*/false);
  } catch (const tq::Error&) {
  }
  return 0;
}
