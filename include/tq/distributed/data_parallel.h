#pragma once
// Data-parallel quantization-aware training over a ProcessGroup, as PyTorch's DDP trains: every
// rank holds the same model, runs its own shard of each batch, and after backward the gradients
// are averaged over the ranks, so every rank takes the same optimizer step. What DDP leaves out
// (pytorch/pytorch#85627), tq does: while a forward runs under sync_batch_ranges(), min/max
// observers and fake quantizers update their statistics with the range of the global batch, so
// the ranks' scales and zero points stay identical and they convert to the same int8 model.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tq/core/options.h"
#include "tq/distributed/process_group.h"
#include "tq/observers/batch_range_reduction.h"

namespace torch::nn {
class Module;
}

namespace tq::distributed {

struct DataParallelOptions {
  // Gradients are all-reduced in buckets of about this many bytes (DDP's bucket_cap_mb).
  TQ_OPTION(DataParallelOptions, int64_t, bucket_bytes) = 25 << 20;
  // Start each bucket's all-reduce during backward, as soon as autograd has accumulated the
  // gradients of all its parameters (buckets in reverse parameter order, as DDP's), so
  // communication overlaps the rest of backward; all_reduce_gradients() then waits. Every
  // backward of the model is then a collective step: call all_reduce_gradients() after each
  // (accumulating gradients over several backward passes needs this off).
  TQ_OPTION(DataParallelOptions, bool, overlap_backward) = false;
};

class DataParallel {
 public:
  // Collective. Checks that every rank holds the same parameters and buffers (names and shapes:
  // a checksum, so different models fail here with an error, not later with a hang), then gives
  // every rank rank 0's values, as DDP does at construction. A converted (int8) module cannot
  // train: that is an error too. The model must outlive this object.
  DataParallel(torch::nn::Module& model, ProcessGroup& group, const DataParallelOptions& options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Keep the returned guard alive around the forward pass (collective: every rank's forward
  // observes the same tensors in the same order).
  [[nodiscard]] observers::ScopedBatchRangeReduction sync_batch_ranges();
  // Before each forward, as DDP's broadcast_buffers: every rank's buffers (batch-norm running
  // statistics, observer state) take rank 0's values, so batch norms trained on each rank's own
  // shard do not drift apart.
  void broadcast_buffers();
  // After backward: every parameter's gradient becomes the mean over the ranks (a parameter
  // without a gradient counts as zeros). With overlap_backward, finishes what backward started.
  void all_reduce_gradients();
  // overlap_backward: how many of the buckets the last all_reduce_gradients() found already
  // started by backward (the rest started after it).
  int64_t buckets_started_in_backward() const { return started_in_backward_; }
  // Throws on every rank, naming the ranks, if any rank's loss is NaN or infinite.
  void check_loss(double loss, int64_t step);

  ProcessGroup& group() { return group_; }

  struct Overlap;  // internal: the buckets and autograd hooks of overlap_backward

 private:
  void broadcast_from_rank0(const std::vector<at::Tensor>& tensors);

  torch::nn::Module& model_;
  ProcessGroup& group_;
  DataParallelOptions options_;
  std::shared_ptr<Overlap> overlap_;
  int64_t started_in_backward_ = 0;
};

}  // namespace tq::distributed
