// Distributed calibration over c10d (Gloo on loopback): 2 and 4 real processes, each this test
// binary started again as a worker (TQ_TEST_WORKER=<scenario>), with a deadline on all of them.
#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/container/sequential.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "golden.h"
#include "tq/core/error_message.h"
#include "tq/distributed/data_parallel.h"
#include "tq/distributed/observer_sync.h"
#include "tq/distributed/process_group.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/graph/qat.h"
#include "tq/kernels/int8.h"
#include "tq/nn/modules.h"
#include "tq/observers/histogram_observer.h"
#include "tq/quant/qconfig_mapping.h"
#include "tq/quant/quantize.h"
#include "tq/serialize/state_dict.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace tq;

constexpr int64_t kRows = 96;

std::string engine() {
  const auto engines = kernels::int8::available_engines();
  return std::find(engines.begin(), engines.end(), "onednn") != engines.end() ? "onednn" : engines.at(0);
}

std::shared_ptr<torch::nn::Sequential> make_model(bool extra_layer = false) {
  at::manual_seed(0);
  auto m = std::make_shared<torch::nn::Sequential>(nn::QuantStub(), nn::Linear(8, 6), nn::Linear(6, 4));
  if (extra_layer) (*m)->push_back(nn::Linear(4, 4));
  (*m)->push_back(nn::DeQuantStub());
  return m;
}

// The calibration data: rows of growing spread, so every shard has a different range.
at::Tensor calibration_data() {
  at::manual_seed(1);
  return at::randn({kRows, 8}) * at::linspace(0.5, 4.0, kRows).unsqueeze(1);
}

nn::QConfig qconfig(const std::string& kind) {
  return kind == "histogram" ? quant::get_default_qconfig(engine()) : quant::minmax_qconfig(engine());
}

// Rank r calibrates on rows [r * n / N, (r + 1) * n / N), in batches of 4.
void calibrate_shard(torch::nn::Sequential& model, int64_t rank, int64_t world) {
  const auto x = calibration_data();
  const int64_t lo = kRows * rank / world, hi = kRows * (rank + 1) / world;
  for (int64_t b = lo; b < hi; b += 4) model->forward(x.slice(0, b, std::min(hi, b + 4)));
}

serialize::StateDict converted_state(torch::nn::Sequential& model) {
  quant::convert(*model);
  return serialize::state_dict(*model);
}

// Graph mode: the seed's TorchScript model, MinMax observers, calibrated on the rank's shard of
// 8 batches; returns the int8 model's output on a fixed input.
at::Tensor graph_int8_output(tq::distributed::ProcessGroup* group, int64_t rank, int64_t world) {
  auto options = graph::GraphQuantizeOptions::for_backend("qnnpack");
  options.mapping.set_global(quant::minmax_qconfig("qnnpack"));
  auto observed = graph::prepare(graph::load_torchscript(tq::testing::golden_path("graph/seed_model_script.pt")), options);
  at::manual_seed(5);
  std::vector<at::Tensor> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(at::randn({2, 3, 16, 16}) * (1.0 + i));
  for (int64_t i = 8 * rank / world; i < 8 * (rank + 1) / world; ++i) observed.calibrate(batches[i]);
  if (group != nullptr) distributed::sync_observers(observed, *group);
  return observed.convert().forward({at::randn({2, 3, 16, 16}) * 4}).toTensor().dequantize();
}

// QAT: 5 SGD steps on a global batch of 16 rows, split across the ranks; returns the losses
// (each rank's shard loss averaged over the ranks, which is the global batch's loss).
constexpr int kSteps = 5, kBatch = 16;

// After backward: with data parallelism, the loss checked on every rank, gradients averaged, and
// the loss averaged over the ranks (the global batch's loss); then an SGD step of 0.05.
double finish_step(tq::distributed::DataParallel* dp, const std::vector<at::Tensor>& params, double loss, int step,
                   int64_t world) {
  if (dp != nullptr) {
    dp->check_loss(loss, step);
    dp->all_reduce_gradients();
    std::vector<at::Tensor> l{at::tensor({loss}, at::kDouble)};
    dp->group().all_reduce(l, distributed::ReduceOp::Sum);
    loss = l[0].item<double>() / static_cast<double>(world);
  }
  at::NoGradGuard no_grad;
  for (const auto& p : params) p.sub_(p.grad() * 0.05);
  return loss;
}

