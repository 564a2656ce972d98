// ONNX QDQ export (tq/export/onnx_qdq.h): what the file holds, checked against the model tq
// exported it from; bad input. OnnxExportCases.WriteForOnnxRuntime writes models, inputs and tq's
// int8 outputs for check_onnx_in_ort.py, which runs them in ONNX Runtime.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "golden.h"
#include "graph_models.h"
#include "onnx_model.h"
#include "tq/export/onnx_qdq.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"
#include "tq/nn/modules.h"
#include "tq/numerics/groupwise_weight.h"
#include "tq/quant/qconfig_mapping.h"
#include "tq/quant/qconfig_spec.h"
#include "tq/quant/quantize.h"

namespace {

using tq::testing::first_output;
using tq::testing::load_tensor;
using tq::testing::models_dir;

namespace fs = std::filesystem;

tq::graph::ObservedModel seed_model_calibrated(const tq::graph::GraphQuantizeOptions& options) {
  auto model = tq::graph::load_torchscript(tq::testing::golden_path("graph/seed_model_script.pt"));
  auto observed = tq::graph::prepare(model, options);
  at::manual_seed(0);
  for (int i = 0; i < 4; ++i) observed.calibrate(at::randn({2, 3, 16, 16}));
  return observed;
}

using tq::onnx::detail::ElemType;
using tq::onnx::detail::ModelDef;
using tq::onnx::detail::NodeDef;

ModelDef parse(const std::string& bytes) { return tq::onnx::detail::parse(bytes); }

// An initializer as a tensor (raw_data, as the exporter writes them).
at::Tensor initializer(const ModelDef& g, const std::string& name) {
  const auto* t = g.initializer(name);
  if (!t) {
    ADD_FAILURE() << "no initializer " << name;
    return {};
  }
  at::ScalarType type = at::kFloat;
  switch (t->type) {
    case ElemType::kInt8: type = at::kChar; break;
    case ElemType::kUint8: type = at::kByte; break;
    case ElemType::kInt32: type = at::kInt; break;
    case ElemType::kInt64: type = at::kLong; break;
    default: break;
  }
  auto out = at::empty(t->dims, type);
  EXPECT_EQ(static_cast<size_t>(out.nbytes()), t->raw.size()) << name;
  std::memcpy(out.data_ptr(), t->raw.data(), t->raw.size());
  return out;
}

struct Nodes {
  std::map<std::string, const NodeDef*> producer;
  std::map<std::string, int> readers;
  explicit Nodes(const ModelDef& g) {
    for (const auto& n : g.nodes) {
      for (const auto& o : n.outputs) producer[o] = &n;
      for (const auto& i : n.inputs) ++readers[i];
    }
    for (const auto& o : g.outputs) ++readers[o.name];
  }
  const NodeDef* dq(const std::string& value) const {
    auto it = producer.find(value);
    return it != producer.end() && it->second->op_type == "DequantizeLinear" ? it->second : nullptr;
  }
};

// The quantized convolutions of the reference form, in graph order: their int8 weight and float bias.
std::vector<std::pair<at::Tensor, at::Tensor>> reference_convs(const tq::graph::ObservedModel& observed) {
  std::vector<std::pair<at::Tensor, at::Tensor>> convs;
  const auto reference = observed.convert(true);
  for (auto* n : reference.get_method("forward").graph()->nodes()) {
    if (std::string(n->kind().toQualString()) != "aten::conv2d") continue;
    auto* w = n->input(1)->node();
    if (std::string(w->kind().toQualString()) != "aten::dequantize") continue;
    convs.emplace_back(torch::jit::toIValue(w->input(0))->toTensor(), torch::jit::toIValue(n->input(2))->toTensor());
  }
  return convs;
}

TEST(OnnxExport, WritesTqsQParamsInt8WeightsAndInt32Biases) {
  tq::kernels::int8::set_engine("onednn");
  const auto observed = seed_model_calibrated(tq::graph::GraphQuantizeOptions::for_backend("x86"));
  tq::onnx::ExportReport report;
  const auto m = parse(tq::onnx::export_qdq_bytes(observed, tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}}), &report));
  const auto& g = m;
  ASSERT_EQ(m.opset, 17);
  ASSERT_EQ(g.inputs.at(0).dims.at(0), "batch");
  const Nodes nodes(g);

  // Every QuantizeLinear carries the qparams of one of tq's quantization points.
  std::set<std::pair<float, int64_t>> points;
  for (const auto& p : observed.summary().points) points.insert({static_cast<float>(p.qparams.scale), p.qparams.zero_point});
  int quantize = 0;
  for (const auto& n : g.nodes) {
    if (n.op_type != "QuantizeLinear") continue;
    ++quantize;
    const float scale = initializer(g, n.inputs[1]).item<float>();
    const auto zp = initializer(g, n.inputs[2]);
    ASSERT_EQ(zp.scalar_type(), at::kByte);
    EXPECT_TRUE(points.count({scale, zp.item<int64_t>()})) << n.outputs[0] << ": scale " << scale << ", zero point " << zp.item<int64_t>();
  }
  EXPECT_GE(quantize, 3);
  EXPECT_EQ(quantize, report.quantize_linear);
  // One DequantizeLinear per reader, as ONNX Runtime groups nodes.
  for (const auto& n : g.nodes) {
    if (n.op_type == "DequantizeLinear") EXPECT_EQ(nodes.readers.at(n.outputs[0]), 1) << n.outputs[0];
  }

  // Each Conv reads int8 input, int8 weight and int32 bias, all through DequantizeLinear; the
  // weight's integers and scales are tq's, the bias within half its step of tq's float bias.
  const auto convs = reference_convs(observed);
  size_t c = 0;
  for (const auto& n : g.nodes) {
    if (n.op_type != "Conv") continue;
    ASSERT_LT(c, convs.size());
    const auto& [qweight, bias] = convs[c++];
    ASSERT_EQ(n.inputs.size(), 3u);
    const auto* x = nodes.dq(n.inputs[0]);
    const auto* w = nodes.dq(n.inputs[1]);
    const auto* b = nodes.dq(n.inputs[2]);
    ASSERT_TRUE(x && w && b) << n.outputs[0];
    const auto w_int8 = initializer(g, w->inputs[0]);
    ASSERT_EQ(w_int8.scalar_type(), at::kChar);
    EXPECT_TRUE(w_int8.equal(qweight.int_repr()));
    const auto w_scale = initializer(g, w->inputs[1]);
    EXPECT_TRUE(w_scale.equal(qweight.q_per_channel_scales().to(at::kFloat)));
    ASSERT_TRUE(w->attribute("axis"));
    EXPECT_EQ(w->attribute("axis")->i, 0);
    const auto b_int32 = initializer(g, b->inputs[0]);
    const auto b_scale = initializer(g, b->inputs[1]);
    ASSERT_EQ(b_int32.scalar_type(), at::kInt);
    const float x_scale = initializer(g, x->inputs[1]).item<float>();
    EXPECT_TRUE(b_scale.equal(w_scale * x_scale));
    const auto err = (b_int32.to(at::kDouble) * b_scale.to(at::kDouble) - bias.to(at::kDouble)).abs();
    EXPECT_TRUE((err <= b_scale.to(at::kDouble) * 0.5 + 1e-12).all().item<bool>()) << n.outputs[0];
  }
  EXPECT_EQ(c, convs.size());
  EXPECT_GE(c, 1u);
}

