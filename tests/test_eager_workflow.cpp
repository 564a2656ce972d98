#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <fstream>
#include <sstream>

#include "golden.h"
#include "tq/fake_quant/fake_quantize.h"
#include "tq/fake_quant/learnable_fake_quantize.h"
#include "tq/observers/min_max_observer.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_saturation.h"
#include "tq/nn/activations.h"
#include "tq/nn/conv_nd.h"
#include "tq/nn/embedding.h"
#include "tq/nn/modules.h"
#include "tq/nn/rnn.h"
#include "tq/quant/quantize.h"
#include "tq/serialize/state_dict.h"

using namespace tq;
using tq::testing::expect_error;
using tq::nn::QuantMode;

namespace {

// A ResNet basic block with typed members and a hand-written forward; the residual add goes
// through a FloatFunctional.
struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl() {
    conv1 = register_module("conv1", nn::Conv2d(torch::nn::Conv2dOptions(8, 8, 3).padding(1).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm2d(8));
    relu1 = register_module("relu1", nn::ReLU());
    conv2 = register_module("conv2", nn::Conv2d(torch::nn::Conv2dOptions(8, 8, 3).padding(1).bias(false)));
    bn2 = register_module("bn2", nn::BatchNorm2d(8));
    skip_add = register_module("skip_add", nn::FloatFunctional());
  }
  at::Tensor forward(const at::Tensor& x) {
    auto y = relu1(bn1(conv1(x)));
    y = bn2(conv2(y));
    return skip_add->add_relu(y, x);
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::ReLU relu1{nullptr};
  nn::FloatFunctional skip_add{nullptr};
};
TORCH_MODULE(BasicBlock);

struct NetImpl : torch::nn::Module {
  NetImpl() {
    quant = register_module("quant", nn::QuantStub());
    stem = register_module("stem", nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
    block = register_module("block", BasicBlock());
    head = register_module("head", nn::Linear(8 * 6 * 6, 5));
    dequant = register_module("dequant", nn::DeQuantStub());
  }
  at::Tensor forward(const at::Tensor& x) {
    auto y = block(stem(quant(x)));
    return dequant(head(y.flatten(1)));
  }
  nn::QuantStub quant{nullptr};
  nn::Conv2d stem{nullptr};
  BasicBlock block{nullptr};
  nn::Linear head{nullptr};
  nn::DeQuantStub dequant{nullptr};
};
TORCH_MODULE(Net);

void randomize_batch_norms(torch::nn::Module& m) {
  at::NoGradGuard no_grad;
  for (const auto& item : m.named_modules("", /*include_self=*/false)) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2dImpl*>(item.value().get())) {
      bn->running_mean.uniform_(-0.2, 0.2);
      bn->running_var.uniform_(0.5, 1.5);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.1, 0.1);
    }
  }
}

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

class EagerWorkflow : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(0);
    const auto engines = kernels::int8::available_engines();
    engine_ = std::find(engines.begin(), engines.end(), "onednn") != engines.end() ? "onednn" : engines.at(0);
    kernels::int8::set_engine(engine_);
    // The engine's qconfig with reduced-range activations ("x86": what PyTorch's x86 backend and
    // tq's tool use), so the int8 model computes what its fake-quantized form says on every CPU:
    // full-range activations saturate in x86 int8 kernels without VNNI (test_int8_saturation.cpp).
    qconfig_backend_ = engine_ == "qnnpack" ? "qnnpack" : "x86";
  }
  std::string engine_, qconfig_backend_;
};

}  // namespace

