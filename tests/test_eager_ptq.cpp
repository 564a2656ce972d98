// Post-training algorithms on eager tq::nn models (tq/quant/adaround.h, bias_correction.h,
// equalization.h), checked against the same steps written out by hand with tq::ptq's per-layer
// functions: the inputs each layer gets (quantized as the int8 model computes them, earlier layers
// with their learned weights), the learned rounding, the corrected biases; plus what the model
// gains (output SQNR, mean error) and that bad input changes nothing.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <iostream>

#include "golden.h"
#include "tq/kernels/int8.h"
#include "tq/nn/modules.h"
#include "tq/nn/qconfig.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"
#include "tq/quant/adaround.h"
#include "tq/quant/bias_correction.h"
#include "tq/quant/equalization.h"
#include "tq/quant/quantize.h"

namespace {

using tq::testing::expect_error;
namespace obs = tq::observers;

// quant -> conv(1->8) relu -> conv(8->8, stride 2) relu -> flatten -> linear(8*6*6 -> 10) -> dequant
struct SmallNetImpl : torch::nn::Module {
  SmallNetImpl() {
    at::manual_seed(2);
    register_module("quant", quant);
    conv1 = register_module("conv1", tq::nn::Conv2d(torch::nn::Conv2dOptions(1, 8, 3).padding(1)));
    register_module("relu1", relu1);
    conv2 = register_module("conv2", tq::nn::Conv2d(torch::nn::Conv2dOptions(8, 8, 3).stride(2).padding(1)));
    register_module("relu2", relu2);
    fc = register_module("fc", tq::nn::Linear(8 * 6 * 6, 10));
    register_module("dequant", dequant);
    at::NoGradGuard no_grad;
    conv1->set_weight(at::randn({8, 1, 3, 3}) * 0.4);
    conv2->set_weight(at::randn({8, 8, 3, 3}) * 0.15);
    fc->set_weight(at::randn({10, 8 * 6 * 6}) * 0.05);
  }
  at::Tensor forward(const at::Tensor& x) {
    auto h = relu2(conv2(relu1(conv1(quant(x)))));
    return dequant(fc(h.flatten(1)));
  }
  tq::nn::QuantStub quant;
  tq::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  tq::nn::ReLU relu1, relu2;
  tq::nn::Linear fc{nullptr};
  tq::nn::DeQuantStub dequant;
};
TORCH_MODULE(SmallNet);

tq::nn::QConfig weights_with_bits(int bits, bool per_channel) {
  tq::nn::QConfig q;
  q.name = "test";
  q.activation = obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions());
  const int64_t qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
  if (per_channel) {
    q.weight = obs::with_args<obs::PerChannelMinMaxObserver>(obs::PerChannelMinMaxObserverOptions()
                                                                 .dtype(tq::QDType::QInt8)
                                                                 .qscheme(tq::QScheme::PerChannelSymmetric)
                                                                 .quant_min(qmin)
                                                                 .quant_max(qmax));
  } else {
    q.weight = obs::with_args<obs::MinMaxObserver>(
        obs::MinMaxObserverOptions().dtype(tq::QDType::QInt8).qscheme(tq::QScheme::PerTensorSymmetric).quant_min(qmin).quant_max(qmax));
  }
  return q;
}

SmallNet calibrated(const tq::nn::QConfig& q, const std::vector<at::Tensor>& data) {
  SmallNet net;
  net->eval();
  tq::quant::fuse_modules(*net, {{"conv1", "relu1"}, {"conv2", "relu2"}});
  tq::quant::prepare(*net, tq::quant::QConfigMapping().set_global(q));
  for (const auto& b : data) net->forward(b);
  return net;
}

std::pair<double, int64_t> qparams_of(SmallNet& net, const std::string& observer) {
  const auto qp = tq::nn::quantizer_qparams(*tq::quant::get_observer_dict(*net).at(observer));
  return {qp.scale.item<double>(), qp.zero_point.item<int64_t>()};
}

at::Tensor simulate(const at::Tensor& x, std::pair<double, int64_t> qp) {
  return at::fake_quantize_per_tensor_affine(x, qp.first, qp.second, 0, 255);
}

