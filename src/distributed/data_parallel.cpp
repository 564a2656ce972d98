#include "tq/distributed/data_parallel.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cmath>
#include <algorithm>
#include <functional>
#include <map>
#include <sstream>

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

}  // namespace

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
  TQ_CHECK(false, kOp, "the loss is not finite at step ", step, " on rank(s) ", s.str(),
           " (diverged training: lower the learning rate, or check the data)");
}

}  // namespace tq::distributed