TEST_F(EagerWorkflow, SequentialModelQuantizesEndToEnd) {
  torch::nn::Sequential model(nn::QuantStub(), nn::Linear(16, 32), nn::ReLU(), nn::Linear(32, 4), nn::DeQuantStub());
  model->eval();
  const auto data = at::randn({64, 16});
  const auto reference = model->forward(data);
  const auto summary = quant::prepare(*model, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
  EXPECT_EQ(summary.changed.size(), 3u) << summary.to_string();  // stub + two Linear
  model->forward(data);
  quant::convert(*model);
  const auto y = model->forward(data);
  // int8 error: a few output quantization steps at most.
  EXPECT_LT(max_abs(y - reference), 0.05 * max_abs(reference)) << max_abs(y - reference);
  EXPECT_EQ(model[1]->as<nn::LinearImpl>()->mode(), QuantMode::Quantized);
}

TEST_F(EagerWorkflow, ResidualBlockWithTypedMembersAndFloatFunctional) {
  Net net;
  randomize_batch_norms(*net);
  net->eval();
  const auto data = at::randn({16, 3, 6, 6});
  const auto reference = net->forward(data);
  quant::fuse_modules(*net, {{"block.conv1", "block.bn1", "block.relu1"}, {"block.conv2", "block.bn2"}});
  const auto fused = net->forward(data);
  EXPECT_LT(max_abs(fused - reference), 1e-4) << "folding batch norm changes float results";
  quant::prepare(*net, quant::QConfigMapping().set_global(quant::get_default_qconfig(qconfig_backend_)));
  for (int i = 0; i < 4; ++i) net->forward(at::randn({16, 3, 6, 6}));
  net->forward(data);
  quant::convert(*net);
  const auto y = net->forward(data);
  EXPECT_LT(max_abs(y - reference), 0.1 * max_abs(reference) + 0.05) << max_abs(y - reference);
  // Any batch size, one after another (PyTorch 1.13's onednn path has failed here).
  for (int64_t b : {16, 1, 3, 32}) EXPECT_EQ(net->forward(at::randn({b, 3, 6, 6})).size(0), b);
}

TEST_F(EagerWorkflow, QConfigsByTypeAndByNameInNestedModules) {
  Net net;
  net->eval();
  auto mapping = quant::QConfigMapping()
                     .set_global(quant::minmax_qconfig(qconfig_backend_))
                     .set_object_type("Linear", quant::minmax_qconfig("qnnpack"))  // per-tensor weights
                     .set_module_name_none("block.conv2");
  const auto summary = quant::prepare(*net, mapping);
  EXPECT_EQ(net->block->conv2->mode(), QuantMode::Float);
  EXPECT_EQ(net->block->conv1->mode(), QuantMode::Observed);
  EXPECT_EQ(net->head->mode(), QuantMode::Observed);
  for (int i = 0; i < 2; ++i) net->forward(at::randn({4, 3, 6, 6}));
  // block.conv2 stays float but sits between int8 modules: convert is fine, running is not,
  // so check the qconfigs through the weights' quantization schemes instead.
  quant::convert(*net);
  EXPECT_EQ(net->head->quantized_weight().qscheme(), c10::kPerTensorAffine);
  EXPECT_EQ(net->block->conv1->quantized_weight().qscheme(), c10::kPerChannelAffine);
  EXPECT_EQ(net->block->conv2->mode(), QuantMode::Float);
}

TEST_F(EagerWorkflow, DynamicQuantizationKeepsFloatActivations) {
  torch::nn::Sequential model(nn::Linear(20, 40), nn::ReLU(), nn::Linear(40, 3));
  model->eval();
  const auto x = at::randn({8, 20});
  const auto reference = model->forward(x);
  const auto summary = quant::quantize_dynamic(*model);
  EXPECT_EQ(summary.changed.size(), 2u);
  const auto y = model->forward(x);
  EXPECT_EQ(y.scalar_type(), at::kFloat);
  EXPECT_LT(max_abs(y - reference), 0.05 * max_abs(reference));
}

TEST_F(EagerWorkflow, QatTrainsThenConvertsCloseToTheFakeQuantizedModel) {
  torch::nn::Sequential model(nn::QuantStub(), nn::Linear(10, 16), nn::ReLU(), nn::Linear(16, 2), nn::DeQuantStub());
  model->train();
  // Full-range QAT: with reduce_range the fake-quantized model clamps activations at 127 but the
  // int8 kernels at 255 (as in PyTorch), so the two part wherever the moving-average ranges lag the
  // trained weights. On an int8 path that saturates full-range activations (x86 without VNNI) the
  // full range runs on qnnpack (int32 sums).
  const bool saturates = kernels::int8::int8_isa(engine_).saturates;
  const std::string backend = saturates ? "qnnpack" : engine_;
  kernels::int8::set_engine(backend);
  quant::prepare_qat(*model, quant::QConfigMapping().set_global(quant::get_default_qat_qconfig(backend)));
  const auto x = at::randn({128, 10});
  const auto target = x.narrow(1, 0, 2) * 0.5;
  std::vector<at::Tensor> params;
  for (auto& p : model->parameters()) params.push_back(p);
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    auto loss = (model->forward(x) - target).pow(2).mean();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
    loss.backward();
    at::NoGradGuard no_grad;
    for (auto& p : params) {
      if (p.grad().defined()) {
        p.sub_(p.grad() * 0.1);
        p.mutable_grad().zero_();
      }
    }
  }
  EXPECT_LT(last, first);
  model->eval();
  fake_quant::disable_observer(*model);  // freeze qparams, as before exporting
  const auto fake_quantized = model->forward(x).detach();
  quant::convert(*model);
  const auto y = model->forward(x);
  EXPECT_LT(max_abs(y - fake_quantized), 0.05 * max_abs(fake_quantized) + 1e-3);
}