TEST(OnnxExport, S8S8IsU8S8ShiftedBy128) {
  const auto observed = seed_model_calibrated(tq::graph::GraphQuantizeOptions::for_backend("x86"));
  const auto options = tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}});
  const auto u8 = parse(tq::onnx::export_qdq_bytes(observed, options));
  const auto s8 = parse(tq::onnx::export_qdq_bytes(observed, tq::onnx::ExportOptions(options).profile(tq::onnx::QdqProfile::kS8S8)));
  ASSERT_EQ(u8.nodes.size(), s8.nodes.size());
  int compared = 0;
  for (size_t i = 0; i < u8.nodes.size(); ++i) {
    const auto& a = u8.nodes[i];
    const auto& b = s8.nodes[i];
    ASSERT_EQ(a.op_type, b.op_type);
    if (a.op_type != "QuantizeLinear") continue;
    EXPECT_TRUE(initializer(u8, a.inputs[1]).equal(initializer(s8, b.inputs[1])));
    const auto zu = initializer(u8, a.inputs[2]);
    const auto zs = initializer(s8, b.inputs[2]);
    ASSERT_EQ(zs.scalar_type(), at::kChar);
    EXPECT_EQ(zu.item<int64_t>() - 128, zs.item<int64_t>());
    ++compared;
  }
  EXPECT_GE(compared, 3);
}

// The seed model calibrated with symmetric activations (zero point 128 on [0, 255]).
tq::graph::ObservedModel seed_model_symmetric() {
  auto options = tq::graph::GraphQuantizeOptions::for_backend("x86");
  tq::quant::QConfigSpec spec;
  spec.reduce_range = false;
  spec.symmetric_activations = true;
  options.mapping.set_global(tq::quant::make_qconfig("x86", spec));
  return seed_model_calibrated(options);
}

