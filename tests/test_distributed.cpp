// Distributed calibration over c10d (Gloo on loopback): 2 and 4 real processes, each this test
// binary started again as a worker (TQ_TEST_WORKER=<scenario>), with a deadline on all of them.
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
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "golden.h"
#include "tq/core/error_message.h"
#include "tq/distributed/observer_sync.h"
#include "tq/distributed/process_group.h"
#include "tq/graph/graph_quantizer.h"
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

// ---- worker side ----

int run_worker(const std::string& scenario) {
  const int64_t rank = std::atoll(std::getenv("TQ_TEST_RANK"));
  const int64_t world = std::atoll(std::getenv("TQ_TEST_WORLD"));
  const std::string out = std::getenv("TQ_TEST_OUT");
  const std::string kind = std::getenv("TQ_TEST_QCONFIG");
  kernels::int8::set_engine(engine());
  try {
    auto options = distributed::ProcessGroupOptions().rank(rank).world_size(world).timeout(std::chrono::seconds(20));
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
    auto model = make_model(scenario == "mismatch" && rank == 1);
    quant::prepare(**model, quant::QConfigMapping().set_global(qconfig(kind)));
    (*model)->eval();
    calibrate_shard(*model, rank, world);
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
  run.out = (fs::path(TQ_TEST_OUTPUT_DIR) / ("distributed_" + scenario + "_" + kind + "_" + std::to_string(world) +
                                             (tcp ? "_tcp" : "_file")))
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

TEST(ProcessGroup, OneProcessGroupWorksAndSyncChangesNothing) {
  const auto dir = fs::path(TQ_TEST_OUTPUT_DIR) / "distributed_single";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto group = distributed::ProcessGroup::create(
      distributed::ProcessGroupOptions().file_store((dir / "store").string()).timeout(std::chrono::seconds(5)));
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