TEST_F(EagerWorkflow, ConvertedModelSavesAndLoads) {
  const std::vector<std::vector<std::string>> groups = {{"block.conv1", "block.bn1", "block.relu1"},
                                                        {"block.conv2", "block.bn2"}};
  Net net;
  net->eval();
  quant::fuse_modules(*net, groups);
  quant::prepare(*net, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
  net->forward(at::randn({8, 3, 6, 6}));
  quant::convert(*net);
  const auto x = at::randn({5, 3, 6, 6});
  const auto y = net->forward(x);
  const std::string path = std::string(TQ_TEST_OUTPUT_DIR) + "/net_int8.pt";
  serialize::save_state_dict_file(*net, path);
  Net loaded;
  loaded->eval();
  quant::fuse_modules(*loaded, groups);
  quant::load_quantized_state_dict(*loaded, path);
  EXPECT_TRUE(at::equal(loaded->forward(x), y));
  EXPECT_LT(quant::model_size_bytes(*net), 4000);  // int8 weights, float biases and qparams

  // A damaged or mismatched file names the problem.
  Net other;
  std::ofstream(std::string(TQ_TEST_OUTPUT_DIR) + "/bad.pt") << "garbage";
  tq::testing::expect_error([&] { quant::load_quantized_state_dict(*other, std::string(TQ_TEST_OUTPUT_DIR) + "/bad.pt"); }, "bad.pt' is not a torch.save file (no zip archive)");
}

TEST_F(EagerWorkflow, BadUseGivesClearErrors) {
  {
    Net net;
    expect_error([&] { quant::convert(*net); }, "no module was prepared");
  }
  {
    Net net;
    quant::prepare(*net, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
    expect_error([&] { quant::convert(*net); },
                 "[convert] 'quant' was prepared but never calibrated: its activation_post_process saw no data "
                 "(nothing was converted");
    // Calibrated in part: convert names the first module without data and converts none.
    net->stem(net->quant(at::randn({2, 3, 6, 6})));
    expect_error([&] { quant::convert(*net); }, "[convert] 'block.conv1' was prepared but never calibrated");
    EXPECT_EQ(net->quant->mode(), QuantMode::Observed);
    EXPECT_EQ(net->stem->mode(), QuantMode::Observed);
    net->forward(at::randn({2, 3, 6, 6}));
    quant::convert(*net);
    EXPECT_EQ(net->head->mode(), QuantMode::Quantized);
  }
  {
    // prepare fails at 'stem' after preparing 'quant': 'quant' goes back to float, and a retry works.
    Net net;
    expect_error([&] { quant::prepare(*net, quant::QConfigMapping().set_global(quant::default_dynamic_qconfig())); },
                 "[prepare] module 'stem': [Conv2d] qconfig '");
    EXPECT_EQ(net->quant->mode(), QuantMode::Float);
    EXPECT_TRUE(quant::get_observer_dict(*net).empty());
    const auto summary = quant::prepare(*net, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
    EXPECT_EQ(summary.changed.front(), "quant");
  }
  {
    Net net;
    const auto summary = quant::prepare(*net, quant::QConfigMapping());  // warns, changes nothing
    EXPECT_TRUE(summary.changed.empty());
  }
  {
    torch::nn::Sequential model(nn::QuantStub(), torch::nn::Linear(4, 4), nn::DeQuantStub());
    const auto summary = quant::prepare(*model, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
    ASSERT_EQ(summary.left_float.size(), 1u) << summary.to_string();
    EXPECT_NE(summary.left_float[0].find("Linear"), std::string::npos);
  }
  {
    // Recognised by type: a PReLU is no ReLU and an unfused BatchNorm1d has no int8 form; a
    // plain ReLU and a max pool run on int8 tensors as they are.
    torch::nn::Sequential model(nn::QuantStub(), nn::Linear(4, 4), torch::nn::PReLU(), nn::BatchNorm1d(4),
                                torch::nn::ReLU(), torch::nn::MaxPool1d(1), nn::DeQuantStub());
    const auto summary = quant::prepare(*model, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
    ASSERT_EQ(summary.left_float.size(), 2u) << summary.to_string();
    EXPECT_EQ(summary.left_float[0].rfind("2 (", 0), 0u) << summary.left_float[0];
    EXPECT_NE(summary.left_float[0].find("PReLU"), std::string::npos) << summary.left_float[0];
    EXPECT_EQ(summary.left_float[1], "3 (BatchNorm1d)");
  }
  expect_error([] { kernels::int8::set_engine("tpu"); }, "not available in this LibTorch; available:");
  expect_error([] { quant::get_default_qconfig("arm"); }, "unknown backend 'arm'");
  expect_error([] { quant::fuse_modules(*Net(), {{"stem", "nope"}}); }, "no module named 'nope'");
}

TEST_F(EagerWorkflow, ActivationsAndConcatenationRunInInt8) {
  struct M : torch::nn::Module {
    M() {
      quant = register_module("quant", nn::QuantStub());
      fc = register_module("fc", nn::Linear(12, 12));
      hs = register_module("hs", nn::Hardswish());
      elu = register_module("elu", nn::ELU(0.5));
      leaky = register_module("leaky", nn::LeakyReLU(0.1));
      relu6 = register_module("relu6", nn::ReLU6());
      sigmoid = register_module("sigmoid", nn::Sigmoid());
      cat = register_module("cat", nn::FloatFunctional());
      dequant = register_module("dequant", nn::DeQuantStub());
    }
    at::Tensor forward(const at::Tensor& x) {
      auto y = fc(quant(x));
      auto parts = std::vector<at::Tensor>{hs(y), elu(y), leaky(y), relu6(y), sigmoid(y)};
      return dequant(cat->cat(parts, 1));
    }
    nn::QuantStub quant{nullptr};
    nn::Linear fc{nullptr};
    nn::Hardswish hs{nullptr};
    nn::ELU elu{nullptr};
    nn::LeakyReLU leaky{nullptr};
    nn::ReLU6 relu6{nullptr};
    nn::Sigmoid sigmoid{nullptr};
    nn::FloatFunctional cat{nullptr};
    nn::DeQuantStub dequant{nullptr};
  } m;
  m.eval();
  const auto x = at::randn({32, 12}) * 2;
  const auto reference = m.forward(x);
  quant::prepare(m, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
  m.forward(x);
  quant::convert(m);
  const auto y = m.forward(x);
  EXPECT_EQ(y.sizes(), reference.sizes());
  EXPECT_LT(max_abs(y - reference), 0.1) << max_abs(y - reference);
  std::ostringstream s;
  s << *m.sigmoid;
  EXPECT_NE(s.str().find("scale=0.00390625, zero_point=0"), std::string::npos) << s.str();  // fixed 1/256
}

TEST_F(EagerWorkflow, QatConvBnTrainsTheBatchNormThenFoldsIt) {
  struct M : torch::nn::Module {
    M() {
      quant = register_module("quant", nn::QuantStub());
      conv = register_module("conv", nn::Conv2d(torch::nn::Conv2dOptions(2, 4, 3).padding(1).bias(false)));
      bn = register_module("bn", nn::BatchNorm2d(4));
      relu = register_module("relu", nn::ReLU());
      dequant = register_module("dequant", nn::DeQuantStub());
    }
    at::Tensor forward(const at::Tensor& x) { return dequant(relu(bn(conv(quant(x))))); }
    nn::QuantStub quant{nullptr};
    nn::Conv2d conv{nullptr};
    nn::BatchNorm2d bn{nullptr};
    nn::ReLU relu{nullptr};
    nn::DeQuantStub dequant{nullptr};
  } m;
  m.train();
  quant::fuse_modules(m, {{"conv", "bn", "relu"}}, /*is_qat=*/true);
  EXPECT_TRUE(m.conv->has_attached_batch_norm());
  quant::prepare_qat(m, quant::QConfigMapping().set_global(quant::get_default_qat_qconfig(qconfig_backend_)));
  const auto x = at::randn({16, 2, 6, 6}) * 2 + 1;
  for (int i = 0; i < 5; ++i) m.forward(x);
  EXPECT_EQ(m.bn->num_batches_tracked.item<int64_t>(), 5);  // as PyTorch's ConvBn2d counts
  EXPECT_GT(m.bn->running_mean.abs().sum().item<double>(), 0.0) << "the batch norm's statistics must train";
  quant::freeze_bn_stats(m);
  const auto mean_before = m.bn->running_mean.clone();
  m.forward(x);
  EXPECT_TRUE(at::equal(m.bn->running_mean, mean_before)) << "frozen statistics must not move";
  EXPECT_EQ(m.bn->num_batches_tracked.item<int64_t>(), 5) << "frozen statistics count no batch";
  m.eval();
  fake_quant::disable_observer(m);
  const auto fake_quantized = m.forward(x).detach();
  quant::convert(m);
  const auto y = m.forward(x);
  EXPECT_LT(max_abs(y - fake_quantized), 0.05 * max_abs(fake_quantized) + 0.02) << max_abs(y - fake_quantized);
}

TEST_F(EagerWorkflow, Conv1dConv3dAndStandaloneBatchNormRunInInt8) {
  struct M : torch::nn::Module {
    M() {
      quant = register_module("quant", nn::QuantStub());
      c1 = register_module("c1", nn::Conv1d(torch::nn::Conv1dOptions(3, 6, 3).padding(1)));
      c3 = register_module("c3", nn::Conv3d(torch::nn::Conv3dOptions(2, 4, 3).padding(1)));
      c2 = register_module("c2", nn::Conv2d(torch::nn::Conv2dOptions(3, 5, 3)));
      bn = register_module("bn", nn::BatchNorm2d(5));
      dequant = register_module("dequant", nn::DeQuantStub());
    }
    std::vector<at::Tensor> forward(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
      return {dequant(c1(quant(a))), dequant(c3(quant(b))), dequant(bn(c2(quant(c))))};
    }
    nn::QuantStub quant{nullptr};
    nn::Conv1d c1{nullptr};
    nn::Conv3d c3{nullptr};
    nn::Conv2d c2{nullptr};
    nn::BatchNorm2d bn{nullptr};
    nn::DeQuantStub dequant{nullptr};
  } m;
  randomize_batch_norms(m);
  m.eval();
  const auto a = at::randn({4, 3, 10}), b = at::randn({2, 2, 4, 5, 5}), c = at::randn({3, 3, 7, 7});
  const auto reference = m.forward(a, b, c);
  quant::prepare(m, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
  m.forward(a, b, c);
  quant::convert(m);
  const auto y = m.forward(a, b, c);
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_EQ(y[i].sizes(), reference[i].sizes());
    EXPECT_LT(max_abs(y[i] - reference[i]), 0.06 * max_abs(reference[i])) << i << ": " << max_abs(y[i] - reference[i]);
  }
  EXPECT_EQ(m.bn->mode(), QuantMode::Quantized);
}

TEST_F(EagerWorkflow, EmbeddingsQuantizeTo8And4Bits) {
  // Every bag mode: LibTorch's quantized embedding_bag operators sum whatever mode they are given,
  // so a mean or max bag must not reach them as it is.
  for (auto mode : {nn::EmbeddingBagMode::Sum, nn::EmbeddingBagMode::Mean, nn::EmbeddingBagMode::Max}) {
    for (bool four_bit : {false, true}) {
      nn::Embedding emb(50, 16);
      nn::EmbeddingBag bag(50, 16, mode);
      torch::nn::Module parent;
      parent.register_module("emb", emb);
      parent.register_module("bag", bag);
      const auto idx = at::randint(0, 50, {7}, at::kLong);
      const auto bags = at::randint(0, 50, {3, 4}, at::kLong);
      const auto ref = emb->forward(idx);
      const auto ref_bag = bag->forward(bags);
      quant::prepare(parent, quant::QConfigMapping().set_global(four_bit ? quant::float_qparams_weight_only_qconfig_4bit()
                                                                         : quant::float_qparams_weight_only_qconfig()));
      quant::convert(parent);
      EXPECT_TRUE(emb->four_bit() == four_bit);
      // Per-row range over 255 (or 15) steps: half a step of error at most per value, four per bag.
      const double row_step = 2 * max_abs(emb->weight()) / (four_bit ? 15 : 255);
      EXPECT_LE(max_abs(emb->forward(idx) - ref), row_step) << four_bit;
      EXPECT_LE(max_abs(bag->forward(bags) - ref_bag), 4 * row_step) << four_bit << " mode " << static_cast<int>(mode);
    }
  }
  nn::Embedding emb(10, 4);
  tq::testing::expect_error([&] { emb->prepare(quant::minmax_qconfig(qconfig_backend_)); }, "[Embedding] embeddings need per-row float qparams (float_qparams_weight_only_qconfig)");  // needs float qparams
}

TEST_F(EagerWorkflow, RecurrentCellsQuantizeDynamically) {
  nn::LSTMCell lstm(5, 7);
  nn::GRUCell gru(5, 7);
  nn::RNNCell rnn(5, 7);
  torch::nn::Module parent;
  parent.register_module("lstm", lstm);
  parent.register_module("gru", gru);
  parent.register_module("rnn", rnn);
  const auto x = at::randn({3, 5}), h = at::randn({3, 7}), c = at::randn({3, 7});
  const auto ref_lstm = std::get<0>(lstm->forward(x, h, c));
  const auto ref_gru = gru->forward(x, h), ref_rnn = rnn->forward(x, h);
  EXPECT_EQ(quant::quantize_dynamic(parent).changed.size(), 3u);
  EXPECT_LT(max_abs(std::get<0>(lstm->forward(x, h, c)) - ref_lstm), 0.03);
  EXPECT_LT(max_abs(gru->forward(x, h) - ref_gru), 0.03);
  EXPECT_LT(max_abs(rnn->forward(x, h) - ref_rnn), 0.03);
}

TEST_F(EagerWorkflow, QuantizeDynamicThatFailsLeavesTheModelAsItWas) {
  // A per-channel qconfig converts the Linear but not the LSTM cell after it (recurrent weights
  // are per tensor): the Linear must keep its float weight and mode, and a retry must work.
  nn::Linear linear(5, 5);
  nn::LSTMCell lstm(5, 7);
  torch::nn::Module parent;
  parent.register_module("fc", linear);
  parent.register_module("lstm", lstm);
  const auto x = at::randn({3, 5}), h = at::randn({3, 7}), c = at::randn({3, 7});
  const auto weight_before = linear->weight().clone();
  const auto ref = std::get<0>(lstm->forward(linear->forward(x), h, c));
  expect_error([&] { quant::quantize_dynamic(parent, quant::QConfigMapping().set_global(quant::per_channel_dynamic_qconfig())); },
               "[quantize_dynamic] module 'lstm': [LSTMCell] recurrent weights are quantized per tensor");
  EXPECT_EQ(linear->mode(), nn::QuantMode::Float);
  EXPECT_EQ(lstm->mode(), nn::QuantMode::Float);
  EXPECT_TRUE(linear->weight().equal(weight_before));
  EXPECT_TRUE(std::get<0>(lstm->forward(linear->forward(x), h, c)).equal(ref));
  EXPECT_EQ(quant::quantize_dynamic(parent).changed.size(), 2u);
  EXPECT_EQ(linear->mode(), nn::QuantMode::DynamicQuantized);
  EXPECT_LT(max_abs(std::get<0>(lstm->forward(linear->forward(x), h, c)) - ref), 0.05);
}

TEST_F(EagerWorkflow, Float16DynamicLinearNeedsFbgemmOrSaysSo) {
  torch::nn::Sequential model(nn::Linear(8, 4));
  const auto engines = kernels::int8::available_engines();
  const bool has_fbgemm = std::find(engines.begin(), engines.end(), "fbgemm") != engines.end() ||
                          std::find(engines.begin(), engines.end(), "x86") != engines.end();
  const auto x = at::randn({2, 8});
  const auto reference = model->forward(x);
  if (!has_fbgemm) {
    try {
      quant::quantize_dynamic(*model, quant::QConfigMapping().set_global(quant::float16_dynamic_qconfig()));
      FAIL() << "expected an error";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("needs the fbgemm or x86 engine"), std::string::npos) << e.what();
    }
    return;
  }
  quant::quantize_dynamic(*model, quant::QConfigMapping().set_global(quant::float16_dynamic_qconfig()));
  EXPECT_LT(max_abs(model->forward(x) - reference), 1e-2);
}

TEST_F(EagerWorkflow, PreparedAndQatModelsSaveAndLoad) {
  for (bool qat : {false, true}) {
    auto build = [&] {
      auto m = torch::nn::Sequential(nn::QuantStub(), nn::Linear(6, 6), nn::DeQuantStub());
      return m;
    };
    auto a = build();
    auto mapping = quant::QConfigMapping().set_global(qat ? quant::get_default_qat_qconfig(qconfig_backend_)
                                                          : quant::get_default_qconfig(qconfig_backend_));
    qat ? quant::prepare_qat(*a, mapping) : quant::prepare(*a, mapping);
    a->forward(at::randn({4, 6}));
    const std::string path = std::string(TQ_TEST_OUTPUT_DIR) + (qat ? "/qat.pt" : "/prepared.pt");
    serialize::save_state_dict_file(*a, path);
    auto b = build();
    qat ? quant::prepare_qat(*b, mapping) : quant::prepare(*b, mapping);
    serialize::load_state_dict_file(*b, path);
    a->eval();
    b->eval();
    const auto x = at::randn({3, 6});
    EXPECT_TRUE(at::equal(a->forward(x), b->forward(x))) << (qat ? "qat" : "prepared");
    quant::convert(*a);
    quant::convert(*b);
    EXPECT_TRUE(at::equal(a->forward(x), b->forward(x))) << (qat ? "qat" : "prepared") << " after convert";
  }
}

TEST_F(EagerWorkflow, ReferenceConvertSimulatesTheInt8Model) {
  auto build = [] { return torch::nn::Sequential(nn::QuantStub(), nn::Linear(10, 12), nn::ReLU(), nn::Linear(12, 3), nn::DeQuantStub()); };
  auto int8 = build(), reference = build();
  serialize::load_state_dict(*reference, serialize::state_dict(*int8));
  const auto data = at::randn({32, 10});
  for (auto m : std::vector<torch::nn::Sequential>{int8, reference}) {
    m->eval();
    quant::prepare(*m, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
    m->forward(data);
  }
  quant::convert(*int8);
  const auto summary = quant::convert(*reference, /*is_reference=*/true);
  EXPECT_EQ(reference[1]->as<nn::LinearImpl>()->mode(), QuantMode::Reference);
  const auto y_ref = reference->forward(data);
  EXPECT_EQ(y_ref.scalar_type(), at::kFloat);
  const double step = reference[3]->as<nn::LinearImpl>()->output_scale();
  // Same qparams; int8 kernels accumulate in int32 and requantize, the reference in float: at most
  // a step apart.
  EXPECT_LE(max_abs(int8->forward(data) - y_ref), 1.01 * step) << step;
}

TEST_F(EagerWorkflow, CopyingVariantsLeaveTheFloatModelUntouched) {
  auto make = [] { return std::make_shared<NetImpl>(); };
  auto original = make();
  original->eval();
  const auto x = at::randn({2, 3, 6, 6});
  const auto before = original->forward(x);
  auto prepared = std::dynamic_pointer_cast<NetImpl>(
      quant::prepare_copy(*original, make, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_))));
  ASSERT_TRUE(prepared);
  EXPECT_EQ(original->head->mode(), QuantMode::Float);
  EXPECT_EQ(prepared->head->mode(), QuantMode::Observed);
  EXPECT_TRUE(at::equal(prepared->forward(x), before));  // same float weights
  quant::convert(*prepared);
  EXPECT_TRUE(at::equal(original->forward(x), before));
  auto wrapped = nn::QuantWrapper(nn::Linear(4, 2));
  quant::prepare(*wrapped, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_)));
  wrapped->forward(at::randn({3, 4}));
  quant::convert(*wrapped);
  EXPECT_EQ(wrapped->forward(at::randn({3, 4})).scalar_type(), at::kFloat);
  tq::testing::expect_error([&] { quant::prepare_copy(*original, [] { return std::make_shared<torch::nn::Module>(); },
                                   quant::QConfigMapping()); }, "[prepare_copy] the factory's model does not match the given one: [load_state_dict] unexpected key(s) in state_dict: block.bn1.bias");
}

TEST_F(EagerWorkflow, AddQuantDequantAllowListAndRemoveQconfig) {
  // No stubs: add_quant_dequant makes each Linear an int8 island with float input and output.
  torch::nn::Sequential model(nn::Linear(8, 16), nn::ReLU(), nn::Linear(16, 4));
  model->eval();
  const auto x = at::randn({10, 8});
  const auto reference = model->forward(x);
  const auto mapping = quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_));
  EXPECT_EQ(quant::add_quant_dequant(*model, mapping).changed.size(), 2u);
  quant::prepare(*model, mapping);
  model->forward(x);
  quant::convert(*model);
  quant::remove_qconfig(*model);
  const auto y = model->forward(x);
  EXPECT_EQ(y.scalar_type(), at::kFloat);
  EXPECT_LT(max_abs(y - reference), 0.05 * max_abs(reference) + 0.01);

  // allow_list: only Conv2d modules get observers.
  Net net;
  const auto summary = quant::prepare(*net, mapping, {"Conv2d"});
  EXPECT_EQ(net->head->mode(), QuantMode::Float);
  EXPECT_EQ(net->stem->mode(), QuantMode::Observed);
  const auto qconfigs = quant::propagate_qconfig(*net, quant::QConfigMapping().set_global(quant::minmax_qconfig(qconfig_backend_))
                                                            .set_module_name_none("block"));
  EXPECT_FALSE(qconfigs.at("block.conv1").has_value());
  EXPECT_TRUE(qconfigs.at("head").has_value());
}