// TensorRT's profile: every activation int8 with zero point 0 at tq's scale (q - 128: the same
// real values), every weight int8 with zero point 0. Asymmetric activations are refused, naming one.
TEST(OnnxExport, TensorRtProfileIsInt8WithZeroPointZero) {
  const auto observed = seed_model_symmetric();
  std::set<float> scales;
  for (const auto& p : observed.summary().points) {
    EXPECT_EQ(p.qparams.zero_point, 128) << p.op << " " << p.module_path;
    scales.insert(static_cast<float>(p.qparams.scale));
  }
  const auto options = tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}}).profile(tq::onnx::QdqProfile::kTensorRT);
  const auto g = parse(tq::onnx::export_qdq_bytes(observed, options));
  int activations = 0, weights = 0;
  for (const auto& n : g.nodes) {
    if (n.op_type != "QuantizeLinear" && n.op_type != "DequantizeLinear") continue;
    const auto zp = initializer(g, n.inputs.at(2));
    if (zp.scalar_type() == at::kInt) continue;  // an int32 bias
    ASSERT_EQ(zp.scalar_type(), at::kChar) << n.name;
    EXPECT_FALSE(zp.any().item<bool>()) << n.name;
    if (g.initializer(n.inputs.at(0))) {
      ++weights;
    } else {
      ++activations;
      EXPECT_TRUE(scales.count(initializer(g, n.inputs.at(1)).item<float>())) << n.name;
    }
  }
  EXPECT_GE(activations, 6);
  EXPECT_GE(weights, 3);
  // tq's default, asymmetric activations: one line naming the value and what the profile takes.
  try {
    tq::onnx::export_qdq_bytes(seed_model_calibrated(tq::graph::GraphQuantizeOptions::for_backend("x86")), options);
    ADD_FAILURE() << "asymmetric activations exported under the tensorrt profile";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("the tensorrt profile takes symmetric activations"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// With the attention's products in int8, q k^T's constant scaling goes into its QuantizeLinear's
// scale, so every MatMul sits between DequantizeLinear and QuantizeLinear (what ORT fuses).
TEST(OnnxExport, FoldsTheAttentionScalingIntoItsQuantizeLinear) {
  torch::jit::Module m("Attention");
  at::manual_seed(2);
  for (const char* name : {"wq", "wk", "wv"}) m.register_parameter(name, at::randn({8, 8}) * 0.3, false);
  m.define(R"(
def forward(self, x):
    q = torch.linear(x, self.wq)
    k = torch.linear(x, self.wk)
    p = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * 0.25, -1)
    return torch.matmul(p, torch.linear(x, self.wv))
)");
  m.eval();
  auto options = tq::graph::GraphQuantizeOptions::for_backend("x86");
  tq::graph::register_int8_matmul_patterns(options.patterns);
  auto observed = tq::graph::prepare(m, options);
  for (int i = 0; i < 4; ++i) observed.calibrate(at::randn({2, 5, 8}));
  double scores_scale = 0;
  for (const auto& p : observed.summary().points) {  // the first matmul's: q k^T * 0.25
    if (p.op == "aten::matmul" && scores_scale == 0) scores_scale = p.qparams.scale;
  }
  ASSERT_GT(scores_scale, 0);
  const auto g = parse(tq::onnx::export_qdq_bytes(observed, tq::onnx::ExportOptions().input_shapes({{2, 5, 8}})));
  std::map<std::string, const NodeDef*> reader;
  for (const auto& n : g.nodes) {
    EXPECT_NE(n.op_type, "Mul");
    for (const auto& i : n.inputs) reader[i] = &n;
  }
  int matmuls = 0;
  for (const auto& n : g.nodes) {
    if (n.op_type != "MatMul") continue;
    ++matmuls;
    const auto* q = reader.count(n.outputs[0]) ? reader.at(n.outputs[0]) : nullptr;
    ASSERT_TRUE(q && q->op_type == "QuantizeLinear") << "MatMul " << n.name;
    if (matmuls == 1) EXPECT_NEAR(initializer(g, q->inputs[1]).item<double>(), scores_scale / 0.25, 1e-6 * scores_scale / 0.25);
  }
  EXPECT_EQ(matmuls, 2);
}

TEST(OnnxExport, BadInputIsAOneLineErrorAndLeavesTheFileAsItWas) {
  const auto observed = seed_model_calibrated(tq::graph::GraphQuantizeOptions::for_backend("x86"));
  const auto path = std::string(TQ_TEST_OUTPUT_DIR) + "/onnx_bad_input.onnx";
  {
    std::ofstream f(path);
    f << "the user's file";
  }
  auto expect_error = [&](const tq::onnx::ExportOptions& o, const std::string& what) {
    try {
      tq::onnx::export_qdq(observed, path, o);
      ADD_FAILURE() << "no error for: " << what;
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    std::ifstream f(path);
    std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content, "the user's file");
  };
  expect_error(tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}}).opset(12),
               "opset 12 is too old: per-channel DequantizeLinear");
  expect_error(tq::onnx::ExportOptions(), "the model takes 1 input(s); ExportOptions::input_shapes gives 0");
  expect_error(tq::onnx::ExportOptions().input_shapes({{2, 0, 16, 16}}), "dimension 1 of input is 0");

  // Dynamic quantization has no QDQ form here.
  auto model = tq::graph::load_torchscript(tq::testing::golden_path("graph/seed_model_script.pt"));
  const auto dynamic = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::dynamic());
  bool has_linear = false;
  for (const auto& e : dynamic.summary().nodes) has_linear |= e.quantized;
  if (has_linear) {
    EXPECT_THROW(tq::onnx::export_qdq(dynamic, path, tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}})), c10::Error);
  }
  // Not calibrated.
  const auto fresh = tq::graph::prepare(model, tq::graph::GraphQuantizeOptions::for_backend("x86"));
  EXPECT_THROW(tq::onnx::export_qdq(fresh, path, tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}})), c10::Error);
}

