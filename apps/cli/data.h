#pragma once
// Calibration and evaluation data for the tq command-line tool: a .pt file (torch.save of a tensor
// [N, ...] or a list of tensors), a .npy array, IDX files (MNIST / Fashion-MNIST, plain or gzipped), or a
// directory of PNG / JPEG images (decoded by stb_image from Debian's libstb; one sub-folder per
// class gives labels).
#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace tq::cli {

// A problem with an input file (exit code 2), as opposed to a usage error or a runtime failure.
struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct DataOptions {
  std::string labels;              // IDX labels file (or labels come from class folders)
  int64_t resize = 0;              // images: shorter side resized to this (0: keep)
  int64_t center_crop = 0;         // images: square center crop (0: none)
  int64_t channels = 3;            // images: 1 (grey) or 3 (RGB)
  std::vector<double> mean = {0.485, 0.456, 0.406};  // images: ImageNet's
  std::vector<double> std = {0.229, 0.224, 0.225};
  bool normalize_idx = false;      // IDX: apply mean / std (first value) after scaling to [0, 1]
  bool skip_bad = false;           // images: skip unreadable files (counted) instead of failing
  int64_t limit = 0;               // at most this many samples (0: all)
};

struct Samples {
  at::Tensor inputs;   // float32 [N, ...]
  at::Tensor labels;   // int64 [N], or undefined
  int64_t skipped = 0; // unreadable images skipped with skip_bad
};

Samples load_samples(const std::string& path, const DataOptions& options);
// Consecutive batches of at most batch_size samples.
std::vector<at::Tensor> batches(const at::Tensor& inputs, int64_t batch_size, int64_t max_batches);

// What --calib holds: samples of one input, or the inputs of a model whose forward takes several
// tensors (a .pt file holding a dict {argument name: tensor [N, ...]}, what a Hugging Face tokenizer
// returns, saved by torch.save). The file is read once.
struct CalibrationData {
  Samples samples;                                  // one input
  std::map<std::string, at::Tensor> named_inputs;   // or named inputs
  bool is_named() const { return !named_inputs.empty(); }
};
CalibrationData load_calibration_data(const std::string& path, const DataOptions& options);
// The named inputs' batches of at most batch_size samples, each the forward's arguments in
// `argument_names`' order. BadInput (naming `path`) when an argument is missing, a key names no
// argument, or the counts differ.
std::vector<std::vector<c10::IValue>> named_input_batches(const CalibrationData& data, const std::string& path,
                                                          const std::vector<std::string>& argument_names,
                                                          int64_t batch_size, int64_t max_batches);

}  // namespace tq::cli