TEST_F(EagerWorkflow, LinearBatchNorm1dFusionKeepsFloatResults) {
  torch::nn::Sequential model(nn::Linear(6, 5), nn::BatchNorm1d(5), nn::ReLU());
  {
    at::NoGradGuard no_grad;
    auto* bn = model[1]->as<nn::BatchNorm1dImpl>();
    bn->running_mean.uniform_(-0.3, 0.3);
    bn->running_var.uniform_(0.5, 2.0);
    bn->weight.uniform_(0.5, 1.5);
  }
  model->eval();
  const auto x = at::randn({4, 6});
  const auto reference = model->forward(x);
  quant::fuse_modules(*model, {{"0", "1", "2"}});
  EXPECT_LT(max_abs(model->forward(x) - reference), 1e-5);
  EXPECT_TRUE(model[0]->as<nn::LinearImpl>()->fused_relu());
}

// fuse_modules checks every group before fusing any: fusing twice (which would fold the batch norm
// a second time), batch norms in training mode for post-training fusion, and a bad later group
// are errors that leave the model computing as before.
TEST_F(EagerWorkflow, FuseModulesChecksEverythingBeforeChangingAnything) {
  Net net;
  randomize_batch_norms(*net);
  net->eval();
  const auto x = at::randn({2, 3, 6, 6});
  const auto before = net->forward(x);
  const auto stem_weight = net->stem->weight().clone();
  const auto conv1_weight = net->block->conv1->weight().clone();

  net->train();
  expect_error([&] { quant::fuse_modules(*net, {{"block.conv1", "block.bn1", "block.relu1"}}); },
               "Fusion only for eval! BatchNorm2d 'block.bn1' is in training mode");
  net->eval();
  expect_error([&] { quant::fuse_modules(*net, {{"block.conv1", "block.bn1", "block.relu1"}, {"block.conv2", "nope"}}); },
               "no module named 'nope'");
  expect_error([&] { quant::fuse_modules(*net, {{"block.conv1", "block.bn1"}, {"block.conv2", "block.bn1"}}); },
               "'block.bn1' is named in two groups");
  expect_error([&] { quant::fuse_modules(*net, {{"stem", "block.relu1"}, {"head", "block.bn2"}}); },
               "BatchNorm2d 'block.bn2' can only follow a Conv2d directly");  // after a valid group
  EXPECT_TRUE(at::equal(net->stem->weight(), stem_weight));
  EXPECT_TRUE(at::equal(net->block->conv1->weight(), conv1_weight));
  EXPECT_FALSE(net->stem->fused_relu());
  EXPECT_FALSE(net->block->relu1->folded());
  EXPECT_TRUE(at::equal(net->forward(x), before));

  quant::fuse_modules(*net, {{"block.conv1", "block.bn1", "block.relu1"}, {"block.conv2", "block.bn2"}});
  const auto fused = net->forward(x);
  EXPECT_TRUE(at::allclose(fused, before, 1e-4, 1e-5));
  expect_error([&] { quant::fuse_modules(*net, {{"block.conv2", "block.bn2"}}); },
               "BatchNorm2d 'block.bn2' was fused already (folding it again would scale twice)");
  expect_error([&] { quant::fuse_modules(*net, {{"block.conv1", "block.relu1"}}); }, "'block.conv1' was fused already");
  EXPECT_TRUE(at::equal(net->forward(x), fused));
}

