// Graph-mode dynamic quantization (Linear) and weight-only Embedding, against PyTorch's eager
// quantize_dynamic on the same model (golden: tools/gen_golden_graph_dynamic.py).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

#include <filesystem>

#include "golden.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"
#include "tq/numerics/groupwise_weight.h"
#include "tq/ptq/gptq.h"
#include "tq/quant/qconfig_mapping.h"

namespace {

using tq::testing::machine_golden;
using tq::testing::machine_golden_path;
using tq::testing::to_tensor;

class GraphDynamic : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { tq::kernels::int8::set_engine("onednn"); }
};

TEST_P(GraphDynamic, EqualsPyTorchsQuantizeDynamicWithoutCalibration) {
  const auto& g = machine_golden("graph/dynamic.json");
  auto model = tq::graph::load_torchscript(machine_golden_path("graph/" + GetParam()));
  auto observed = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::dynamic());
  auto int8 = observed.convert();  // nothing to calibrate
  const auto summary = observed.summary();
  std::map<std::string, int> by_handler;
  for (const auto& e : summary.nodes) {
    if (e.quantized) by_handler[e.handler]++;
  }
  EXPECT_EQ(by_handler["DynamicLinear"], 2);
  EXPECT_EQ(by_handler["Embedding"], 1);
  EXPECT_TRUE(summary.points.empty());
  at::NoGradGuard no_grad;
  const auto out = int8.forward({to_tensor(g["tokens"])}).toTensor();
  // Bit for bit with quantize_dynamic on the same LibTorch version (tensors_match_reference).
  EXPECT_TRUE(tq::testing::tensors_match_reference(out, to_tensor(g["output"])));
  // Token ids that are a view (a slice of a padded batch): LibTorch's int8 embedding refuses
  // non-contiguous indices, so the graph makes them contiguous first.
  const auto tokens = to_tensor(g["tokens"]);
  const auto strided = tokens.t().contiguous().t();
  ASSERT_FALSE(strided.is_contiguous());
  EXPECT_TRUE(at::equal(int8.forward({strided}).toTensor(), out));
  // The reference form: float ops on dequantized weights, close to the dynamic kernels.
  const auto ref = observed.convert(/*reference=*/true).forward({to_tensor(g["tokens"])}).toTensor();
  EXPECT_TRUE(tq::testing::tensors_close(ref, out, 0.05, 0.05));
}

// Weight-only Linear (group-wise 4-bit weights, tq's operator): the int8 graph gives the reference
// form's numbers (float ops on the dequantized weights) and survives saving; a group size that
// does not divide a layer's input features is refused naming the layer, the model untouched.
TEST(GraphWeightOnly, FourBitLinearEqualsItsReferenceForm) {
  const auto& g = machine_golden("graph/dynamic.json");
  auto model = tq::graph::load_torchscript(machine_golden_path("graph/dynamic_model_script.pt"));
  const auto tokens = to_tensor(g["tokens"]);
  at::NoGradGuard no_grad;
  const auto float_out = model.forward({tokens}).toTensor();

  auto options = tq::graph::GraphQuantizeOptions::dynamic();
  options.mapping.set_global(tq::quant::weight_only_qconfig(4, 32));
  auto observed = tq::graph::prepare(model, options);
  tq::testing::expect_error([&] { observed.convert(); },
                            "[convert] the handler DynamicLinear failed on aten::linear in 'fc1': [groupwise_weight] "
                            "the group size 32 does not divide the 16 input features");
  EXPECT_TRUE(at::equal(model.forward({tokens}).toTensor(), float_out));  // unchanged

  options.mapping.set_module_name_none("fc1");  // 16 input features: no group of 32 fits
  auto observed_fc2 = tq::graph::prepare(model, options);
  auto quantized = observed_fc2.convert();
  std::map<std::string, int> by_handler;
  for (const auto& e : observed_fc2.summary().nodes) by_handler[e.handler] += e.quantized;
  EXPECT_EQ(by_handler["DynamicLinear"], 1);
  EXPECT_EQ(quantized.get_method("forward").graph()->toString().find("tq::linear_weight_only") != std::string::npos,
            true);
  const auto out = quantized.forward({tokens}).toTensor();
  const auto ref = observed_fc2.convert(/*reference=*/true).forward({tokens}).toTensor();
  // Only float32 summation order differs between tq's kernel and the reference form's matmul.
  EXPECT_TRUE(tq::testing::tensors_close(out, ref, 1e-5, 1e-5));
  EXPECT_FALSE(at::allclose(out, float_out, 1e-4, 1e-4));  // 4-bit weights do change the output
  const auto path = std::string(TQ_TEST_OUTPUT_DIR) + "/graph_weight_only_w4.pt";
  tq::graph::save_torchscript(quantized, path);
  EXPECT_TRUE(at::equal(tq::graph::load_torchscript(path).forward({tokens}).toTensor(), out));
  // Its input and output for Python, which runs the model with tq's operators loaded from
  // libtq_torch_ops (check_python_loads_tq_ops.py).
  torch::jit::Module io("WeightOnlyIo");
  io.register_buffer("tokens", tokens);
  io.register_buffer("out", out);
  const auto io_path = std::string(TQ_TEST_OUTPUT_DIR) + "/graph_weight_only_w4_io.pt";
  io.save(io_path + ".tmp");  // renamed: the Python check may read it while this test runs again
  std::filesystem::rename(io_path + ".tmp", io_path);
}