tq::ptq::WeightedLayer conv_layer(const tq::nn::Conv2d& c, std::vector<int64_t> stride) {
  tq::ptq::WeightedLayer l;
  l.kind = tq::ptq::WeightedLayer::Kind::Conv;
  l.weight = c->weight();
  l.bias = c->bias();
  l.stride = std::move(stride);
  l.padding = {1, 1};
  l.dilation = {1, 1};
  l.relu = true;
  return l;
}

double sqnr_db(const at::Tensor& ref, const at::Tensor& x) {
  return 10 * std::log10(ref.pow(2).sum().item<double>() / (ref - x).pow(2).sum().item<double>());
}

class EagerPtq : public ::testing::Test {
 protected:
  void SetUp() override { tq::kernels::int8::set_engine("qnnpack"); }
};

}  // namespace

// conv2's rounding, learned by the driver, equals adaround_layer's on inputs built by hand: the
// stub's quantized input through conv1 with its learned weight, quantized with conv1's output
// qparams; targets from the float conv1 -> conv2.
TEST_F(EagerPtq, AdaRoundLearnsFromTheInputsTheInt8ModelComputes) {
  at::manual_seed(3);
  const auto x = at::randn({128, 1, 12, 12});
  const auto q = weights_with_bits(4, true);
  auto net = calibrated(q, {x});
  const auto stub_qp = qparams_of(net, "quant.activation_post_process");
  const auto conv1_qp = qparams_of(net, "conv1.activation_post_process");
  const auto o = tq::ptq::AdaRoundOptions().iterations(200).num_samples(128).seed(7);
  const auto report = tq::quant::adaround(*net, [&](const at::Tensor& b) { return net->forward(b); }, {x}, o);
  std::cout << report.to_string();
  ASSERT_EQ(report.layers.size(), 3u) << report.to_string();
  EXPECT_TRUE(report.skipped.empty()) << report.to_string();
  EXPECT_EQ(report.layers[0].layer, "conv1");
  EXPECT_EQ(report.layers[1].layer, "conv2");
  EXPECT_EQ(report.layers[2].layer, "fc");
  EXPECT_EQ(report.layers[2].op, "Linear");
  for (const auto& l : report.layers) EXPECT_LT(l.loss_adaround, l.loss_nearest) << l.layer;
  // Observers recorded nothing during the passes.
  EXPECT_EQ(qparams_of(net, "conv1.activation_post_process"), conv1_qp);

  auto factory = [&] { return std::dynamic_pointer_cast<obs::ObserverBase>(q.weight()); };
  const auto l1 = conv_layer(net->conv1, {1, 1}), l2 = conv_layer(net->conv2, {2, 2});
  const auto r1 = tq::ptq::adaround_layer(l1, factory, simulate(x, stub_qp), l1.forward(x), o);
  const auto learned1 = net->conv1->weight_as_converted();
  EXPECT_TRUE(at::equal(learned1.int_repr(), r1.weight_q.int_repr()));
  const auto h_q = simulate(l1.forward(simulate(x, stub_qp), learned1.dequantize()), conv1_qp);
  const auto r2 = tq::ptq::adaround_layer(l2, factory, h_q, l2.forward(l1.forward(x)), o);
  const auto learned2 = net->conv2->weight_as_converted();
  EXPECT_TRUE(at::equal(learned2.int_repr(), r2.weight_q.int_repr()));
  EXPECT_GT(r2.changed, 0);

  tq::quant::convert(*net);
  EXPECT_TRUE(at::equal(net->conv2->quantized_weight().int_repr(), learned2.int_repr()));
}

TEST_F(EagerPtq, AdaRoundFourBitWeightsBeatNearestOnHeldOutData) {
  at::manual_seed(4);
  std::vector<at::Tensor> data;
  for (int i = 0; i < 8; ++i) data.push_back(at::randn({32, 1, 12, 12}));
  const auto held_out = at::randn({256, 1, 12, 12});
  SmallNet reference;
  reference->eval();
  const auto ref = reference->forward(held_out);
  const auto q = weights_with_bits(4, true);
  auto nearest = calibrated(q, data);
  auto learned = calibrated(q, data);
  learned->train();
  tq::quant::adaround(*learned, [&](const at::Tensor& b) { return learned->forward(b); }, data,
                      tq::ptq::AdaRoundOptions().iterations(1500).num_samples(256));
  EXPECT_TRUE(learned->is_training());  // put back as it was
  learned->eval();
  tq::quant::convert(*nearest);
  tq::quant::convert(*learned);
  const double q_nearest = sqnr_db(ref, nearest->forward(held_out));
  const double q_adaround = sqnr_db(ref, learned->forward(held_out));
  std::cout << "output SQNR: nearest " << q_nearest << " dB, AdaRound " << q_adaround << " dB\n";
  EXPECT_GT(q_adaround, q_nearest + 1.0);
}