// A small transformer-style MLP on [N, tokens, 256]: two Linears with GELU between, a residual,
// LayerNorm, a mean over tokens and a classifier. Every Linear's input features are a multiple of 128.
torch::jit::Module token_mlp() {
  torch::jit::Module m("TokenMlp");
  at::manual_seed(3);
  m.register_parameter("w1", at::randn({512, 256}) * 0.06, false);
  m.register_parameter("b1", at::randn({512}) * 0.1, false);
  m.register_parameter("w2", at::randn({256, 512}) * 0.04, false);
  m.register_parameter("b2", at::randn({256}) * 0.1, false);
  m.register_parameter("w3", at::randn({10, 256}) * 0.06, false);
  m.register_parameter("b3", at::randn({10}) * 0.1, false);
  m.define(R"(
def forward(self, x):
    h = torch.linear(torch.gelu(torch.linear(x, self.w1, self.b1)), self.w2, self.b2) + x
    h = torch.layer_norm(h, [256])
    return torch.linear(torch.mean(h, [1]), self.w3, self.b3)
)");
  m.eval();
  return m;
}

tq::graph::ObservedModel weight_only(const torch::jit::Module& m, int64_t bits) {
  auto options = tq::graph::GraphQuantizeOptions::dynamic();
  options.mapping.set_global(tq::quant::weight_only_qconfig(bits, 128));
  return tq::graph::prepare(m, options);
}

