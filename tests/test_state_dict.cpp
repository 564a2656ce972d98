#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "golden.h"
#include "tq/kernels/int8.h"
#include "tq/nn/modules.h"
#include "tq/observers/default_observers.h"
#include "tq/quant/quantize.h"
#include "tq/serialize/state_dict.h"

using namespace tq::observers;
using tq::QDType;
using tq::QScheme;
using tq::testing::expect_error;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;

namespace {

// The observers tools/gen_golden.py saved, built with the same arguments.
std::shared_ptr<ObserverBase> observer_for(const std::string& key) {
  if (key == "minmax") {
    return std::make_shared<MinMaxObserver>(
        MinMaxObserverOptions().dtype(QDType::QInt8).qscheme(QScheme::PerTensorSymmetric));
  }
  if (key == "moving_average") {
    return std::make_shared<MovingAverageMinMaxObserver>(MovingAverageMinMaxObserverOptions().averaging_constant(0.1));
  }
  if (key == "per_channel") {
    return std::make_shared<PerChannelMinMaxObserver>(
        PerChannelMinMaxObserverOptions().ch_axis(1).dtype(QDType::QInt8).qscheme(QScheme::PerChannelSymmetric));
  }
  if (key == "moving_average_per_channel") {
    return std::make_shared<MovingAveragePerChannelMinMaxObserver>(
        MovingAveragePerChannelMinMaxObserverOptions().ch_axis(0));
  }
  return default_fixed_qparams_range_neg1to1_observer()();
}

std::string out_dir() { return TQ_TEST_OUTPUT_DIR; }

}  // namespace

TEST(StateDict, PyTorchWrittenStatesLoadAndGiveTheSameQParams) {
  const auto& states = tq::testing::golden("state_expected.json").at("states");
  ASSERT_EQ(states.size(), 5u);
  for (const auto& [key, want] : states.items()) {
    auto ob = observer_for(key);
    std::vector<std::string> keys;
    for (const auto& [k, v] : tq::serialize::state_dict(*ob)) keys.push_back(k);
    EXPECT_EQ(keys, want.at("keys").get<std::vector<std::string>>()) << key;
    tq::serialize::load_state_dict_file(*ob, tq::testing::golden_path("state_" + key + ".pt"));
    const auto qp = ob->calculate_qparams();
    EXPECT_TRUE(tensors_equal(qp.scale, to_tensor(want.at("scale")))) << key;
    EXPECT_TRUE(tensors_equal(qp.zero_point, to_tensor(want.at("zero_point")))) << key;
  }
}

TEST(StateDict, CppRoundTripKeepsEveryBuffer) {
  HistogramObserver h(HistogramObserverOptions().bins(128));
  h.forward(at::randn({1000}));
  h.forward(at::randn({1000}) * 3);
  const std::string path = out_dir() + "/roundtrip_histogram.pt";
  tq::serialize::save_state_dict_file(h, path);
  HistogramObserver loaded(HistogramObserverOptions().bins(128));
  tq::serialize::load_state_dict_file(loaded, path);
  EXPECT_TRUE(tensors_equal(loaded.histogram(), h.histogram()));
  EXPECT_TRUE(tensors_equal(loaded.min_val(), h.min_val()));
  EXPECT_TRUE(tensors_equal(loaded.calculate_qparams().scale, h.calculate_qparams().scale));
}

// Writes states for tests/check_cpp_states_in_pytorch.py, which loads them into PyTorch's
// observers and compares PyTorch's calculate_qparams with tq's (ctest runs it after this test).
TEST(StateDict, WritesStatesForPyTorch) {
  nlohmann::json expected;
  auto record = [&](const std::string& key, ObserverBase& ob) {
    tq::serialize::save_state_dict_file(ob, out_dir() + "/cpp_state_" + key + ".pt");
    const auto qp = ob.calculate_qparams();
    expected[key] = {{"scale", std::vector<float>(qp.scale.data_ptr<float>(), qp.scale.data_ptr<float>() + qp.scale.numel())},
                     {"zero_point", [&] {
                        const auto z = qp.zero_point.to(at::kDouble).contiguous();
                        return std::vector<double>(z.data_ptr<double>(), z.data_ptr<double>() + z.numel());
                      }()}};
  };
  MinMaxObserver mm;
  mm.forward(at::randn({50}) * 2);
  record("minmax", mm);
  PerChannelMinMaxObserver pc(
      PerChannelMinMaxObserverOptions().ch_axis(0).dtype(QDType::QInt8).qscheme(QScheme::PerChannelSymmetric));
  pc.forward(at::randn({4, 16}));
  record("per_channel", pc);
  HistogramObserver h;
  h.forward(at::randn({3000}));
  h.forward(at::randn({3000}) * 2 + 1);
  record("histogram", h);
  std::ofstream(out_dir() + "/cpp_state_expected.json") << expected.dump();
}

