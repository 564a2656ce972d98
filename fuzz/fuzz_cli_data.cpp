// The tq tool's data loaders (.pt, .npy, IDX plain and gzipped): the first byte picks the format,
// the rest is the file. Bad files must give BadInput or tq::Error, never a crash.
#include <cstdint>

#include "data.h"
#include "fuzz_inputs.h"
#include "tq/core/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string path = tq::fuzz::data_file(data, size);
  tq::cli::DataOptions options;
  options.limit = 64;
  try {
    tq::cli::load_samples(path, options);
  } catch (const tq::cli::BadInput&) {
  } catch (const tq::Error&) {
  }
  return 0;
}