at::Tensor train_qat(torch::nn::Sequential& model, tq::distributed::DataParallel* dp, int64_t rank, int64_t world) {
  at::manual_seed(2);
  const auto x = at::randn({kSteps, kBatch, 8}) * at::linspace(0.5, 3.0, kSteps).view({kSteps, 1, 1});
  const auto y = at::randn({kSteps, kBatch, 4});
  const int64_t lo = kBatch * rank / world, hi = kBatch * (rank + 1) / world;
  auto losses = at::zeros({kSteps}, at::kDouble);
  model->train();
  for (int s = 0; s < kSteps; ++s) {
    for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    auto forward = [&] { return (model->forward(x[s].slice(0, lo, hi)) - y[s].slice(0, lo, hi)).pow(2).mean(); };
    at::Tensor loss;
    if (dp != nullptr) {
      auto global_ranges = dp->sync_batch_ranges();
      loss = forward();
    } else {
      loss = forward();
    }
    loss.backward();
    const bool nan_here = std::getenv("TQ_TEST_NAN_RANK") && std::atoll(std::getenv("TQ_TEST_NAN_RANK")) == rank;
    losses[s] = finish_step(dp, model->parameters(), nan_here ? std::nan("") : loss.item<double>(), s, world);
  }
  return losses;
}

// Graph-mode QAT of the golden TorchScript net (conv + batch norm, add, pooling, linear): 3 SGD
// steps on the golden batches of 8, split across the ranks. Returns the int8 output on the test
// input; `state` gets the QAT state and the losses (averaged over the ranks).
at::Tensor train_graph_qat(tq::distributed::ProcessGroup* group, int64_t rank, int64_t world,
                           serialize::StateDict& state) {
  const auto& g = tq::testing::machine_golden("graph/qat_qnnpack.json");
  auto qat = graph::prepare_qat(graph::load_torchscript(tq::testing::machine_golden_path("graph/qat_model_script.pt")),
                                graph::GraphQuantizeOptions::for_backend_qat("qnnpack"));
  std::optional<distributed::DataParallel> dp;
  if (group != nullptr) dp.emplace(qat.module(), *group);
  auto losses = at::zeros({3}, at::kDouble);
  for (int s = 0; s < 3; ++s) {
    const auto x = tq::testing::to_tensor(g["steps"][s]["input"]);
    const auto y = at::tensor(g["steps"][s]["target"].get<std::vector<int64_t>>(), at::kLong);
    const int64_t lo = x.size(0) * rank / world, hi = x.size(0) * (rank + 1) / world;
    for (auto& p : qat.parameters()) p.mutable_grad() = at::Tensor();
    at::Tensor loss;
    if (dp) {
      dp->broadcast_buffers();
      auto global_ranges = dp->sync_batch_ranges();
      loss = at::cross_entropy_loss(qat.forward(x.slice(0, lo, hi)), y.slice(0, lo, hi));
    } else {
      loss = at::cross_entropy_loss(qat.forward(x.slice(0, lo, hi)), y.slice(0, lo, hi));
    }
    loss.backward();
    losses[s] = finish_step(dp ? &*dp : nullptr, qat.parameters(), loss.item<double>(), s, world);
  }
  // Batch norms' running statistics follow each rank's last shard: rank 0's go everywhere before
  // convert (DDP too leaves them apart after the last step).
  if (dp) dp->broadcast_buffers();
  state = serialize::state_dict(qat.module());
  state.emplace_back("losses", losses);
  qat.eval();
  return qat.convert().forward({tq::testing::to_tensor(g["test_input"])}).toTensor();
}

std::shared_ptr<torch::nn::Sequential> qat_model() {
  auto m = make_model();
  quant::prepare_qat(**m, quant::QConfigMapping().set_global(quant::get_default_qat_qconfig(engine())));
  return m;
}

// ---- worker side ----