// A weight-only Linear's group-wise integers, scales and zero points are written as they are
// (uint4 two per byte, or uint8), transposed to [in, out] under one blocked DequantizeLinear
// (axis 0, block_size the group size) that feeds a MatMul: what ORT fuses into MatMulNBits.
TEST(OnnxExport, WeightOnlyLinearsAreBlockedDequantizeLinearsOfTheirIntegers) {
  const auto m = token_mlp();
  for (int64_t bits : {4, 8}) {
    const auto observed = weight_only(m, bits);
    tq::onnx::ExportReport report;
    const auto g = parse(tq::onnx::export_qdq_bytes(observed, tq::onnx::ExportOptions().input_shapes({{2, 6, 256}}).opset(21), &report));
    EXPECT_EQ(g.ir_version, 10);
    EXPECT_EQ(report.groupwise_weights, 3);
    EXPECT_EQ(report.quantize_linear, 0);
    const Nodes nodes(g);
    int checked = 0;
    for (const auto& n : g.nodes) {
      if (n.op_type != "MatMul") continue;
      const auto* dq = nodes.dq(n.inputs.at(1));
      ASSERT_NE(dq, nullptr) << n.name;
      ASSERT_EQ(dq->attribute("axis")->i, 0);
      ASSERT_EQ(dq->attribute("block_size")->i, 128);
      const auto* q = g.initializer(dq->inputs.at(0));
      const auto* zp = g.initializer(dq->inputs.at(2));
      ASSERT_TRUE(q && zp);
      ASSERT_EQ(q->type, bits == 4 ? ElemType::kUint4 : ElemType::kUint8);
      ASSERT_EQ(zp->type, q->type);
      // The layer's weight, found by its [in, out] shape, as tq quantizes it.
      const std::string wname = q->dims == std::vector<int64_t>{256, 512} ? "w1" : q->dims == std::vector<int64_t>{512, 256} ? "w2" : "w3";
      const auto expected = tq::quantize_weight_groupwise(m.attr(wname).toTensor(), bits, 128);
      const auto want_q = tq::unpack_groupwise(expected.packed, bits, expected.in_features).t().contiguous();
      const auto want_zp = expected.zero_points.round().to(at::kByte).t().contiguous();
      auto unpack = [&](const tq::onnx::detail::TensorDef& t) {
        auto out = at::empty(t.dims, at::kByte);
        auto* o = out.data_ptr<uint8_t>();
        for (int64_t i = 0; i < out.numel(); ++i) {
          const auto byte = static_cast<uint8_t>(t.raw[bits == 4 ? i / 2 : i]);
          o[i] = bits == 4 ? (i % 2 ? byte >> 4 : byte & 0xF) : byte;
        }
        return out;
      };
      EXPECT_TRUE(at::equal(unpack(*q), want_q)) << wname;
      EXPECT_TRUE(at::equal(unpack(*zp), want_zp)) << wname;
      EXPECT_TRUE(at::equal(initializer(g, dq->inputs.at(1)), expected.scales.t().contiguous())) << wname;
      ++checked;
    }
    EXPECT_EQ(checked, 3);
  }
  // Before opset 21 there is no blocked DequantizeLinear: one line naming the weight and the opset.
  try {
    tq::onnx::export_qdq_bytes(weight_only(m, 4), tq::onnx::ExportOptions().input_shapes({{2, 6, 256}}).opset(17));
    ADD_FAILURE() << "no error at opset 17";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("group-wise 4-bit (weight-only), which needs opset 21"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// An eager CNN of tq's modules, as a Sequential: fused Conv + BN + ReLU, pooling, flatten, Linear.
torch::nn::Sequential eager_cnn() {
  at::manual_seed(4);
  namespace nn = tq::nn;
  torch::nn::Sequential m(nn::QuantStub(), nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)), nn::BatchNorm2d(8),
                          nn::ReLU(), torch::nn::MaxPool2d(2), nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3)), nn::ReLU(),
                          torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(), nn::Linear(16, 10), nn::DeQuantStub());
  m->eval();
  return m;
}

// Fused, calibrated and converted by tq's eager workflow.
void quantize_eager(torch::nn::Sequential& m, int64_t batch) {
  tq::quant::fuse_modules(*m, {{"1", "2", "3"}, {"5", "6"}});
  tq::quant::prepare(*m, tq::quant::QConfigMapping().set_global(tq::quant::get_default_qconfig("x86")));
  at::manual_seed(5);
  for (int i = 0; i < 4; ++i) m->forward(at::randn({batch, 3, 16, 16}));
  tq::quant::convert(*m);
}

