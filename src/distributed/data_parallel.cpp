#include "tq/distributed/data_parallel.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/nn/module.h>

#include <cmath>
#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "tq/core/check.h"
#include "tq/nn/quantizable.h"

namespace tq::distributed {
namespace {

constexpr const char* kOp = "DataParallel";

std::vector<at::Tensor> state_tensors(torch::nn::Module& model, std::string* signature) {
  std::vector<at::Tensor> out;
  std::ostringstream s;
  for (const auto& p : model.named_parameters(true)) {
    s << "p " << p.key() << ' ' << p.value().sizes() << '\n';
    out.push_back(p.value());
  }
  for (const auto& b : model.named_buffers(true)) {
    s << "b " << b.key() << ' ' << b.value().sizes() << '\n';
    out.push_back(b.value());
  }
  if (signature != nullptr) *signature = s.str();
  return out;
}

// Parameters (those that train) grouped into buckets of about `bucket_bytes`, in the given order.
std::vector<std::vector<size_t>> make_buckets(const std::vector<at::Tensor>& params, const std::vector<size_t>& order,
                                              int64_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t bytes = 0;
  for (size_t i : order) {
    const int64_t b = params[i].numel() * static_cast<int64_t>(sizeof(float));
    if (buckets.empty() || (bytes + b > bucket_bytes && !buckets.back().empty())) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(i);
    bytes += b;
  }
  return buckets;
}

}  // namespace

// overlap_backward: a post hook on each parameter's gradient accumulator copies the accumulated
// gradient into its bucket's flat buffer; the last one in a bucket starts its all-reduce.
struct DataParallel::Overlap {
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;
    at::Tensor flat;
    size_t ready = 0;
    std::optional<PendingCollective> pending;
  };
  ProcessGroup* group = nullptr;
  std::vector<at::Tensor> params;
  std::vector<Bucket> buckets;
  std::vector<std::pair<size_t, size_t>> where;  // parameter -> (bucket, slot)
  std::vector<int64_t> numel;                    // each parameter's size when the buckets were laid out
  std::vector<bool> seen;
  bool repeated = false;  // a gradient accumulated twice before all_reduce_gradients
  // A std::shared_ptr<Node> in LibTorch 1.13, a c10::intrusive_ptr<Node> in 2.x.
  using AccumulatorPtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));
  std::vector<std::pair<AccumulatorPtr, uintptr_t>> hooks;

  void on_gradient(size_t i) {
    if (seen[i]) {
      repeated = true;
      return;
    }
    seen[i] = true;
    auto& b = buckets[where[i].first];
    at::NoGradGuard no_grad;
    const auto& g = params[i].grad();
    TQ_CHECK(params[i].numel() == numel[i], kOp, "parameter ", i, " changed size (", numel[i], " -> ",
             params[i].numel(), " elements) after DataParallel was made: make it once the model has its final shapes");
    if (g.defined()) {
      b.flat.narrow(0, b.offsets[where[i].second], g.numel()).copy_(g.reshape({-1}));
    }
    if (++b.ready == b.params.size()) b.pending = group->all_reduce_async({b.flat}, ReduceOp::Sum);
  }

  void reset() {
    for (auto& b : buckets) {
      b.flat.zero_();
      b.ready = 0;
      b.pending.reset();
    }
    std::fill(seen.begin(), seen.end(), false);
    repeated = false;
  }

  ~Overlap() {
    for (auto& [accumulator, key] : hooks) accumulator->del_post_hook(key);
  }
};

namespace {

class GradientReadyHook : public torch::autograd::FunctionPostHook {
 public:
  GradientReadyHook(std::weak_ptr<DataParallel::Overlap> overlap, size_t param)
      : overlap_(std::move(overlap)), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (auto o = overlap_.lock()) o->on_gradient(param_);
    return outputs;
  }

 private:
  std::weak_ptr<DataParallel::Overlap> overlap_;
  size_t param_;
};

}  // namespace

DataParallel::~DataParallel() = default;