int run_worker(const std::string& scenario) {
  const int64_t rank = std::atoll(std::getenv("TQ_TEST_RANK"));
  const char* rank1_world = std::getenv("TQ_TEST_RANK1_WORLD");  // a rank told another world size
  const int64_t world = std::atoll(rank1_world != nullptr && rank == 1 ? rank1_world : std::getenv("TQ_TEST_WORLD"));
  const std::string out = std::getenv("TQ_TEST_OUT");
  const std::string kind = std::getenv("TQ_TEST_QCONFIG");
  kernels::int8::set_engine(engine());
  try {
    const char* timeout = std::getenv("TQ_TEST_TIMEOUT_S");
    auto options = distributed::ProcessGroupOptions().rank(rank).world_size(world).timeout(
        std::chrono::seconds(timeout != nullptr ? std::atoll(timeout) : 20));
    const std::string store = std::getenv("TQ_TEST_STORE");
    if (store.rfind("tcp:", 0) == 0) {
      options.master_port(std::atoll(store.c_str() + 4));
    } else {
      options.file_store(store);
    }
    auto group = distributed::ProcessGroup::create(options);
    if (scenario == "graph") {
      kernels::int8::set_engine("qnnpack");
      serialize::save_state_dict_file({{"output", graph_int8_output(&group, rank, world)}},
                                      out + "/rank" + std::to_string(rank) + ".pt");
      return 0;
    }
    if (scenario == "graph_qat") {
      kernels::int8::set_engine("qnnpack");
      serialize::StateDict state;
      const auto output = train_graph_qat(&group, rank, world, state);
      state.emplace_back("int8_output", output);
      serialize::save_state_dict_file(state, out + "/rank" + std::to_string(rank) + ".pt");
      return 0;
    }
    if (scenario.rfind("qat", 0) == 0) {
      auto model = qat_model();
      if (scenario == "qat_mismatch" && rank == 1) (**model).register_module("extra", nn::Linear(2, 2));
      // Overlapped with backward, in small buckets (several per step).
      const bool overlap = scenario.rfind("qat_overlap", 0) == 0;
      distributed::DataParallel dp(**model, group,
                                   distributed::DataParallelOptions().overlap_backward(overlap).bucket_bytes(
                                       overlap ? 256 : distributed::DataParallelOptions().bucket_bytes()));
      if (scenario == "qat_overlap_twice") {  // two backward passes, then one reduction
        for (int i = 0; i < 2; ++i) (*model)->forward(at::randn({4, 8})).sum().backward();
        dp.all_reduce_gradients();
      }
      const auto losses = train_qat(*model, scenario == "qat_nosync" ? nullptr : &dp, rank, world);
      auto trained = serialize::state_dict(**model);
      trained.emplace_back("losses", losses);
      if (overlap) trained.emplace_back("buckets_started_in_backward", at::tensor({dp.buckets_started_in_backward()}));
      serialize::save_state_dict_file(trained, out + "/rank" + std::to_string(rank) + "_qat.pt");
      (*model)->eval();
      serialize::save_state_dict_file(converted_state(*model), out + "/rank" + std::to_string(rank) + ".pt");
      return 0;
    }
    auto model = make_model(scenario == "mismatch" && rank == 1);
    quant::prepare(**model, quant::QConfigMapping().set_global(qconfig(kind)));
    (*model)->eval();
    calibrate_shard(*model, rank, world);
    // Every rank has joined the group (Gloo connects its pairs while the group forms) before rank
    // 1 leaves: the others must then fail in the collective, not while joining.
    if (scenario == "dies") group.barrier();
    if (scenario == "dies" && rank == 1) _exit(7);  // gone without a word
    distributed::sync_observers(**model, group);
    serialize::save_state_dict_file(converted_state(*model), out + "/rank" + std::to_string(rank) + ".pt");
    return 0;
  } catch (const std::exception& e) {
    std::ofstream(out + "/rank" + std::to_string(rank) + ".err") << tq::error_message(e);
    return 3;
  }
}

// ---- test side ----

struct WorkerResult {
  int exit_code = -1;  // -1: killed at the deadline
  std::string error;   // what the worker caught
};

