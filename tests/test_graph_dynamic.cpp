// Graph-mode dynamic quantization (Linear) and weight-only Embedding, against PyTorch's eager
// quantize_dynamic on the same model (golden: tools/gen_golden_graph_dynamic.py).
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

#include "golden.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"

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

INSTANTIATE_TEST_SUITE_P(ScriptedAndTraced, GraphDynamic,
                         ::testing::Values("dynamic_model_script.pt", "dynamic_model_trace.pt"),
                         [](const auto& info) { return info.param == "dynamic_model_script.pt" ? "Scripted" : "Traced"; });

}  // namespace
