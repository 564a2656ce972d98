#pragma once
// What merging statistics across processes needs from them. Observers merge themselves through it
// (Quantizer::merge_across_processes); tq::distributed::ProcessGroup provides it on c10d.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace tq {

enum class ReduceOp { Sum, Min, Max };

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int64_t world_size() const = 0;
  // In place, on every rank; tensors must have the same shapes and dtypes on every rank.
  virtual void all_reduce(std::vector<at::Tensor>& tensors, ReduceOp op) = 0;
  // Every rank's copy of `tensor` (same shape everywhere), in rank order.
  virtual std::vector<at::Tensor> all_gather(const at::Tensor& tensor) = 0;
};

}  // namespace tq