struct Run {
  std::vector<WorkerResult> ranks;
  double seconds = 0;
  std::string out;
};

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Starts `world` workers and waits for all of them, killing what is left at the deadline.
Run launch(const std::string& scenario, int world, const std::string& kind, bool tcp,
           std::chrono::seconds deadline = std::chrono::seconds(60)) {
  Run run;
  // A folder per test and scenario: ctest runs tests in parallel, some with the same scenario.
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  run.out = (fs::path(TQ_TEST_OUTPUT_DIR) / ("distributed_" + std::string(test ? test->name() : "") + "_" + scenario +
                                             "_" + kind + "_" + std::to_string(world) + (tcp ? "_tcp" : "_file")))
                .string();
  fs::remove_all(run.out);
  fs::create_directories(run.out);
  const std::string store = tcp ? "tcp:" + std::to_string(free_port()) : run.out + "/store";
  std::vector<pid_t> pids;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    env_strings.push_back("TQ_TEST_WORKER=" + scenario);
    env_strings.push_back("TQ_TEST_RANK=" + std::to_string(r));
    env_strings.push_back("TQ_TEST_WORLD=" + std::to_string(world));
    env_strings.push_back("TQ_TEST_STORE=" + store);
    env_strings.push_back("TQ_TEST_OUT=" + run.out);
    env_strings.push_back("TQ_TEST_QCONFIG=" + kind);
    env_strings.push_back("OMP_NUM_THREADS=1");
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string self = fs::read_symlink("/proc/self/exe").string();
    char* argv[] = {self.data(), nullptr};
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()), 0);
    pids.push_back(pid);
  }
  run.ranks.resize(world);
  int left = world;
  while (left > 0) {
    for (int r = 0; r < world; ++r) {
      if (pids[r] == 0) continue;
      int status = 0;
      if (waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        run.ranks[r].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pids[r] = 0;
        --left;
      }
    }
    if (left > 0 && std::chrono::steady_clock::now() - start > deadline) {
      for (pid_t p : pids) {
        if (p != 0) kill(p, SIGKILL), waitpid(p, nullptr, 0);
      }
      ADD_FAILURE() << scenario << ": workers still running after " << deadline.count() << " s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int r = 0; r < world; ++r) {
    std::ifstream err(run.out + "/rank" + std::to_string(r) + ".err");
    std::stringstream s;
    s << err.rdbuf();
    run.ranks[r].error = s.str();
  }
  return run;
}

::testing::AssertionResult same_state(const serialize::StateDict& a, const serialize::StateDict& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " tensors against " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first) return ::testing::AssertionFailure() << a[i].first << " against " << b[i].first;
    if (!a[i].second.equal(b[i].second)) return ::testing::AssertionFailure() << a[i].first << " differs";
  }
  return ::testing::AssertionSuccess();
}

class DistributedCalibration : public ::testing::Test {
 protected:
  void SetUp() override { kernels::int8::set_engine(engine()); }
};

TEST_F(DistributedCalibration, MinMaxShardsGiveExactlyTheOneProcessModel) {
  // One process seeing all the data...
  auto single = make_model();
  quant::prepare(**single, quant::QConfigMapping().set_global(qconfig("minmax")));
  (*single)->eval();
  calibrate_shard(*single, 0, 1);
  const auto expected = converted_state(*single);
  // ... and 2 (file store) or 4 (TCP store) processes each seeing a shard: the same int8 model.
  for (auto [world, tcp] : {std::pair{2, false}, std::pair{4, true}}) {
    const auto run = launch("calibrate", world, "minmax", tcp);
    for (int r = 0; r < world; ++r) {
      ASSERT_EQ(run.ranks[r].exit_code, 0) << "rank " << r << ": " << run.ranks[r].error;
      EXPECT_TRUE(same_state(serialize::read_state_dict_file(run.out + "/rank" + std::to_string(r) + ".pt"),
                             expected))
          << "world " << world << " rank " << r;
    }
  }
}

TEST_F(DistributedCalibration, HistogramShardsGiveTheRankOrderMerge) {
  // Expected: the ranks' observers merged in rank order with HistogramObserver::merge; the
  // weight observers (per-channel min/max) see the same weights everywhere.
  const int world = 2;
  std::vector<std::shared_ptr<torch::nn::Sequential>> shards;
  for (int r = 0; r < world; ++r) {
    shards.push_back(make_model());
    quant::prepare(**shards.back(), quant::QConfigMapping().set_global(qconfig("histogram")));
    (*shards.back())->eval();
    calibrate_shard(*shards.back(), r, world);
  }
  const auto first = distributed::observers_of(**shards[0]);
  const auto second = distributed::observers_of(**shards[1]);
  int merged = 0;
  for (size_t i = 0; i < first.size(); ++i) {
    if (auto* h = dynamic_cast<observers::HistogramObserver*>(first[i].second.get())) {
      auto* other = dynamic_cast<observers::HistogramObserver*>(second[i].second.get());
      h->merge(other->histogram(), other->min_val().item<float>(), other->max_val().item<float>());
      ++merged;
    }
  }
  EXPECT_EQ(merged, 3);  // the stub's and both layers' outputs
  const auto expected = converted_state(*shards[0]);
  const auto run = launch("calibrate", world, "histogram", false);
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(run.ranks[r].exit_code, 0) << "rank " << r << ": " << run.ranks[r].error;
    EXPECT_TRUE(same_state(serialize::read_state_dict_file(run.out + "/rank" + std::to_string(r) + ".pt"), expected))
        << "rank " << r;
  }
}