// GPTQ in graph mode: calibration collects fc2's input Hessian, and convert gives the integers
// tq::ptq::gptq_quantize gives on those inputs (act order, weight_only_gptq_qconfig's default). Before calibration, and with fewer input rows than
// fc2's 32 input features, convert refuses naming the layer.
TEST(GraphWeightOnly, GptqQuantizesWithTheInputsCalibrationSaw) {
  auto model = tq::graph::load_torchscript(machine_golden_path("graph/dynamic_model_script.pt"));
  at::NoGradGuard no_grad;
  auto options = tq::graph::GraphQuantizeOptions::dynamic();
  options.mapping.set_global(tq::quant::weight_only_gptq_qconfig(4, 32));
  options.mapping.set_module_name_none("embed");  // float: fc2's inputs then come from float ops only
  options.mapping.set_module_name_none("fc1");
  auto observed = tq::graph::prepare(model, options);
  tq::testing::expect_error([&] { observed.convert(); },
                            "'fc2': GPTQ needs the layer's inputs: calibrate the prepared model first");
  at::manual_seed(5);
  std::vector<at::Tensor> batches;
  for (int i = 0; i < 12; ++i) batches.push_back(at::randint(0, 100, {4, 10}));
  observed.calibrate(batches[0]);
  tq::testing::expect_error([&] { observed.convert(); },
                            "[gptq] 'fc2': 4 calibration tokens for 32 input features");
  for (size_t i = 1; i < batches.size(); ++i) observed.calibrate(batches[i]);

  // fc2's inputs from the float model's parameters, in calibration's order.
  auto param = [&](const std::string& module, const std::string& name) {
    return model.attr(module).toModule().attr(name).toTensor();
  };
  auto fc2_input = [&](const at::Tensor& tokens) {
    const auto x = at::embedding(param("embed", "weight"), tokens).mean(1);
    return at::relu(at::linear(x, param("fc1", "weight"), param("fc1", "bias")));
  };
  tq::ptq::GptqHessian hessian;
  for (const auto& b : batches) hessian.add(fc2_input(b));
  const auto weight = param("fc2", "weight");
  const auto want = tq::ptq::gptq_quantize(weight, hessian, tq::ptq::GptqOptions().bits(4).group_size(32).act_order(true), "fc2");
  // GPTQ rounds some weights away from their nearest level (else this test could not tell them apart).
  EXPECT_FALSE(at::equal(want.packed, tq::quantize_weight_groupwise(weight, 4, 32).packed));

  const auto tokens = at::randint(0, 100, {6, 10});
  const auto expected = at::linear(fc2_input(tokens), tq::dequantize_groupwise(want), param("fc2", "bias"));
  const auto reference = observed.convert(/*reference=*/true).forward({tokens}).toTensor();
  EXPECT_TRUE(tq::testing::tensors_close(reference, expected, 1e-6, 1e-6));
  // tq's kernel: the same weights, float32 summed in another order.
  const auto quantized = observed.convert().forward({tokens}).toTensor();
  EXPECT_TRUE(tq::testing::tensors_close(quantized, expected, 1e-5, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(ScriptedAndTraced, GraphDynamic,
                         ::testing::Values("dynamic_model_script.pt", "dynamic_model_trace.pt"),
                         [](const auto& info) { return info.param == "dynamic_model_script.pt" ? "Scripted" : "Traced"; });

}  // namespace