namespace {
// LSQ (LearnableFakeQuantize) on both sides of a QConfig: qint8 symmetric weights, quint8 activations.
nn::QConfig lsq_qconfig() {
  using observers::MovingAverageMinMaxObserver;
  using observers::MovingAverageMinMaxObserverOptions;
  auto weight = [] {
    return std::shared_ptr<fake_quant::FakeQuantizeBase>(std::make_shared<fake_quant::LearnableFakeQuantize>(
        fake_quant::LearnableFakeQuantizeOptions()
            .observer(observers::with_args<MovingAverageMinMaxObserver>(MovingAverageMinMaxObserverOptions()
                                                                            .dtype(QDType::QInt8)
                                                                            .qscheme(QScheme::PerTensorSymmetric)
                                                                            .quant_min(-128)
                                                                            .quant_max(127)))
            .quant_min(-128)
            .quant_max(127)));
  };
  auto activation = [] {
    return std::shared_ptr<fake_quant::FakeQuantizeBase>(std::make_shared<fake_quant::LearnableFakeQuantize>(
        fake_quant::LearnableFakeQuantizeOptions().observer(
            observers::with_args<MovingAverageMinMaxObserver>(MovingAverageMinMaxObserverOptions().quant_min(0).quant_max(255)))));
  };
  return nn::QConfig{fake_quant::FakeQuantizeFactory(activation), fake_quant::FakeQuantizeFactory(weight), "lsq"};
}
}  // namespace

