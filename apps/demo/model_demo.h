#pragma once
// The main job of `make demo`: train a small CNN on Fashion-MNIST in C++ (cached), then quantize
// it four ways (static int8 with MinMax observers, static int8 with Histogram observers, dynamic
// int8, QAT int8) and compare accuracy, size and latency with fp32.
#include <nlohmann/json.hpp>
#include <string>

#include "idx_reader.h"

namespace tq::apps {

struct ModelDemoOptions {
  std::string out_dir = "build/demo";
  std::string engine;  // empty: onednn where available, else qnnpack
  int64_t epochs = 2;
  int64_t calibration_batches = 32;
  int64_t qat_batches = 300;
  int64_t latency_runs = 20;
};

nlohmann::json run_model_demo(const Dataset& train, const Dataset& test, const ModelDemoOptions& options);

}  // namespace tq::apps
