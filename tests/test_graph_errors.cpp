// Graph mode on bad input: each error names the problem, and neither the user's model nor an
// existing output file is touched.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "golden.h"
#include "tq/core/config_error.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"

namespace {

namespace fs = std::filesystem;
using tq::testing::expect_error;
using tq::testing::golden_path;
using tq::testing::to_tensor;

std::string out_path(const std::string& name) { return std::string(TQ_TEST_OUTPUT_DIR) + "/" + name; }

torch::jit::Module seed_model() { return tq::graph::load_torchscript(golden_path("graph/seed_model_script.pt")); }
// A calibration batch of the seed model's input shape.
at::Tensor batch() {
  at::manual_seed(1);
  return at::randn({2, 3, 16, 16});
}
std::string graph_text(const torch::jit::Module& m) { return m.get_method("forward").graph()->toString(); }

class GraphErrors : public ::testing::Test {
 protected:
  void SetUp() override { tq::kernels::int8::set_engine("qnnpack"); }
};

TEST_F(GraphErrors, MissingFile) {
  expect_error([] { tq::graph::load_torchscript(out_path("no_such_model.pt")); }, "no such file: ");
}

TEST_F(GraphErrors, FileThatIsNotTorchScript) {
  const auto path = out_path("not_torchscript.pt");
  std::ofstream(path) << "this is not a zip archive";
  expect_error([&] { tq::graph::load_torchscript(path); }, "not_torchscript.pt is not a TorchScript file");
}

TEST_F(GraphErrors, ModuleWithoutForward) {
  torch::jit::Module m("NoForward");
  expect_error([&] { tq::graph::prepare(m, tq::graph::GraphQuantizeOptions::for_backend("qnnpack")); },
               "[prepare] the module has no forward method");
  const auto path = out_path("no_forward.pt");
  m.save(path);
  expect_error([&] { tq::graph::load_torchscript(path); }, "no_forward.pt has no forward method");
}

TEST_F(GraphErrors, CalibrationBatchOfTheWrongShapeNamesTheBatch) {
  auto observed = tq::graph::prepare(seed_model(), tq::graph::GraphQuantizeOptions::fx_test_reference());
  observed.calibrate(batch());
  expect_error([&] { observed.calibrate(at::randn({2, 5, 16, 16})); },
               "[calibrate] batch 1 (shape [2, 5, 16, 16] Float) failed in the model: ");
  EXPECT_EQ(observed.batches_seen(), 1);  // the failed batch does not count
}

TEST_F(GraphErrors, CalibrationBatchOfTheWrongDtype) {
  auto observed = tq::graph::prepare(seed_model(), tq::graph::GraphQuantizeOptions::fx_test_reference());
  expect_error([&] { observed.calibrate(at::ones({2, 3, 16, 16}, at::kInt)); },
               "[calibrate] batch 0 (shape [2, 3, 16, 16] Int) failed in the model: ");
}

TEST_F(GraphErrors, WrongNumberOfInputs) {
  auto observed = tq::graph::prepare(seed_model(), tq::graph::GraphQuantizeOptions::fx_test_reference());
  expect_error([&] { observed.calibrate(std::vector<c10::IValue>{batch(), batch()}); },
               "[calibrate] the model's forward takes 1 input(s), got 2");
}

TEST_F(GraphErrors, NoCalibrationBatch) {
  auto observed = tq::graph::prepare(seed_model(), tq::graph::GraphQuantizeOptions::fx_test_reference());
  expect_error([&] { observed.convert(); }, "[convert] no calibration batch was run: call calibrate() first");
  expect_error([&] { tq::graph::quantize(seed_model(), tq::graph::GraphQuantizeOptions::fx_test_reference(), {}); },
               "[quantize] no calibration batch given");
}

TEST_F(GraphErrors, QConfigNamingAModuleThatDoesNotExist) {
  auto options = tq::graph::GraphQuantizeOptions::for_backend("qnnpack");
  options.mapping.set_module_name_none("conv9");
  expect_error([&] { tq::graph::prepare(seed_model(), options); },
               "[prepare] the qconfig mapping names module 'conv9', which the model does not have");
  // A configuration error (the tool's usage error), not a bad model.
  EXPECT_THROW(tq::graph::prepare(seed_model(), options), tq::ConfigError);
}

TEST_F(GraphErrors, QConfigNamingAnOperatorThatDoesNotExist) {
  auto options = tq::graph::GraphQuantizeOptions::for_backend("qnnpack");
  options.mapping.set_object_type("LSTM", tq::quant::get_default_qconfig("qnnpack"));
  expect_error([&] { tq::graph::prepare(seed_model(), options); },
               "[prepare] the qconfig mapping names module type or operator 'LSTM', which the model does not use");
  EXPECT_THROW(tq::graph::prepare(seed_model(), options), tq::ConfigError);
}

class ThrowingHandler : public tq::graph::QuantizeHandler {
 public:
  explicit ThrowingHandler(bool in_why_float) : in_why_float_(in_why_float) {}
  std::string name() const override { return "Throwing"; }
  std::string why_float(const tq::graph::Match&) const override {
    TORCH_CHECK(!in_why_float_, "user handler bug");
    return "";
  }
  torch::jit::Value* quantize(tq::graph::ConvertContext&, const tq::graph::Match&) const override {
    TORCH_CHECK(false, "user handler bug");
  }