// An eager model whose structure is its children's order exports as graph mode's do: its int8
// weights and output qparams as they are, one QuantizeLinear per int8 output.
TEST(OnnxExport, EagerSequentialWritesItsLayersInt8WeightsAndOutputQParams) {
  tq::kernels::int8::set_engine("onednn");
  auto m = eager_cnn();
  quantize_eager(m, 2);
  tq::onnx::ExportReport report;
  const auto g = parse(tq::onnx::export_qdq_bytes(m, tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}}), &report));
  EXPECT_EQ(report.int8_weights, 3);
  const Nodes nodes(g);
  std::vector<const tq::nn::WeightedModule*> layers = {m[1]->as<tq::nn::Conv2dImpl>(), m[5]->as<tq::nn::Conv2dImpl>(),
                                                       m[9]->as<tq::nn::LinearImpl>()};
  size_t layer = 0;
  for (const auto& n : g.nodes) {
    if (n.op_type != "Conv" && n.op_type != "Gemm") continue;
    ASSERT_LT(layer, layers.size());
    const auto* l = layers[layer++];
    const auto* w = nodes.dq(n.inputs.at(1));
    ASSERT_NE(w, nullptr) << n.name;
    EXPECT_TRUE(at::equal(initializer(g, w->inputs.at(0)), l->quantized_weight().int_repr())) << n.name;
    ASSERT_EQ(n.inputs.size(), 3u);
    ASSERT_NE(nodes.dq(n.inputs.at(2)), nullptr) << "int32 bias of " << n.name;
  }
  EXPECT_EQ(layer, layers.size());
  // Each layer's output qparams are those of a QuantizeLinear.
  std::set<std::pair<float, int64_t>> written;
  for (const auto& n : g.nodes) {
    if (n.op_type == "QuantizeLinear") written.insert({initializer(g, n.inputs[1]).item<float>(), initializer(g, n.inputs[2]).item<int64_t>()});
  }
  for (const auto* l : layers) EXPECT_TRUE(written.count({static_cast<float>(l->output_scale()), l->output_zero_point()}));
  const auto* stub = m[0]->as<tq::nn::QuantStubImpl>();
  EXPECT_TRUE(written.count({static_cast<float>(stub->output_scale()), stub->output_zero_point()}));

  // A child with no ONNX form, and a model never converted: one line naming the child.
  auto expect_error = [](const torch::nn::Sequential& bad, const std::string& what) {
    try {
      tq::onnx::export_qdq_bytes(bad, tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}}));
      ADD_FAILURE() << "no error for: " << what;
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  auto with_sigmoid = eager_cnn();
  quantize_eager(with_sigmoid, 2);
  with_sigmoid->push_back(torch::nn::Sigmoid());
  expect_error(with_sigmoid, "child '11' (torch::nn::SigmoidImpl) has no ONNX form in tq's eager export");
  expect_error(eager_cnn(), "child '0' is float, not converted to int8");
}

