#pragma once
// A group of processes that calibrate or train together, on LibTorch's c10d (Gloo on CPU).
// Every process creates it with the same world size and store; each gets its own rank. The
// rendezvous goes through a store: a file all processes can reach (FileStore) or a TCP server
// that rank 0 runs (TCPStore). A rank that dies or stops answering makes the others' next
// collective fail with tq::Error within the timeout; nothing waits for ever.
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tq/core/collective.h"
#include "tq/core/options.h"

namespace tq::distributed {

struct ProcessGroupOptions {
  TQ_OPTION(ProcessGroupOptions, int64_t, rank) = 0;
  TQ_OPTION(ProcessGroupOptions, int64_t, world_size) = 1;
  // Rendezvous through this file (FileStore); empty: through TCP at master_addr:master_port.
  TQ_OPTION(ProcessGroupOptions, std::string, file_store) = "";
  TQ_OPTION(ProcessGroupOptions, std::string, master_addr) = "127.0.0.1";
  TQ_OPTION(ProcessGroupOptions, int64_t, master_port) = 29500;
  // The interface the ranks talk over (an address of this machine).
  TQ_OPTION(ProcessGroupOptions, std::string, hostname) = "127.0.0.1";
  // Rendezvous and every collective fail after this long.
  TQ_OPTION(ProcessGroupOptions, std::chrono::milliseconds, timeout) = std::chrono::milliseconds(60000);
};

using ReduceOp = tq::ReduceOp;

// A collective in flight (ProcessGroup::all_reduce_async): wait() completes it, throwing as the
// blocking call would.
class PendingCollective {
 public:
  void wait();
  struct Impl;
  explicit PendingCollective(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<Impl> impl_;
};

class ProcessGroup : public Collective {
 public:
  // Joins the group; throws tq::Error naming the problem (bad rank or world size, an unreachable
  // store, ranks that did not all join within the timeout).
  static ProcessGroup create(const ProcessGroupOptions& options);

  int64_t rank() const;
  int64_t world_size() const override;
  // In place, on every rank; tensors must have the same shapes and dtypes on every rank.
  void all_reduce(std::vector<at::Tensor>& tensors, ReduceOp op) override;
  // The same, started and returned at once (DDP overlaps gradient reduction with backward so):
  // the tensors change in place by the time wait() returns. Every rank starts its collectives in
  // the same order.
  PendingCollective all_reduce_async(std::vector<at::Tensor> tensors, ReduceOp op);
  // Every rank's copy of `tensor` (same shape everywhere), in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor) override;
  // In place: every rank's tensors take root's values.
  void broadcast(std::vector<at::Tensor>& tensors, int64_t root = 0);
  void barrier();

  struct Impl;

 private:
  explicit ProcessGroup(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace tq::distributed