 private:
  bool in_why_float_;
};

TEST_F(GraphErrors, CustomHandlerThatThrowsIsNamedWithTheNode) {
  auto options = tq::graph::GraphQuantizeOptions::fx_test_reference();
  options.patterns.register_pattern(tq::graph::Pattern({"aten::add"}), std::make_shared<ThrowingHandler>(true));
  expect_error([&] { tq::graph::prepare(seed_model(), options); },
               "[prepare] the handler Throwing failed on aten::add in '': user handler bug");
  options = tq::graph::GraphQuantizeOptions::fx_test_reference();
  options.patterns.register_pattern(tq::graph::Pattern({"aten::add"}), std::make_shared<ThrowingHandler>(false));
  auto observed = tq::graph::prepare(seed_model(), options);
  observed.calibrate(batch());
  expect_error([&] { observed.convert(); }, "[convert] the handler Throwing failed on aten::add in '': user handler bug");
}

TEST_F(GraphErrors, TheUsersModelIsNeverModified) {
  auto model = seed_model();
  const auto before = graph_text(model);
  at::NoGradGuard no_grad;
  const auto x = batch();
  const auto out_before = model.forward({x}).toTensor();
  auto observed = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::fx_test_reference());
  observed.calibrate(x);
  auto int8 = observed.convert();
  EXPECT_EQ(graph_text(model), before);
  EXPECT_TRUE(at::equal(model.forward({x}).toTensor(), out_before));
  EXPECT_FALSE(at::equal(int8.forward({x}).toTensor(), out_before));  // int8 rounding shows
}

TEST_F(GraphErrors, SavingToADirectoryOrAMissingDirectory) {
  auto m = seed_model();
  const auto dir = out_path("a_directory");
  fs::create_directories(dir);
  expect_error([&] { tq::graph::save_torchscript(m, dir); }, "a_directory is a directory");
  expect_error([&] { tq::graph::save_torchscript(m, out_path("missing/dir/model.pt")); }, "no such directory: ");
}

TEST_F(GraphErrors, SavingReplacesAnExistingFileOnlyWhenComplete) {
  const auto path = out_path("replaced.pt");
  std::ofstream(path) << "old";
  tq::graph::save_torchscript(seed_model(), path);
  EXPECT_FALSE(fs::exists(path + ".tmp-tq"));
  auto reloaded = tq::graph::load_torchscript(path);  // the new, complete file
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(reloaded.forward({batch()}).toTensor(), seed_model().forward({batch()}).toTensor()));
}

}  // namespace

namespace {

// A float64 value where an int8 op would be (some traced transformers compute their attention
// mask in float64): int8 holds float32 values only, so that op stays float, says why, and the
// model runs. Before, convert wrote a quantize of the float64 value, which failed at run time.
TEST_F(GraphErrors, Float64ValuesStayFloatAndTheSummarySaysWhy) {
  at::manual_seed(0);
  torch::jit::Module m("TwoLinears");
  m.register_parameter("weight", at::randn({4, 4}), false);
  m.register_parameter("bias", at::randn({4}), false);
  m.define(R"(
    def forward(self, x):
        y = torch.linear(x, self.weight, self.bias)
        z = torch.add(y.double(), y.double())
        return torch.linear(z.float(), self.weight, self.bias)
  )");
  auto observed = tq::graph::prepare(m, tq::graph::GraphQuantizeOptions::for_backend("qnnpack"));
  const auto calibration = at::randn({16, 4});
  observed.calibrate(calibration);
  auto int8 = observed.convert();
  bool add_named = false;
  int linears = 0;
  for (const auto& e : observed.summary().nodes) {
    if (e.op == "aten::add") {
      EXPECT_FALSE(e.quantized);
      EXPECT_NE(e.why_float.find("float32"), std::string::npos) << e.why_float;
      add_named = true;
    }
    linears += e.quantized && e.op == "aten::linear";
  }
  EXPECT_TRUE(add_named);
  EXPECT_EQ(linears, 2);
  at::NoGradGuard no_grad;
  const auto x = calibration.narrow(0, 0, 3);  // inside the calibrated ranges: no clamping
  const auto want = m.forward({x}).toTensor(), got = int8.forward({x}).toTensor();
  // Two int8 linears, each output range about 35 wide on 256 levels (a step of about 0.14): a
  // few steps.
  EXPECT_LT((got - want).abs().max().item<double>(), 0.6) << got << want;
}

TEST_F(GraphErrors, ModulesInsideAContainerAreNamedAsNamedModulesNamesThem) {
  // A container without a forward of its own (a ModuleList): the inlined call stack records only
  // its elements' names, yet qconfig mappings and summaries use the full names ("blocks.second").
  auto linear = [](const std::string& type) {
    torch::jit::Module m(type);
    m.register_parameter("weight", at::randn({4, 4}), false);
    m.register_parameter("bias", at::randn({4}), false);
    m.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
    return m;
  };
  torch::jit::Module blocks("Blocks");
  blocks.register_module("first", linear("Linear"));
  blocks.register_module("second", linear("Linear"));
  torch::jit::Module net("Net");
  net.register_module("blocks", blocks);
  net.define("def forward(self, x):\n    return self.blocks.second.forward(torch.relu(self.blocks.first.forward(x)))\n");
  auto options = tq::graph::GraphQuantizeOptions::for_backend("onednn");
  options.mapping.set_module_name_none("blocks.second");
  auto observed = tq::graph::prepare(net, options);
  std::map<std::string, bool> linears;
  for (const auto& e : observed.summary().nodes) {
    if (e.op == "aten::linear") linears[e.module_path] = e.quantized;
  }
  EXPECT_EQ(linears, (std::map<std::string, bool>{{"blocks.first", true}, {"blocks.second", false}}));
}

}  // namespace