TEST_F(DistributedCalibration, GraphModeShardsGiveTheOneProcessInt8Model) {
  const auto engines = kernels::int8::available_engines();
  if (std::find(engines.begin(), engines.end(), "qnnpack") == engines.end()) GTEST_SKIP() << "no qnnpack engine";
  kernels::int8::set_engine("qnnpack");
  const auto expected = graph_int8_output(nullptr, 0, 1);
  const auto unsynced = graph_int8_output(nullptr, 0, 2);  // what rank 0 alone would give
  EXPECT_FALSE(unsynced.equal(expected));
  const auto run = launch("graph", 2, "minmax", false);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(run.ranks[r].exit_code, 0) << "rank " << r << ": " << run.ranks[r].error;
    const auto state = serialize::read_state_dict_file(run.out + "/rank" + std::to_string(r) + ".pt");
    EXPECT_TRUE(state.at(0).second.equal(expected)) << "rank " << r;
  }
}

serialize::StateDict rank_state(const Run& run, int r, const std::string& suffix = "") {
  return serialize::read_state_dict_file(run.out + "/rank" + std::to_string(r) + suffix + ".pt");
}

const at::Tensor& entry(const serialize::StateDict& state, const std::string& name) {
  for (const auto& [k, v] : state) {
    if (k == name) return v;
  }
  throw std::runtime_error("no entry " + name);
}

TEST_F(DistributedCalibration, DataParallelQatMatchesOneProcessOnTheGlobalBatch) {
  auto single = qat_model();
  const auto losses = train_qat(*single, nullptr, 0, 1);
  const auto trained = serialize::state_dict(**single);
  const auto run = launch("qat", 2, "qat", false);
  for (int r = 0; r < 2; ++r) ASSERT_EQ(run.ranks[r].exit_code, 0) << "rank " << r << ": " << run.ranks[r].error;
  // Every rank holds the same model, bit for bit, before and after convert.
  EXPECT_TRUE(same_state(rank_state(run, 1, "_qat"), rank_state(run, 0, "_qat")));
  EXPECT_TRUE(same_state(rank_state(run, 1), rank_state(run, 0)));
  // And it is the one process's model up to summation order: losses, weights, scales.
  const auto qat0 = rank_state(run, 0, "_qat");
  EXPECT_TRUE(tq::testing::tensors_close(entry(qat0, "losses"), losses, 1e-5, 0)) << entry(qat0, "losses") << losses;
  int scales = 0;
  for (const auto& [name, value] : trained) {
    const auto& theirs = entry(qat0, name);
    if (name.find("zero_point") != std::string::npos) {
      EXPECT_TRUE(theirs.equal(value)) << name;
    } else if (value.is_floating_point()) {
      EXPECT_TRUE(tq::testing::tensors_close(theirs, value, 1e-5, 1e-6)) << name;
      scales += name.find("scale") != std::string::npos;
    }
  }
  EXPECT_GE(scales, 4);
  // Without the global batch ranges the ranks' activation scales drift apart.
  const auto unsynced = launch("qat_nosync", 2, "qat", false);
  for (int r = 0; r < 2; ++r) ASSERT_EQ(unsynced.ranks[r].exit_code, 0) << unsynced.ranks[r].error;
  EXPECT_FALSE(same_state(rank_state(unsynced, 1, "_qat"), rank_state(unsynced, 0, "_qat")));
}

