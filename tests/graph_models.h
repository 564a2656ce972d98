#pragma once
// The torchvision models and inputs tools/graph_models.py writes at test time, as the graph-mode
// and ONNX export tests read them.
#include <ATen/core/ivalue.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace tq::testing {

inline std::string models_dir() {
  const char* env = std::getenv("TQ_GRAPH_MODELS_DIR");
  return env ? env : TQ_GRAPH_MODELS_DIR;
}

// A tensor saved with torch.save by the generator.
inline at::Tensor load_tensor(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing " << path << " (written by tools/graph_models.py)";
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(bytes).toTensor();
}

// A model's output, or the first element of the tuple it returns (googlenet's aux outputs).
inline at::Tensor first_output(const c10::IValue& v) {
  return v.isTuple() ? v.toTupleRef().elements()[0].toTensor() : v.toTensor();
}

}  // namespace tq::testing