DataParallel::DataParallel(torch::nn::Module& model, ProcessGroup& group, const DataParallelOptions& options)
    : model_(model), group_(group), options_(options) {
  TQ_CHECK(options.bucket_bytes() > 0, kOp, "bucket_bytes must be positive, got ", options.bucket_bytes());
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const auto* q = dynamic_cast<const nn::Quantizable*>(item.value().get());
    if (q == nullptr) continue;
    const auto mode = q->mode();
    TQ_CHECK(mode != nn::QuantMode::Quantized && mode != nn::QuantMode::DynamicQuantized &&
                 mode != nn::QuantMode::Reference,
             kOp, "'", item.key().empty() ? item.value()->name() : item.key(), "' is converted (",
             nn::to_string(mode), ") and cannot train: train the float or QAT model (prepare_qat), convert after");
  }
  std::string signature;
  auto tensors = state_tensors(model, &signature);
  const auto mine = at::tensor({static_cast<int64_t>(std::hash<std::string>{}(signature) & 0x7fffffffffffffffULL),
                                static_cast<int64_t>(tensors.size())},
                               at::kLong);
  const auto all = group.all_gather(mine);
  for (int64_t r = 1; r < group.world_size(); ++r) {
    TQ_CHECK(all[r].equal(all[0]), kOp, "rank ", r, " holds a different model than rank 0 (",
             all[r][1].item<int64_t>(), " parameters and buffers against ", all[0][1].item<int64_t>(),
             ", or other names or shapes): every rank must build and prepare the same model");
  }
  broadcast_from_rank0(tensors);
  if (options.overlap_backward()) {
    overlap_ = std::make_shared<Overlap>();
    auto& o = *overlap_;
    o.group = &group_;
    for (const auto& p : model.parameters(true)) {
      if (!p.requires_grad()) continue;
      TQ_CHECK(p.scalar_type() == at::kFloat, kOp, "overlap_backward reduces float32 parameters, got ", p.scalar_type());
      o.params.push_back(p);
    }
    // Backward produces gradients roughly in reverse order of the parameters, as DDP assumes.
    std::vector<size_t> order(o.params.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = order.size() - 1 - i;
    o.where.resize(o.params.size());
    for (const auto& p : o.params) o.numel.push_back(p.numel());
    o.seen.assign(o.params.size(), false);
    for (auto& members : make_buckets(o.params, order, options.bucket_bytes())) {
      Overlap::Bucket b;
      int64_t numel = 0;
      for (size_t k = 0; k < members.size(); ++k) {
        o.where[members[k]] = {o.buckets.size(), k};
        b.offsets.push_back(numel);
        numel += o.params[members[k]].numel();
      }
      b.params = std::move(members);
      b.flat = at::zeros({numel}, at::kFloat);
      o.buckets.push_back(std::move(b));
    }
    for (size_t i = 0; i < o.params.size(); ++i) {
      auto accumulator = torch::autograd::impl::grad_accumulator(o.params[i]);
      TQ_CHECK(accumulator != nullptr, kOp, "parameter ", i, " has no gradient accumulator (is it a leaf?)");
      const auto key = accumulator->add_post_hook(std::make_unique<GradientReadyHook>(overlap_, i));
      o.hooks.emplace_back(std::move(accumulator), key);
    }
  }
}

observers::ScopedBatchRangeReduction DataParallel::sync_batch_ranges() {
  // One all-reduce per observed batch: the minimum of [min, -max] (negation is exact).
  return observers::ScopedBatchRangeReduction([this](float* mn, float* mx, int64_t n) {
    std::vector<at::Tensor> both{at::cat({at::from_blob(mn, {n}, at::kFloat), -at::from_blob(mx, {n}, at::kFloat)})};
    group_.all_reduce(both, ReduceOp::Min);
    std::copy_n(both[0].data_ptr<float>(), n, mn);
    const float* neg_max = both[0].data_ptr<float>() + n;
    for (int64_t i = 0; i < n; ++i) mx[i] = -neg_max[i];
  });
}

void DataParallel::broadcast_buffers() { broadcast_from_rank0(model_.buffers(true)); }