// A branch on the input's rank is taken once, as tracing takes it (scripted InstanceNorm's
// `input.dim() == 3`); a branch on the values is refused, naming it.
TEST(OnnxExport, TakesBranchesOnShapesAndRefusesBranchesOnValues) {
  auto branching = [](const std::string& condition) {
    torch::jit::Module m("Branches");
    at::manual_seed(0);
    m.register_parameter("weight", at::randn({4, 3, 3, 3}), false);
    m.define("def forward(self, x):\n"
             "    y = torch.conv2d(x, self.weight)\n"
             "    if " + condition + ":\n"
             "        y = torch.relu(y)\n"
             "    else:\n"
             "        y = torch.sigmoid(y)\n"
             "    return y\n");
    m.eval();
    auto observed = tq::graph::prepare(m, tq::graph::GraphQuantizeOptions::for_backend("x86"));
    for (int i = 0; i < 2; ++i) observed.calibrate(at::randn({2, 3, 8, 8}));
    return observed;
  };
  const auto options = tq::onnx::ExportOptions().input_shapes({{2, 3, 8, 8}});
  const auto g = parse(tq::onnx::export_qdq_bytes(branching("x.dim() == 4 and x.size(1) == 3"), options));
  std::multiset<std::string> ops;
  for (const auto& n : g.nodes) ops.insert(n.op_type);
  EXPECT_EQ(ops.count("Relu"), 1u);
  EXPECT_EQ(ops.count("Sigmoid"), 0u);
  EXPECT_EQ(ops.count("If"), 0u);
  EXPECT_EQ(ops.count("ConvInteger") + ops.count("Conv"), 1u);
  try {
    tq::onnx::export_qdq_bytes(branching("bool(y.sum() > 0)"), options);
    ADD_FAILURE() << "a branch on the values was exported";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("prim::If"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// ---- cases for ONNX Runtime (check_onnx_in_ort.py) ----

// A float, uint8 or int8 tensor as ONNX's TensorProto file (ONNX's test-data format;
// onnx.load_tensor reads it).
void write_tensor_pb(const std::string& path, const at::Tensor& t) {
  const auto c = t.scalar_type() == at::kByte || t.scalar_type() == at::kChar ? t.contiguous() : t.contiguous().to(at::kFloat);
  tq::onnx::detail::TensorDef d;
  d.name = "x";
  d.type = c.scalar_type() == at::kByte ? ElemType::kUint8 : c.scalar_type() == at::kChar ? ElemType::kInt8 : ElemType::kFloat;
  d.dims = c.sizes().vec();
  d.raw.assign(static_cast<const char*>(c.data_ptr()), c.nbytes());
  std::ofstream f(path, std::ios::binary);
  const auto bytes = tq::onnx::detail::serialize_tensor(d);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// tq's int8 values at its layers' outputs (the values tq names after their layers), on input x.
std::map<std::string, at::Tensor> int8_layer_values(const torch::jit::Module& int8, const at::Tensor& x) {
  auto g = int8.get_method("forward").graph()->copy();
  std::vector<torch::jit::Value*> values;
  std::vector<std::string> names;
  for (auto* n : g->nodes()) {
    for (auto* v : n->outputs()) {
      if (v->debugName().rfind("tq_layer__", 0) != 0) continue;
      values.push_back(v);
      names.push_back(v->debugName());
    }
  }
  while (!g->outputs().empty()) g->eraseOutput(0);
  g->registerOutput(g->insertNode(g->createTuple(values))->output());
  torch::jit::GraphFunction fn("tq_layer_values", g, nullptr);
  const auto out = fn({int8._ivalue(), x});
  std::map<std::string, at::Tensor> result;
  const auto elements = out.toTupleRef().elements();
  for (size_t i = 0; i < names.size(); ++i) {
    const auto t = elements[i].toTensor();
    if (t.is_quantized()) result[names[i]] = t.int_repr();
  }
  return result;
}

void write_case(const std::string& name, const tq::graph::ObservedModel& observed, const torch::jit::Module& float_model,
                const std::vector<int64_t>& sample_shape, int64_t opset = 17,
                tq::onnx::QdqProfile profile = tq::onnx::QdqProfile::kU8S8) {
  const auto dir = std::string(TQ_TEST_OUTPUT_DIR) + "/onnx/" + name;
  fs::create_directories(dir);
  std::vector<int64_t> shape = sample_shape;
  tq::onnx::ExportReport report;
  ASSERT_NO_THROW(report = tq::onnx::export_qdq(observed, dir + "/model.onnx",
                                                     tq::onnx::ExportOptions().input_shapes({shape}).opset(opset).profile(profile)))
      << name;
  std::ofstream(dir + "/report.txt") << report.to_string();
  // The same model with every QuantizeLinear output exposed, and tq's int8 values there.
  ASSERT_NO_THROW(tq::onnx::export_qdq(observed, dir + "/model_points.onnx",
                                       tq::onnx::ExportOptions().input_shapes({shape}).opset(opset).profile(profile).quantization_points_as_outputs(true)));
  auto int8 = observed.convert();
  auto reference = observed.convert(/*reference=*/true);
  auto float_copy = float_model.clone();
  float_copy.eval();
  at::manual_seed(1);
  for (int64_t batch : {1, 16}) {
    shape[0] = batch;
    const auto x = at::randn(shape);
    write_tensor_pb(dir + "/input_b" + std::to_string(batch) + ".pb", x);
    write_tensor_pb(dir + "/tq_int8_b" + std::to_string(batch) + ".pb", first_output(int8.forward({x})));
    write_tensor_pb(dir + "/float_b" + std::to_string(batch) + ".pb", first_output(float_copy.forward({x})));
    write_tensor_pb(dir + "/tq_reference_b" + std::to_string(batch) + ".pb", first_output(reference.forward({x})));
    if (batch == 16 && report.quantize_linear > 0) {
      fs::create_directories(dir + "/points_b16");
      const auto points = int8_layer_values(int8, x);
      ASSERT_FALSE(points.empty());
      // uint8 values as the profile's int8 ones where it has them (the same real values).
      for (const auto& [point, values] : points) {
        write_tensor_pb(dir + "/points_b16/" + point + ".pb",
                        profile == tq::onnx::QdqProfile::kU8S8 || values.scalar_type() != at::kByte
                            ? values
                            : (values.to(at::kInt) - 128).to(at::kChar));
      }
    }
  }
}

TEST(OnnxExportCases, WriteForOnnxRuntime) {
  tq::kernels::int8::set_engine("onednn");
  const auto options = tq::graph::GraphQuantizeOptions::for_backend("x86");
  {
    auto model = tq::graph::load_torchscript(tq::testing::golden_path("graph/seed_model_script.pt"));
    write_case("seed_model", seed_model_calibrated(options), model, {2, 3, 16, 16});
  }
  for (const std::string name :
       {"resnet18_script", "resnet18_trace", "resnet50_script", "mobilenet_v2_script", "mobilenet_v2_trace",
        "mobilenet_v3_large_script", "shufflenet_v2_x1_0_script", "shufflenet_v2_x1_0_trace", "efficientnet_b0_script",
        "googlenet_script", "googlenet_trace", "densenet121_script", "densenet121_trace", "vit_b_16_script", "vit_b_16_trace", "ops_zoo_script", "ops_zoo_trace"}) {
    const auto start = std::chrono::steady_clock::now();
    auto model = tq::graph::load_torchscript(models_dir() + "/" + name + ".pt");
    auto observed = tq::graph::prepare(model, options);
    const auto base = name.substr(0, name.rfind('_'));
    const auto calib = load_tensor(models_dir() + "/" + base + "_calib.pt");
    for (int64_t i = 0; i < calib.size(0); ++i) observed.calibrate(calib[i]);
    write_case(name, observed, model, calib[0].sizes().vec());
    std::cerr << name << ": " << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s\n";
  }
}

// The seed model under TensorRT's profile (symmetric int8 activations, zero point 0).
TEST(OnnxExportCases, WriteTensorRtProfileForOnnxRuntime) {
  tq::kernels::int8::set_engine("onednn");
  auto model = tq::graph::load_torchscript(tq::testing::golden_path("graph/seed_model_script.pt"));
  write_case("seed_model_tensorrt_profile", seed_model_symmetric(), model, {2, 3, 16, 16}, 17,
             tq::onnx::QdqProfile::kTensorRT);
}

// The eager CNN (tq::nn modules in a Sequential), exported after the eager workflow's convert.
TEST(OnnxExportCases, WriteEagerForOnnxRuntime) {
  tq::kernels::int8::set_engine("onednn");
  auto float_model = eager_cnn();
  auto m = eager_cnn();
  quantize_eager(m, 8);
  const auto dir = std::string(TQ_TEST_OUTPUT_DIR) + "/onnx/eager_cnn";
  fs::create_directories(dir);
  const auto report = tq::onnx::export_qdq(m, dir + "/model.onnx", tq::onnx::ExportOptions().input_shapes({{2, 3, 16, 16}}));
  std::ofstream(dir + "/report.txt") << report.to_string();
  at::manual_seed(1);
  for (int64_t batch : {1, 16}) {
    const auto x = at::randn({batch, 3, 16, 16});
    write_tensor_pb(dir + "/input_b" + std::to_string(batch) + ".pb", x);
    write_tensor_pb(dir + "/tq_int8_b" + std::to_string(batch) + ".pb", m->forward(x));
    write_tensor_pb(dir + "/float_b" + std::to_string(batch) + ".pb", float_model->forward(x));
  }
}

// Weight-only Linears at 4 and 8 bits, which ORT runs as MatMulNBits.
TEST(OnnxExportCases, WriteWeightOnlyForOnnxRuntime) {
  const auto m = token_mlp();
  for (int64_t bits : {4, 8}) write_case("token_mlp_weight_only_w" + std::to_string(bits), weight_only(m, bits), m, {2, 6, 256}, 21);
}

// vit_b_16's two transformer forms: the attention's products in int8 (register_int8_matmul_patterns),
// whose QDQ pairs around q k^T and P V ORT fuses into QLinearMatMul; and Linears with float
// outputs and SmoothQuant (residual adds, LayerNorm and softmax float), whose export has the
// smoothing as a Mul before each QuantizeLinear and no QuantizeLinear after the Linears.
TEST(OnnxExportCases, WriteTransformerFormsForOnnxRuntime) {
  tq::kernels::int8::set_engine("onednn");
  auto model = tq::graph::load_torchscript(models_dir() + "/vit_b_16_trace.pt");
  const auto calib = load_tensor(models_dir() + "/vit_b_16_calib.pt");
  auto calibrated = [&](const tq::graph::GraphQuantizeOptions& options) {
    auto observed = tq::graph::prepare(model, options);
    for (int64_t i = 0; i < calib.size(0); ++i) observed.calibrate(calib[i]);
    return observed;
  };
  auto int8_matmul = tq::graph::GraphQuantizeOptions::for_backend("x86");
  tq::graph::register_int8_matmul_patterns(int8_matmul.patterns);
  auto observed = calibrated(int8_matmul);
  int int8_matmuls = 0;
  for (const auto& n : observed.summary().nodes) int8_matmuls += n.op == "aten::matmul" && n.quantized;
  EXPECT_EQ(int8_matmuls, 24);  // q k^T and P V in each of the 12 blocks
  write_case("vit_b_16_int8_matmul_trace", observed, model, calib[0].sizes().vec());

  auto smooth = tq::graph::GraphQuantizeOptions::for_backend("x86");
  for (const char* op : {"add", "layer_norm", "softmax"}) smooth.mapping.set_object_type_none(op);
  smooth.float_linear_outputs = true;
  smooth.smooth_quant = tq::graph::SmoothQuantOptions{0.5};
  write_case("vit_b_16_float_outputs_smooth_quant_trace", calibrated(smooth), model, calib[0].sizes().vec());
}

}  // namespace