TEST_F(EagerPtq, AdaRoundBadInputChangesNothing) {
  const auto x = at::randn({16, 1, 12, 12});
  SmallNet net;
  auto forward = [&](const at::Tensor& b) { return net->forward(b); };
  const auto o = tq::ptq::AdaRoundOptions().iterations(5).batch_size(8);  // num_samples 1024
  expect_error([&] { tq::quant::adaround(*net, forward, {x}, o); }, "[adaround] the model has no observers: prepare and calibrate it first");
  tq::quant::prepare(*net, tq::quant::QConfigMapping().set_global(weights_with_bits(4, true)));
  expect_error([&] { tq::quant::adaround(*net, forward, {x}, o); },
               "[adaround] observer 'conv1.activation_post_process' saw no data: calibrate the model first");
  net->forward(x);
  expect_error([&] { tq::quant::adaround(*net, forward, {x}, o); }, "the data holds 16 samples, fewer than the 1024 asked for");
  expect_error([&] { tq::quant::adaround(*net, forward, {x}, tq::ptq::AdaRoundOptions(o).num_samples(16).batch_size(32)); },
               "the data holds 16 samples, fewer than one batch of 32");
  expect_error([&] { tq::quant::adaround(*net, forward, {x.to(at::kLong)}, o); }, "calibration batches must be float tensors");
  expect_error([&] { tq::quant::adaround(*net, forward, {at::randn({16, 3, 12, 12})}, tq::ptq::AdaRoundOptions(o).num_samples(16)); },
               "input must be (N, 1, H, W), got [16, 3, 12, 12]");
  EXPECT_TRUE(net->is_training());
  for (auto* m : {static_cast<tq::nn::WeightedModule*>(net->conv1.get()), static_cast<tq::nn::WeightedModule*>(net->fc.get())}) {
    EXPECT_FALSE(m->has_learned_weight());
  }
  // Asymmetric weights are reported, not rounded.
  SmallNet affine;
  auto q = weights_with_bits(8, false);
  q.weight = obs::with_args<obs::MinMaxObserver>(obs::MinMaxObserverOptions().dtype(tq::QDType::QInt8));
  tq::quant::prepare(*affine, tq::quant::QConfigMapping().set_global(q));
  affine->forward(x);
  const auto r = tq::quant::adaround(*affine, [&](const at::Tensor& b) { return affine->forward(b); }, {x},
                                     tq::ptq::AdaRoundOptions(o).num_samples(16));
  EXPECT_TRUE(r.layers.empty());
  ASSERT_EQ(r.skipped.size(), 3u);
  EXPECT_EQ(r.skipped[0], "conv1: its weights are per_tensor_affine (AdaRound rounds symmetric weights)");
}

// conv1's corrected bias is its bias minus the mean shift bias_correction_shift gives for the
// stub-quantized input; the int8 model's mean output error then shrinks on held-out data.
TEST_F(EagerPtq, BiasCorrectionTakesTheMeanShiftOut) {
  at::manual_seed(5);
  std::vector<at::Tensor> data;
  for (int i = 0; i < 8; ++i) data.push_back(at::randn({64, 1, 12, 12}));
  const auto held_out = at::randn({512, 1, 12, 12});
  SmallNet reference;
  reference->eval();
  const auto ref = reference->forward(held_out);
  const auto q = weights_with_bits(3, false);
  auto plain = calibrated(q, data);
  auto corrected = calibrated(q, data);
  const auto stub_qp = qparams_of(corrected, "quant.activation_post_process");
  const auto l1 = conv_layer(corrected->conv1, {1, 1});
  const auto samples = at::cat(data);
  const auto expected = l1.bias - tq::ptq::bias_correction_shift(l1, corrected->conv1->weight_as_converted().dequantize(),
                                                                  samples, simulate(samples, stub_qp));
  const auto report = tq::quant::correct_bias(*corrected, [&](const at::Tensor& b) { return corrected->forward(b); },
                                              data, tq::ptq::BiasCorrectionOptions().num_samples(512));
  std::cout << report.to_string();
  ASSERT_EQ(report.layers.size(), 3u);
  EXPECT_TRUE(at::allclose(corrected->conv1->bias(), expected, 1e-6, 1e-7));
  EXPECT_FALSE(at::equal(corrected->conv1->bias(), plain->conv1->bias()));
  tq::quant::convert(*plain);
  tq::quant::convert(*corrected);
  auto mean_error = [&](SmallNet& m) { return (m->forward(held_out) - ref).mean(0).abs().mean().item<double>(); };
  const double before = mean_error(plain), after = mean_error(corrected);
  std::cout << "mean |E[int8 - float]| per output: " << before << " -> " << after << "\n";
  EXPECT_LT(after, before / 2);
}

