#pragma once
// Reads IDX files (the MNIST / Fashion-MNIST format), plain or gzipped, into tensors.
#include <ATen/core/Tensor.h>

#include <string>

namespace tq::apps {

// uint8 tensor of the file's shape ([N, 28, 28] images, [N] labels). Throws with the path and
// the problem on a missing, truncated or malformed file.
at::Tensor read_idx(const std::string& path);

struct Dataset {
  at::Tensor images;  // float32 [N, 1, 28, 28], normalized with Fashion-MNIST's mean and std
  at::Tensor labels;  // int64 [N]
};

// split: "train" or "t10k". Pixels are scaled to [0, 1], then (x - 0.2860) / 0.3530.
Dataset load_fashion_mnist(const std::string& dir, const std::string& split);

}  // namespace tq::apps
