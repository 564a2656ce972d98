// tq's process group on c10d's Gloo backend. Gloo's and the stores' exceptions are turned into
// one-line tq::Errors that say which operation failed and what to check.
#include "tq/distributed/process_group.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <ATen/ATen.h>

#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tq/core/check.h"
#include "tq/core/error_message.h"

namespace tq::distributed {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  int64_t rank = 0, world_size = 1;
  std::chrono::milliseconds timeout{0};
};

namespace {

std::string seconds(std::chrono::milliseconds t) { return c10::str(static_cast<double>(t.count()) / 1000.0, " s"); }

// Runs fn, turning whatever LibTorch or Gloo throws into one tq::Error line.
template <class Fn>
auto checked(const std::string& what, const std::string& hint, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const tq::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw tq::Error(c10::str("[ProcessGroup] ", what, " failed: ", error_message(e), hint.empty() ? "" : " (",
                             hint, hint.empty() ? "" : ")"));
  }
}

}  // namespace

ProcessGroup ProcessGroup::create(const ProcessGroupOptions& o) {
  TQ_CHECK(o.world_size() >= 1, "ProcessGroup", "world_size must be at least 1, got ", o.world_size());
  TQ_CHECK(o.rank() >= 0 && o.rank() < o.world_size(), "ProcessGroup", "rank must be in [0, ", o.world_size(),
           "), got ", o.rank());
  TQ_CHECK(o.timeout().count() > 0, "ProcessGroup", "timeout must be positive");
  TQ_CHECK(!o.file_store().empty() || (o.master_port() > 0 && o.master_port() < 65536), "ProcessGroup",
           "master_port must be in [1, 65535], got ", o.master_port());
  auto impl = std::make_shared<Impl>();
  impl->rank = o.rank();
  impl->world_size = o.world_size();
  impl->timeout = o.timeout();
  if (!o.file_store().empty()) {
    impl->store = checked("opening the file store '" + o.file_store() + "'", "", [&] {
      return c10::intrusive_ptr<c10d::Store>(
          c10::make_intrusive<c10d::FileStore>(o.file_store(), static_cast<int>(o.world_size())));
    });
  } else {
    const std::string where = c10::str(o.master_addr(), ":", o.master_port());
    impl->store = checked("reaching the TCP store at " + where, "rank 0 runs it; check master_addr and master_port", [&] {
      c10d::TCPStoreOptions t;
      t.port = static_cast<std::uint16_t>(o.master_port());
      t.isServer = o.rank() == 0;
      t.numWorkers = static_cast<std::size_t>(o.world_size());
      t.waitWorkers = false;
      t.timeout = o.timeout();
      return c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::TCPStore>(o.master_addr(), t));
    });
  }
  impl->store->setTimeout(o.timeout());
  const std::string joining = c10::str("joining the group as rank ", o.rank(), " of ", o.world_size());
  const std::string join_hint = c10::str("every process needs its own rank, the same world_size and store, and to "
                                         "start within ", seconds(o.timeout()), " of the others");
  // Each rank states its world_size in the store before Gloo connects: LibTorch 2.x's Gloo connects
  // lazily, so a mismatch would otherwise surface only as a timeout in the first collective.
  checked(joining, join_hint, [&] {
    const std::string mine = std::to_string(o.world_size());
    impl->store->set(c10::str("tq_world_size_", o.rank()), std::vector<uint8_t>(mine.begin(), mine.end()));
    for (int64_t r = 0; r < o.world_size(); ++r) {
      const auto theirs = impl->store->get(c10::str("tq_world_size_", r));
      const std::string value(theirs.begin(), theirs.end());
      if (value != mine) throw std::runtime_error(c10::str("rank ", r, " joined with world_size ", value));
    }
  });
  impl->gloo = checked(joining, join_hint,
                       [&] {
                         auto gloo_options = c10d::ProcessGroupGloo::Options::create();
                         gloo_options->timeout = o.timeout();
                         gloo_options->devices.push_back(
                             c10d::ProcessGroupGloo::createDeviceForHostname(o.hostname()));
                         return c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, static_cast<int>(o.rank()),
                                                                            static_cast<int>(o.world_size()),
                                                                            gloo_options);
                       });
  return ProcessGroup(impl);
}

int64_t ProcessGroup::rank() const { return impl_->rank; }
int64_t ProcessGroup::world_size() const { return impl_->world_size; }

namespace {
std::string peer_hint(const ProcessGroup::Impl& impl) {
  return c10::str("rank ", impl.rank, ": another rank stopped, or did not answer within ", seconds(impl.timeout));
}
}  // namespace

struct PendingCollective::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  std::vector<at::Tensor> tensors;  // alive until the collective ends
  std::string hint;
};

void PendingCollective::wait() {
  TQ_CHECK(impl_ != nullptr, "ProcessGroup", "wait() on a collective that was never started");
  checked("all_reduce", impl_->hint, [&] { impl_->work->wait(); });
}

PendingCollective ProcessGroup::all_reduce_async(std::vector<at::Tensor> tensors, ReduceOp op) {
  c10d::AllreduceOptions options;
  options.reduceOp = op == ReduceOp::Sum ? c10d::ReduceOp::SUM : op == ReduceOp::Min ? c10d::ReduceOp::MIN
                                                                                    : c10d::ReduceOp::MAX;
  options.timeout = impl_->timeout;
  auto pending = std::make_shared<PendingCollective::Impl>();
  pending->tensors = std::move(tensors);
  pending->hint = peer_hint(*impl_);
  pending->work = checked("all_reduce", pending->hint, [&] { return impl_->gloo->allreduce(pending->tensors, options); });
  return PendingCollective(pending);
}

void ProcessGroup::all_reduce(std::vector<at::Tensor>& tensors, ReduceOp op) {
  all_reduce_async(tensors, op).wait();
}

std::vector<at::Tensor> ProcessGroup::all_gather(const at::Tensor& tensor) {
  std::vector<at::Tensor> input{tensor.contiguous()};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int64_t r = 0; r < impl_->world_size; ++r) output[0].push_back(at::empty_like(input[0]));
  c10d::AllgatherOptions options;
  options.timeout = impl_->timeout;
  checked("all_gather", peer_hint(*impl_), [&] { impl_->gloo->allgather(output, input, options)->wait(); });
  return output[0];
}

void ProcessGroup::broadcast(std::vector<at::Tensor>& tensors, int64_t root) {
  TQ_CHECK(root >= 0 && root < impl_->world_size, "ProcessGroup", "broadcast root must be in [0, ", impl_->world_size,
           "), got ", root);
  c10d::BroadcastOptions options;
  options.rootRank = root;
  options.timeout = impl_->timeout;
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    checked("broadcast", peer_hint(*impl_), [&] { impl_->gloo->broadcast(one, options)->wait(); });
  }
}

void ProcessGroup::barrier() {
  c10d::BarrierOptions options;
  options.timeout = impl_->timeout;
  checked("barrier", peer_hint(*impl_), [&] { impl_->gloo->barrier(options)->wait(); });
}

}  // namespace tq::distributed