TEST_F(EagerWorkflow, LearnableFakeQuantizeWeightsConvertToInt8) {
  // Every quantizer tells its dtype: LSQ's comes from its observer (qint8 here), so convert takes
  // its weights (it failed with "weights must be qint8" when LSQ answered quint8).
  torch::nn::Sequential model(nn::QuantStub(), nn::Linear(6, 4), nn::DeQuantStub());
  model->train();
  quant::prepare_qat(*model, quant::QConfigMapping().set_global(lsq_qconfig()));
  auto* linear = model[1]->as<nn::LinearImpl>();
  auto fq = std::dynamic_pointer_cast<fake_quant::LearnableFakeQuantize>(quant::get_observer_dict(*model).at("1.weight_fake_quant"));
  ASSERT_NE(fq, nullptr);
  EXPECT_EQ(fq->dtype(), QDType::QInt8);
  EXPECT_EQ(fq->qscheme(), QScheme::PerTensorSymmetric);
  EXPECT_EQ(fq->ch_axis(), -1);
  fq->enable_static_estimate();
  model->forward(at::randn({16, 6}));
  const auto qp = fq->calculate_qparams();
  quant::convert(*model);
  const auto w = linear->quantized_weight();
  EXPECT_EQ(w.scalar_type(), at::kQInt8);
  EXPECT_DOUBLE_EQ(w.q_scale(), qp.scale.item<double>());
  EXPECT_EQ(w.q_zero_point(), 0);
}
