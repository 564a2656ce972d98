#pragma once
// The LibTorch tq is compiled against, in one place: source differences between LibTorch versions
// are written as `#if TQ_TORCH_VERSION_AT_LEAST(2, 0)` here and nowhere as copies of files.
#include <torch/version.h>

#include <string>

#define TQ_TORCH_VERSION_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace tq {

// "2.13.0": the LibTorch version this tq was compiled against (what it writes into its int8
// models and names when a model from another version does not load).
inline std::string libtorch_version() { return TORCH_VERSION; }

// The extra file of every TorchScript file tq saves that holds libtorch_version().
inline constexpr const char* kLibTorchVersionFile = "tq_libtorch_version";

}  // namespace tq