TEST_F(DistributedCalibration, GraphModeQatRanksHoldOneModel) {
  const auto engines = kernels::int8::available_engines();
  if (std::find(engines.begin(), engines.end(), "qnnpack") == engines.end()) GTEST_SKIP() << "no qnnpack engine";
  const auto run = launch("graph_qat", 2, "qat", false);
  for (int r = 0; r < 2; ++r) ASSERT_EQ(run.ranks[r].exit_code, 0) << "rank " << r << ": " << run.ranks[r].error;
  // The QAT state (weights, batch-norm statistics, fake quantizers) and the int8 model: one on both
  // ranks, bit for bit. (Each rank's batch norms see its own shard's statistics, as under DDP
  // without SyncBatchNorm, so it is not the one-process model.)
  const auto r0 = rank_state(run, 0), r1 = rank_state(run, 1);
  EXPECT_TRUE(same_state(r1, r0));
  EXPECT_GT(r0.size(), 30u);
  // Without data parallelism, the ranks' halves of each batch train two different models.
  kernels::int8::set_engine("qnnpack");
  serialize::StateDict half0, half1;
  const auto out0 = train_graph_qat(nullptr, 0, 2, half0);
  const auto out1 = train_graph_qat(nullptr, 1, 2, half1);
  EXPECT_FALSE(out0.equal(out1));
  EXPECT_FALSE(entry(r0, "int8_output").equal(out0));
}

TEST_F(DistributedCalibration, DataParallelOverlapsGradientReductionWithBackward) {
  // Buckets of 256 bytes started from autograd's hooks during backward: the same model, bit for
  // bit, as reducing after backward.
  const auto blocking = launch("qat_blocking", 2, "qat", false);
  const auto overlapped = launch("qat_overlap", 2, "qat", false);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(blocking.ranks[r].exit_code, 0) << blocking.ranks[r].error;
    ASSERT_EQ(overlapped.ranks[r].exit_code, 0) << overlapped.ranks[r].error;
    auto state = rank_state(overlapped, r, "_qat");
    // Both buckets ([second bias, second weight, first bias], [first weight]) started during backward.
    EXPECT_EQ(entry(state, "buckets_started_in_backward").item<int64_t>(), 2) << "rank " << r;
    state.pop_back();
    EXPECT_TRUE(same_state(state, rank_state(blocking, r, "_qat"))) << "rank " << r;
  }
  // Two backward passes before one reduction: an error on every rank, not a wrong average.
  const auto twice = launch("qat_overlap_twice", 2, "qat", false);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(twice.ranks[r].exit_code, 3);
    EXPECT_NE(twice.ranks[r].error.find("[DataParallel] a parameter's gradient was accumulated twice before "
                                        "all_reduce_gradients"),
              std::string::npos)
        << twice.ranks[r].error;
  }
}

TEST_F(DistributedCalibration, DataParallelNamesDifferentModelsAndNaNLosses) {
  const auto mismatch = launch("qat_mismatch", 2, "qat", false);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(mismatch.ranks[r].exit_code, 3);
    EXPECT_NE(mismatch.ranks[r].error.find("[DataParallel] rank 1 holds a different model than rank 0"),
              std::string::npos)
        << mismatch.ranks[r].error;
  }
  setenv("TQ_TEST_NAN_RANK", "1", 1);
  const auto nan = launch("qat", 2, "qat", false);
  unsetenv("TQ_TEST_NAN_RANK");
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(nan.ranks[r].exit_code, 3);
    EXPECT_NE(nan.ranks[r].error.find("[DataParallel] the loss is not finite at step 0 on rank(s) 1"),
              std::string::npos)
        << nan.ranks[r].error;
  }
}

TEST_F(DistributedCalibration, MismatchedWorldSizesFailAtTheRendezvous) {
  setenv("TQ_TEST_RANK1_WORLD", "3", 1);
  setenv("TQ_TEST_TIMEOUT_S", "3", 1);
  const auto run = launch("calibrate", 2, "minmax", true);
  unsetenv("TQ_TEST_RANK1_WORLD");
  unsetenv("TQ_TEST_TIMEOUT_S");
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(run.ranks[r].exit_code, 3) << "rank " << r;
    EXPECT_NE(run.ranks[r].error.find("[ProcessGroup] joining the group as rank " + std::to_string(r) + " of " +
                                      (r == 0 ? "2" : "3") + " failed"),
              std::string::npos)
        << "rank " << r << ": " << run.ranks[r].error;
    EXPECT_NE(run.ranks[r].error.find("every process needs its own rank, the same world_size and store"),
              std::string::npos)
        << "rank " << r << ": " << run.ranks[r].error;
  }
  EXPECT_LT(run.seconds, 30.0);
}

