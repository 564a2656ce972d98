// Graph mode's TorchScript loader: any bytes give a module with a forward method or a tq::Error.
#include <cstdint>

#include "fuzz_inputs.h"
#include "tq/core/check.h"
#include "tq/graph/graph_quantizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tq::fuzz::write_input(data, size, ".pt");
  try {
    tq::graph::load_torchscript(path);
  } catch (const tq::Error&) {
  }
  return 0;
}
