// The files PyTorch users have: torch.save(model.state_dict()) of float, observer, fake-quantizer
// and converted (int8) models, written by PyTorch (tools/gen_golden_interop.py), read by tq; and
// tq's converted state written for PyTorch (check_pytorch_loads_tq_int8.py loads it).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "golden.h"
#include "tq/fake_quant/default_fake_quants.h"
#include "tq/kernels/int8.h"
#include "tq/nn/modules.h"
#include "tq/observers/histogram_observer.h"
#include "tq/quant/quantize.h"
#include "tq/serialize/state_dict.h"

using namespace tq;
using tq::testing::expect_error;

namespace {

// tools/interop_net.py's Net, module for module.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    quant = register_module("quant", nn::QuantStub());
    conv1 = register_module("conv1", nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    bn1 = register_module("bn1", nn::BatchNorm2d(4));
    relu1 = register_module("relu1", nn::ReLU());
    conv2 = register_module("conv2", nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 3).stride(2).bias(false)));
    fc = register_module("fc", nn::Linear(4 * 3 * 3, 5));
    dequant = register_module("dequant", nn::DeQuantStub());
  }
  at::Tensor forward(const at::Tensor& x) {
    auto y = relu1(bn1(conv1(quant(x))));
    y = conv2(y);
    return dequant(fc(y.flatten(1)));
  }
  nn::QuantStub quant{nullptr};
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  nn::ReLU relu1{nullptr};
  nn::Linear fc{nullptr};
  nn::DeQuantStub dequant{nullptr};
};
TORCH_MODULE(Net);

const std::vector<std::vector<std::string>> kFuse = {{"conv1", "bn1", "relu1"}};

std::string interop(const std::string& file) { return tq::testing::machine_golden_path("interop/" + file); }

std::map<std::string, at::Tensor> expected() {
  const auto state = serialize::read_state_dict_file(interop("expected.pt"));
  return {state.begin(), state.end()};
}

class PyTorchInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_engine_ = kernels::int8::current_engine();
    kernels::int8::set_engine("qnnpack");
  }
  void TearDown() override { kernels::int8::set_engine(saved_engine_); }
  std::string saved_engine_;
};

TEST_F(PyTorchInterop, ReadsTheStateDictEveryPyTorchUserHas) {
  // An OrderedDict with _metadata (torch.save(net.state_dict())): LibTorch's own reader stops at it.
  Net net;
  net->eval();
  serialize::load_state_dict_file(*net, interop("float_state.pt"));
  auto want = expected();
  EXPECT_TRUE(at::allclose(net->forward(want["x"]), want["float_y"], 1e-5, 1e-6));
  // The batch norm statistics PyTorch trained, counter included.
  EXPECT_EQ(net->bn1->num_batches_tracked.item<int64_t>(), 3);
}

TEST_F(PyTorchInterop, ReadsPyTorchsConvertedModel) {
  // Linear's packed parameters, per-channel quantized Conv weights, a Conv without bias (None),
  // the stubs' qparams: tq's fused float model takes them and computes PyTorch's int8 output.
  Net net;
  net->eval();
  quant::fuse_modules(*net, kFuse);
  quant::load_quantized_state_dict(*net, interop("converted_state.pt"));
  EXPECT_EQ(net->fc->mode(), nn::QuantMode::Quantized);
  EXPECT_EQ(net->conv2->mode(), nn::QuantMode::Quantized);
  EXPECT_EQ(net->conv1->quantized_weight().qscheme(), at::kPerChannelAffine);
  auto want = expected();
  const auto y = net->forward(want["x"]);
  EXPECT_TRUE(at::equal(y, want["int8_y"])) << (y - want["int8_y"]).abs().max().item<float>();

  // tq writes PyTorch's layout back: quantized weight, bias beside it, scale / zero point.
  const std::string path = std::string(TQ_TEST_OUTPUT_DIR) + "/interop_int8_state.pt";
  quant::save_quantized_state_dict(*net, path);
  serialize::save_state_dict_file({{"x", want["x"]}, {"y", y}}, std::string(TQ_TEST_OUTPUT_DIR) + "/interop_int8_io.pt");
  // ... and reads its own file into a fresh model with the same result.
  Net again;
  again->eval();
  quant::fuse_modules(*again, kFuse);
  quant::load_quantized_state_dict(*again, path);
  EXPECT_TRUE(at::equal(again->forward(want["x"]), y));
}