TEST_F(DistributedCalibration, ARankThatDiesFailsTheOthersQuickly) {
  const auto run = launch("dies", 4, "minmax", true);
  EXPECT_EQ(run.ranks[1].exit_code, 7);
  for (int r : {0, 2, 3}) {
    EXPECT_EQ(run.ranks[r].exit_code, 3) << "rank " << r;
    EXPECT_NE(run.ranks[r].error.find("[ProcessGroup] all_gather failed"), std::string::npos) << run.ranks[r].error;
  }
  EXPECT_LT(run.seconds, 30.0);  // well inside the 60 s deadline: nobody waited for the dead rank
}

TEST_F(DistributedCalibration, RanksWithDifferentModelsAreToldSo) {
  const auto run = launch("mismatch", 2, "minmax", false);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(run.ranks[r].exit_code, 3) << "rank " << r;
    EXPECT_NE(run.ranks[r].error.find("[sync_observers] rank 1 holds different observers than rank 0 (4 against 3"),
              std::string::npos)
        << run.ranks[r].error;
  }
}

TEST(ProcessGroup, BadOptionsAreRejected) {
  using distributed::ProcessGroupOptions;
  tq::testing::expect_error([] { distributed::ProcessGroup::create(ProcessGroupOptions().world_size(0)); },
                        "[ProcessGroup] world_size must be at least 1, got 0");
  tq::testing::expect_error([] { distributed::ProcessGroup::create(ProcessGroupOptions().rank(2).world_size(2)); },
                        "[ProcessGroup] rank must be in [0, 2), got 2");
  tq::testing::expect_error([] { distributed::ProcessGroup::create(ProcessGroupOptions().master_port(70000)); },
                        "[ProcessGroup] master_port must be in [1, 65535], got 70000");
}

TEST(ProcessGroup, AnUnreachableStoreIsNamed) {
  // Rank 1 of 2 looks for rank 0's TCP store on a port nobody listens on.
  const int port = free_port();
  const auto start = std::chrono::steady_clock::now();
  tq::testing::expect_error(
      [&] {
        distributed::ProcessGroup::create(distributed::ProcessGroupOptions().rank(1).world_size(2).master_port(port).timeout(
            std::chrono::seconds(2)));
      },
      "[ProcessGroup] reaching the TCP store at 127.0.0.1:" + std::to_string(port) + " failed");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 15.0);
}

// A group of this process alone, its file store in a fresh directory.
distributed::ProcessGroup single_process_group(const std::string& name) {
  const auto dir = fs::path(TQ_TEST_OUTPUT_DIR) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return distributed::ProcessGroup::create(
      distributed::ProcessGroupOptions().file_store((dir / "store").string()).timeout(std::chrono::seconds(5)));
}

TEST(ProcessGroup, ConvertedModelsCannotTrainDataParallel) {
  auto group = single_process_group("distributed_converted");
  kernels::int8::set_engine(engine());
  auto model = make_model();
  quant::prepare(**model, quant::QConfigMapping().set_global(qconfig("minmax")));
  calibrate_shard(*model, 0, 1);
  quant::convert(**model);
  tq::testing::expect_error([&] { distributed::DataParallel dp(**model, group); },
                            "[DataParallel] '0' is converted (quantized) and cannot train");
}

TEST(ProcessGroup, OneProcessGroupWorksAndSyncChangesNothing) {
  auto group = single_process_group("distributed_single");
  EXPECT_EQ(group.rank(), 0);
  EXPECT_EQ(group.world_size(), 1);
  std::vector<at::Tensor> t{at::tensor({1.0f, -2.0f})};
  group.all_reduce(t, distributed::ReduceOp::Sum);
  EXPECT_TRUE(t[0].equal(at::tensor({1.0f, -2.0f})));
  kernels::int8::set_engine(engine());
  auto model = make_model();
  quant::prepare(**model, quant::QConfigMapping().set_global(qconfig("histogram")));
  calibrate_shard(*model, 0, 1);
  const auto before = serialize::state_dict(**model);
  distributed::sync_observers(**model, group);
  EXPECT_TRUE(same_state(serialize::state_dict(**model), before));
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* scenario = std::getenv("TQ_TEST_WORKER")) return run_worker(scenario);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