void DataParallel::broadcast_from_rank0(const std::vector<at::Tensor>& tensors) {
  // One broadcast per dtype: the tensors flattened into one and copied back.
  at::NoGradGuard no_grad;
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (const auto& t : tensors) {
    if (t.numel() > 0) by_dtype[t.scalar_type()].push_back(t);
  }
  for (auto& [dtype, buffers] : by_dtype) {
    std::vector<at::Tensor> parts;
    for (const auto& b : buffers) parts.push_back(b.reshape({-1}));
    std::vector<at::Tensor> flat{at::cat(parts)};
    group_.broadcast(flat, 0);
    int64_t offset = 0;
    for (auto& b : buffers) {
      b.copy_(flat[0].narrow(0, offset, b.numel()).view(b.sizes()));
      offset += b.numel();
    }
  }
}

void DataParallel::all_reduce_gradients() {
  at::NoGradGuard no_grad;
  if (overlap_) {
    auto& o = *overlap_;
    // Buckets whose parameters did not all get a gradient start now (the missing count as zeros),
    // in bucket order, the same on every rank.
    started_in_backward_ = 0;
    for (auto& b : o.buckets) {
      if (b.pending) {
        ++started_in_backward_;
      } else {
        b.pending = group_.all_reduce_async({b.flat}, ReduceOp::Sum);
      }
    }
    for (auto& b : o.buckets) b.pending->wait();
    if (o.repeated) {
      o.reset();
      TQ_FAIL(kOp, "a parameter's gradient was accumulated twice before all_reduce_gradients: with "
              "overlap_backward, reduce after every backward (or turn it off to accumulate gradients)");
    }
    const double world = static_cast<double>(group_.world_size());
    for (auto& b : o.buckets) {
      b.flat.div_(world);
      for (size_t k = 0; k < b.params.size(); ++k) {
        auto& p = o.params[b.params[k]];
        if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
        p.grad().copy_(b.flat.narrow(0, b.offsets[k], p.numel()).view(p.sizes()));
      }
    }
    o.reset();
    return;
  }
  std::vector<at::Tensor> grads;
  for (auto& p : model_.parameters(true)) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    TQ_CHECK(p.grad().scalar_type() == at::kFloat, kOp, "gradients must be float32, got ", p.grad().scalar_type());
    grads.push_back(p.grad());
  }
  const double world = static_cast<double>(group_.world_size());
  size_t begin = 0;
  while (begin < grads.size()) {
    // One bucket: consecutive gradients up to bucket_bytes, flattened into one buffer.
    size_t end = begin;
    int64_t bytes = 0;
    do {
      bytes += grads[end].numel() * static_cast<int64_t>(sizeof(float));
      ++end;
    } while (end < grads.size() && bytes + grads[end].numel() * static_cast<int64_t>(sizeof(float)) <= options_.bucket_bytes());
    std::vector<at::Tensor> flat_parts;
    for (size_t i = begin; i < end; ++i) flat_parts.push_back(grads[i].reshape({-1}));
    std::vector<at::Tensor> bucket{at::cat(flat_parts)};
    group_.all_reduce(bucket, ReduceOp::Sum);
    bucket[0].div_(world);
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      const int64_t n = grads[i].numel();
      grads[i].copy_(bucket[0].narrow(0, offset, n).view(grads[i].sizes()));
      offset += n;
    }
    begin = end;
  }
}

void DataParallel::check_loss(double loss, int64_t step) {
  const auto bad = group_.all_gather(at::tensor({std::isfinite(loss) ? 0.0f : 1.0f}));
  std::vector<int64_t> ranks;
  for (int64_t r = 0; r < group_.world_size(); ++r) {
    if (bad[r].item<float>() != 0.0f) ranks.push_back(r);
  }
  if (ranks.empty()) return;
  std::ostringstream s;
  for (size_t i = 0; i < ranks.size(); ++i) s << (i ? ", " : "") << ranks[i];
  TQ_FAIL(kOp, "the loss is not finite at step ", step, " on rank(s) ", s.str(),
          " (diverged training: lower the learning rate, or check the data)");
}

}  // namespace tq::distributed