TEST_F(PyTorchInterop, ConvertedStateIntoAnUnfusedModelChangesNothing) {
  Net net;
  net->eval();
  serialize::load_state_dict_file(*net, interop("float_state.pt"));
  const auto x = expected()["x"];
  const auto before = net->forward(x);
  expect_error([&] { quant::load_quantized_state_dict(*net, interop("converted_state.pt")); },
               "[load_quantized_state_dict] '" + interop("converted_state.pt") +
                   "' has no state for batch norm 'bn1', which the quantized model had folded into the layer before "
                   "it: fuse this model as that one was (fuse_modules) before loading; nothing was changed");
  EXPECT_EQ(net->conv1->mode(), nn::QuantMode::Float);
  EXPECT_EQ(net->fc->mode(), nn::QuantMode::Float);
  EXPECT_TRUE(at::equal(net->forward(x), before));

  // A model of another shape: named, before any module switches.
  struct SmallImpl : torch::nn::Module {
    SmallImpl() { fc = register_module("fc", nn::Linear(8, 5)); }
    nn::Linear fc{nullptr};
  };
  auto small = std::make_shared<SmallImpl>();
  expect_error([&] { quant::load_quantized_state_dict(*small, interop("converted_state.pt")); },
               "has key(s) this model lacks: quant.scale, quant.zero_point, conv1.weight");
  EXPECT_EQ(small->fc->mode(), nn::QuantMode::Float);
  EXPECT_EQ(small->fc->weight().numel(), 40);
}

TEST_F(PyTorchInterop, ReadsObserverAndFakeQuantizerStates) {
  auto want = expected();
  observers::HistogramObserver histogram;
  serialize::load_state_dict_file(histogram, interop("histogram_observer.pt"));
  const auto qp = histogram.calculate_qparams();
  EXPECT_TRUE(at::equal(qp.scale, want["histogram_scale"]));
  EXPECT_TRUE(at::equal(qp.zero_point.to(at::kLong), want["histogram_zero_point"].to(at::kLong)));

  // A nested module (activation_post_process) in _metadata, per-channel buffers resized on load.
  auto fq = fake_quant::default_per_channel_weight_fake_quant()();
  serialize::load_state_dict_file(*fq, interop("per_channel_fake_quant.pt"));
  EXPECT_TRUE(at::equal(fq->calculate_qparams().scale, want["fake_quant_scale"]));
}

TEST_F(PyTorchInterop, NamesFilesThatAreNoStateDict) {
  Net net;
  expect_error([&] { serialize::load_state_dict_file(*net, interop("legacy_format.pt")); },
               "' is in torch.save's legacy format (PyTorch < 1.6 or _use_new_zipfile_serialization=False): "
               "re-save it with torch.save in PyTorch >= 1.6");
  expect_error([&] { serialize::load_state_dict_file(*net, interop("pickled_module.pt")); },
               "' holds a pickled Python object of type 'interop_net.Net': tq reads tensors and containers of them "
               "(save model.state_dict(), not the model)");
  const std::string text = std::string(TQ_TEST_OUTPUT_DIR) + "/not_a_state_dict.pt";
  std::ofstream(text) << "weights";
  expect_error([&] { serialize::load_state_dict_file(*net, text); },
               "[read_state_dict_file] '" + text + "' is not a torch.save file (no zip archive)");
}

}  // namespace