TEST(StateDict, BadFilesAndMismatchesAreErrorsThatLeaveTheModuleUnchanged) {
  MinMaxObserver ob;
  ob.forward(at::tensor({-1.0f, 1.0f}));
  const auto before = tq::serialize::state_dict(ob);
  auto sd = tq::serialize::state_dict(ob);

  auto missing = sd;
  missing.pop_back();
  expect_error([&] { tq::serialize::load_state_dict(ob, missing); }, "missing key(s) in state_dict: max_val");
  auto unexpected = sd;
  unexpected.emplace_back("histogram", at::zeros({3}));
  expect_error([&] { tq::serialize::load_state_dict(ob, unexpected); }, "unexpected key(s) in state_dict: histogram");
  auto wrong_shape = sd;
  wrong_shape[0].second = at::zeros({2});
  wrong_shape[1].second = at::full({}, -5.0f);
  expect_error([&] { tq::serialize::load_state_dict(ob, wrong_shape); }, "size mismatch for 'eps'");
  EXPECT_EQ(ob.min_val().item<float>(), -1.0f);  // nothing was written by the failed loads

  HistogramObserver h(HistogramObserverOptions().bins(16));
  auto hsd = tq::serialize::state_dict(h);
  hsd[1].second = at::zeros({32});
  expect_error([&] { tq::serialize::load_state_dict(h, hsd); }, "size mismatch for 'histogram'");

  const std::string garbage = out_dir() + "/garbage.pt";
  std::ofstream(garbage) << "this is not a torch.save file";
  expect_error([&] { tq::serialize::read_state_dict_file(garbage); },
               "[read_state_dict_file] '" + garbage + "' is not a torch.save file (no zip archive)");
  expect_error([&] { tq::serialize::read_state_dict_file(out_dir() + "/no_such_file.pt"); }, "cannot open");
  const std::string list_file = out_dir() + "/list.pt";
  const auto bytes = torch::jit::pickle_save(c10::IValue(c10::List<int64_t>({1, 2})));
  std::ofstream(list_file, std::ios::binary).write(bytes.data(), bytes.size());
  expect_error([&] { tq::serialize::read_state_dict_file(list_file); },
               "[read_state_dict_file] '" + list_file + "' holds a GenericList, not a state_dict (a dict of tensors: "
               "save model.state_dict())");
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(tensors_equal(before[i].second, tq::serialize::state_dict(ob)[i].second));
}

TEST(StateDict, PerChannelBuffersResizeOnLoadAsInPyTorch) {
  PerChannelMinMaxObserver fresh;
  PerChannelMinMaxObserver seen;
  seen.forward(at::randn({5, 3}));
  tq::serialize::load_state_dict(fresh, tq::serialize::state_dict(seen));
  EXPECT_TRUE(tensors_equal(fresh.min_val(), seen.min_val()));
}

TEST(StateDict, SavingNeverLeavesAHalfWrittenFile) {
  namespace fs = std::filesystem;
  MinMaxObserver ob;
  const std::string path = out_dir() + "/kept.pt";
  tq::serialize::save_state_dict_file(ob, path);
  expect_error([&] { tq::serialize::save_state_dict_file(ob, out_dir() + "/no_such_dir/x.pt"); },
               "[save_state_dict_file] no such directory: ");
  EXPECT_NO_THROW(tq::serialize::read_state_dict_file(path));

  // A symlink stays a symlink; its target gets the new contents.
  const std::string link = out_dir() + "/link.pt";
  fs::remove(link);
  fs::create_symlink(fs::absolute(path), link);
  ob.forward(at::tensor({-2.0f, 3.0f}));
  tq::serialize::save_state_dict_file(ob, link);
  EXPECT_TRUE(fs::is_symlink(link));
  MinMaxObserver loaded;
  tq::serialize::load_state_dict(loaded, tq::serialize::read_state_dict_file(path));
  EXPECT_EQ(loaded.max_val().item<float>(), 3.0f);

  // A rename that fails (the target is a non-empty directory's name) leaves no temporary file.
  const std::string dir = out_dir() + "/a_dir.pt";
  fs::create_directories(dir + "/inside");
  expect_error([&] { tq::serialize::save_state_dict_file(ob, dir); }, "a_dir.pt is a directory");
  for (const auto& e : fs::directory_iterator(out_dir())) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
}

// A state every tensor of which fits, but that a module refuses when it validates (a negative
// weight scale), leaves the module with its old tensors, still running.
TEST(StateDict, ALoadTheModuleRefusesIsRolledBack) {
  tq::kernels::int8::set_engine("qnnpack");
  auto linear = std::make_shared<tq::nn::LinearImpl>(4, 3);
  tq::quant::quantize_dynamic(*linear);
  const auto x = at::randn({2, 4});
  const auto before = linear->forward(x);
  auto sd = tq::serialize::state_dict(*linear);
  for (auto& [k, v] : sd) {
    if (k == "weight_scale") v = at::full({3}, -0.5, at::kDouble);  // resizable: per channel
    if (k == "weight_zero_point") v = at::zeros({3}, at::kLong);
  }
  expect_error([&] { tq::serialize::load_state_dict(*linear, sd); }, "weight_scale must be positive");
  EXPECT_EQ(linear->named_buffers()["weight_scale"].numel(), 1);
  EXPECT_TRUE(at::equal(linear->forward(x), before));
}
