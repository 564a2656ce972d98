// Data-parallel QAT of the demo's Fashion-MNIST CNN: one process per rank (scripts/
// data_parallel_qat.sh starts them), each on its share of every global batch, over c10d (Gloo,
// file-store rendezvous). Starts from the demo's trained float weights, fine-tunes like the demo's
// QAT row, converts, and reports test accuracy, step time, and whether every rank holds the same
// int8 model.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <torch/optim/adam.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>

#include "fashion_cnn.h"
#include "engine_choice.h"
#include "idx_reader.h"
#include "tq/core/check.h"
#include "tq/core/error_message.h"
#include "tq/distributed/data_parallel.h"
#include "tq/kernels/int8.h"
#include "tq/quant/qconfig_mapping.h"
#include "tq/quant/quantize.h"
#include "tq/serialize/state_dict.h"

int main(int argc, char** argv) {
  CLI::App app{"Data-parallel QAT of the demo's Fashion-MNIST CNN"};
  std::string data_dir = "/usr/share/datasets/fashion-mnist", weights, store;
  int64_t rank = 0, world = 1, batches = 300, global_batch = 64, threads = 1;
  app.add_option("--data", data_dir, "Fashion-MNIST IDX directory");
  app.add_option("--float-weights", weights, "the demo's trained float model (fashion_cnn_float.pt)")->required();
  app.add_option("--rank", rank);
  app.add_option("--world-size", world);
  app.add_option("--store", store, "rendezvous file (the same for every rank)")->required();
  app.add_option("--batches", batches, "QAT steps");
  app.add_option("--global-batch", global_batch, "images per step over all ranks");
  app.add_option("--threads", threads, "intra-op threads per rank");
  bool overlap = false;
  int64_t bucket_kib = 25 << 10;
  app.add_option("--bucket-kib", bucket_kib, "gradient bucket size in KiB");
  app.add_flag("--overlap", overlap, "start gradient all-reduces during backward (DataParallelOptions::overlap_backward)");
  CLI11_PARSE(app, argc, argv);
  try {
    at::set_num_threads(static_cast<int>(threads));
    const std::string engine = tq::apps::use_preferred_engine();
    auto group = tq::distributed::ProcessGroup::create(
        tq::distributed::ProcessGroupOptions().rank(rank).world_size(world).file_store(store));
    TQ_CHECK(global_batch % world == 0, "data_parallel_qat", "global batch ", global_batch,
             " must divide evenly over ", world, " ranks");
    const auto train = tq::apps::load_fashion_mnist(data_dir, "train");
    const auto test = tq::apps::load_fashion_mnist(data_dir, "t10k");

    tq::apps::FashionCnn model;
    tq::serialize::load_state_dict_file(*model, weights);
    model->eval();  // as the demo QAT row: batch norms folded, then fine-tuned
    tq::quant::fuse_modules(*model, tq::apps::FashionCnnImpl::fusion_groups());
    model->train();
    const auto qconfig = tq::quant::get_default_qat_qconfig(tq::apps::qconfig_backend(engine));
    tq::quant::prepare_qat(*model, tq::quant::QConfigMapping().set_global(qconfig));
    tq::distributed::DataParallel dp(
        *model, group, tq::distributed::DataParallelOptions().overlap_backward(overlap).bucket_bytes(bucket_kib << 10));
    torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-4));

    // Every rank draws the same order and takes its slice of each global batch.
    at::manual_seed(0);
    const int64_t n = train.images.size(0), shard = global_batch / world;
    const auto order = at::randperm(n);
    double train_seconds = 0;
    for (int64_t b = 0; b < batches; ++b) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto idx = order.narrow(0, (b * global_batch) % (n - global_batch) + rank * shard, shard);
      dp.broadcast_buffers();
      at::Tensor loss;
      {
        auto global_ranges = dp.sync_batch_ranges();
        loss = at::nll_loss(at::log_softmax(model->forward(train.images.index_select(0, idx)), 1),
                            train.labels.index_select(0, idx));
      }
      adam.zero_grad();
      loss.backward();
      dp.check_loss(loss.item<double>(), b);
      dp.all_reduce_gradients();
      adam.step();
      train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    model->eval();
    tq::quant::convert(*model);
    // One hash of the int8 state per rank: equal everywhere means the same int8 model.
    std::ostringstream bytes;
    for (const auto& [name, t] : tq::serialize::state_dict(*model)) {
      const auto c = t.contiguous();
      bytes << name;
      bytes.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    }
    const auto hashes = group.all_gather(
        at::tensor({static_cast<int64_t>(std::hash<std::string>{}(bytes.str()) & 0x7fffffffffffffffULL)}, at::kLong));
    bool same = true;
    for (const auto& h : hashes) same = same && h.equal(hashes[0]);
    if (rank == 0) {
      std::printf("{\"world_size\": %lld, \"steps\": %lld, \"global_batch\": %lld, \"int8_accuracy\": %.4f, "
                  "\"ms_per_step\": %.2f, \"overlap\": %s, \"bucket_kib\": %lld, \"same_int8_model_on_every_rank\": %s}\n",
                  static_cast<long long>(world), static_cast<long long>(batches), static_cast<long long>(global_batch),
                  tq::apps::accuracy(model, test), 1000.0 * train_seconds / static_cast<double>(batches),
                  overlap ? "true" : "false", static_cast<long long>(bucket_kib), same ? "true" : "false");
    }
    return same ? 0 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "data_parallel_qat (rank %lld): %s\n", static_cast<long long>(rank),
                 tq::error_message(e).c_str());
    return 1;
  }
}