TEST_F(EagerPtq, BiasCorrectionBadInputChangesNothing) {
  const auto x = at::randn({16, 1, 12, 12});
  auto net = calibrated(weights_with_bits(4, true), {x});
  const auto bias = net->conv2->bias().clone();
  auto forward = [&](const at::Tensor& b) { return net->forward(b); };
  expect_error([&] { tq::quant::correct_bias(*net, forward, {x}); }, "the data holds 16 samples, fewer than the 512");
  expect_error([&] { tq::quant::correct_bias(*net, forward, {x}, tq::ptq::BiasCorrectionOptions().num_samples(0)); },
               "num_samples must be at least 1");
  expect_error([&] { tq::quant::correct_bias(*net, forward, {at::randn({16, 3, 12, 12})}, tq::ptq::BiasCorrectionOptions().num_samples(16)); },
               "input must be (N, 1, H, W)");
  EXPECT_TRUE(at::equal(net->conv2->bias(), bias));
}

// conv1 -> relu -> conv2 equalized: the float function is the same, and each of conv1's output
// channels now has the range of conv2's matching input channel.
TEST_F(EagerPtq, EqualizationKeepsTheFunctionAndEqualizesRanges) {
  SmallNet net;
  net->eval();
  {
    at::NoGradGuard no_grad;  // channels of very different ranges
    net->conv1->set_weight(net->conv1->weight() * at::logspace(-2, 1, 8).reshape({8, 1, 1, 1}));
  }
  tq::quant::fuse_modules(*net, {{"conv1", "relu1"}, {"conv2", "relu2"}});
  const auto x = at::randn({8, 1, 12, 12});
  const auto before = net->forward(x);
  const auto report = tq::quant::equalize(*net, {{"conv1", "conv2"}});
  EXPECT_EQ(report.pairs, std::vector<std::string>{"conv1 -> conv2"});
  EXPECT_EQ(report.sweeps, 2);  // the second sweep finds nothing left to move
  EXPECT_TRUE(at::allclose(net->forward(x), before, 1e-4, 1e-5));
  const auto r1 = net->conv1->weight().abs().amax({1, 2, 3});
  const auto r2 = net->conv2->weight().abs().amax({0, 2, 3});
  EXPECT_TRUE(at::allclose(r1, r2, 1e-5, 1e-7)) << r1 << r2;

  const auto w1 = net->conv1->weight().clone(), w2 = net->conv2->weight().clone();
  expect_error([&] { tq::quant::equalize(*net, {{"conv1", "nope"}}); }, "[equalize] no module named 'nope'");
  expect_error([&] { tq::quant::equalize(*net, {{"conv1", "relu1"}}); }, "'relu1' is a ReLU, not a Linear or Conv module");
  expect_error([&] { tq::quant::equalize(*net, {{"conv1"}}); }, "a chain names at least two layers, got 1");
  expect_error([&] { tq::quant::equalize(*net, {{"conv1", "conv2"}, {"conv1", "fc"}}); },
               "'conv1' feeds two equalized layers");
  expect_error([&] { tq::quant::equalize(*net, {{"conv1", "conv2", "fc"}}); }, "conv2 gives 8 channels but fc takes 288");
  EXPECT_TRUE(at::equal(net->conv1->weight(), w1));
  EXPECT_TRUE(at::equal(net->conv2->weight(), w2));
  tq::quant::prepare(*net, tq::quant::QConfigMapping().set_global(weights_with_bits(8, false)));
  expect_error([&] { tq::quant::equalize(*net, {{"conv1", "conv2"}}); }, "'conv1' is observed: equalize the float model, before prepare");
}
