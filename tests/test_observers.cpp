#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "golden.h"
#include "tq/core/collective.h"
#include "tq/observers/default_observers.h"
#include "tq/observers/entropy_observer.h"

using namespace tq::observers;
using tq::QDType;
using tq::QScheme;
using tq::testing::expect_error;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;
using nlohmann::json;

namespace {

template <class Opt>
Opt common_options(const json& cfg) {
  Opt o;
  o.dtype(tq::qdtype_from_string(cfg.at("dtype")));
  o.qscheme(tq::qscheme_from_string(cfg.at("qscheme")));
  if (cfg.contains("reduce_range")) o.reduce_range(cfg.at("reduce_range").get<bool>());
  if (cfg.contains("quant_min")) o.quant_min(cfg.at("quant_min").get<int64_t>());
  if (cfg.contains("quant_max")) o.quant_max(cfg.at("quant_max").get<int64_t>());
  if (cfg.contains("eps")) o.eps(cfg.at("eps").get<double>());
  return o;
}

std::shared_ptr<ObserverBase> make_observer(const json& c) {
  const std::string kind = c.at("observer");
  const json& cfg = c.at("config");
  if (kind == "MinMaxObserver") return std::make_shared<MinMaxObserver>(common_options<MinMaxObserverOptions>(cfg));
  if (kind == "MovingAverageMinMaxObserver") {
    auto o = common_options<MovingAverageMinMaxObserverOptions>(cfg);
    o.averaging_constant(cfg.at("averaging_constant"));
    return std::make_shared<MovingAverageMinMaxObserver>(o);
  }
  if (kind == "PerChannelMinMaxObserver") {
    auto o = common_options<PerChannelMinMaxObserverOptions>(cfg);
    o.ch_axis(cfg.at("ch_axis"));
    return std::make_shared<PerChannelMinMaxObserver>(o);
  }
  auto o = common_options<MovingAveragePerChannelMinMaxObserverOptions>(cfg);
  o.ch_axis(cfg.at("ch_axis")).averaging_constant(cfg.at("averaging_constant"));
  return std::make_shared<MovingAveragePerChannelMinMaxObserver>(o);
}

// PyTorch computes quant_min - round(min_neg / scale).to(torch.int) in int32; for qint32 the
// rounded value can exceed int32 (|min| > range / 2), the cast overflows to INT32_MIN and the zero
// point comes out as 0. tq keeps the true value. Where the golden value is that overflow, expect
// the true one instead (checking first that the overflow is really what happened).
at::Tensor qint32_affine_zero_point(const at::Tensor& golden_zp, const at::Tensor& min_val, const at::Tensor& scale) {
  const float min_neg = std::min(min_val.item<float>(), 0.0f);
  const double r = std::nearbyint(min_neg / scale.item<float>());
  if (r >= INT32_MIN) return golden_zp;
  EXPECT_EQ(golden_zp.item<int64_t>(), 0) << "not the int32 overflow";
  const int64_t zp = std::clamp<int64_t>(INT32_MIN - static_cast<int64_t>(r), INT32_MIN, INT32_MAX);
  return at::full({1}, zp, at::kInt);
}

at::Tensor buffer(const ObserverBase& ob, const std::string& name) { return ob.named_buffers()[name]; }

}  // namespace

// Every observer x dtype x qscheme x shape x range kind of tools/gen_golden.py: min_val,
// max_val, scale and zero_point (value and dtype) after every batch, bit for bit.
TEST(ObserverGolden, EveryCaseMatchesPyTorchExactly) {
  const auto& cases = tq::testing::golden("observers.json").at("cases");
  ASSERT_GE(cases.size(), 600u);
  for (const auto& c : cases) {
    auto ob = make_observer(c);
    const std::string label = c.at("observer").get<std::string>() + " " + c.at("config").dump() + " " +
                              c.at("kind").get<std::string>();
    for (size_t b = 0; b < c.at("batches").size(); ++b) {
      ob->forward(to_tensor(c.at("batches")[b]));
      const auto& want = c.at("after_each_batch")[b];
      ASSERT_TRUE(tensors_equal(buffer(*ob, "min_val"), to_tensor(want.at("min_val")))) << label << " batch " << b;
      ASSERT_TRUE(tensors_equal(buffer(*ob, "max_val"), to_tensor(want.at("max_val")))) << label << " batch " << b;
      const auto qp = ob->calculate_qparams();
      auto want_zp = to_tensor(want.at("zero_point"));
      if (c.at("config").at("dtype") == "qint32" && c.at("config").at("qscheme") == "per_tensor_affine") {
        want_zp = qint32_affine_zero_point(want_zp, to_tensor(want.at("min_val")), qp.scale);
      }
      ASSERT_TRUE(tensors_equal(qp.scale, to_tensor(want.at("scale")))) << label << " batch " << b;
      ASSERT_TRUE(tensors_equal(qp.zero_point, want_zp)) << label << " batch " << b;
      const std::string want_dtype = want.at("zero_point").at("dtype");
      const auto expected_dtype = want_dtype == "int32" ? at::kInt : (want_dtype == "int64" ? at::kLong : at::kFloat);
      ASSERT_EQ(qp.zero_point.scalar_type(), expected_dtype) << label;
    }
  }
}

TEST(MinMaxObserver, HandDerivedRunningRange) {
  MinMaxObserver ob;
  ob.forward(at::tensor({-1.0f, 2.0f}));
  ob.forward(at::tensor({0.5f, 3.0f}));
  EXPECT_EQ(ob.min_val().item<float>(), -1.0f);
  EXPECT_EQ(ob.max_val().item<float>(), 3.0f);
  auto qp = ob.calculate_qparams();
  EXPECT_EQ(qp.scale.item<float>(), 4.0f / 255.0f);
  EXPECT_EQ(qp.zero_point.item<int>(), 64);  // 0 - round(-1 / (4/255)) = round(63.75) = 64
  ob.reset_min_max_vals();
  EXPECT_EQ(ob.calculate_qparams().scale.item<float>(), 1.0f);
}

TEST(MovingAverageMinMaxObserver, HandDerivedAverage) {
  MovingAverageMinMaxObserver ob(MovingAverageMinMaxObserverOptions().averaging_constant(0.5));
  ob.forward(at::tensor({-2.0f, 2.0f}));
  ob.forward(at::tensor({0.0f, 4.0f}));
  EXPECT_EQ(ob.min_val().item<float>(), -1.0f);
  EXPECT_EQ(ob.max_val().item<float>(), 3.0f);
}

TEST(PerChannelMinMaxObserver, NegativeAxisCountsFromTheEnd) {
  PerChannelMinMaxObserver ob(PerChannelMinMaxObserverOptions().ch_axis(-1));
  ob.forward(at::tensor({1.0f, -2.0f, 3.0f, 4.0f, 5.0f, -6.0f}).reshape({2, 3}));
  EXPECT_TRUE(tensors_equal(ob.min_val(), at::tensor({1.0f, -2.0f, -6.0f})));
  EXPECT_TRUE(tensors_equal(ob.max_val(), at::tensor({4.0f, 5.0f, 3.0f})));
}

TEST(Observers, BadInputIsRejectedAndStateIsKept) {
  MinMaxObserver ob;
  ob.forward(at::tensor({0.0f, 1.0f}));
  expect_error([&] { ob.forward(at::tensor({0.0f, NAN})); }, "[MinMaxObserver] input contains NaN");
  expect_error([&] { ob.forward(at::tensor({0.0f, INFINITY})); }, "input contains Inf");
  expect_error([&] { ob.forward(at::empty({0})); }, "input is empty");
  expect_error([&] { ob.forward(at::tensor({1, 2})); }, "floating-point");
  expect_error([&] { ob.forward(at::Tensor()); }, "undefined");
  expect_error([&] { ob.forward(at::tensor({0.0, 1e39}, at::kDouble)); },
               "[MinMaxObserver] float64 input holds 1e+39, beyond float32's range");
  EXPECT_EQ(ob.max_val().item<float>(), 1.0f);  // unchanged by the failed calls

  HistogramObserver h;
  expect_error([&] { h.forward(at::tensor({-3e38f, 3e38f})); },
               "[HistogramObserver] the observed range [-3e+38, 3e+38] is wider than float32 can hold");
  h.forward(at::tensor({-1e38f, 0.0f}));
  expect_error([&] { h.forward(at::tensor({3e38f})); }, "the observed range [-1e+38, 3e+38] is wider");

  // Qparams before any data: PyTorch's defaults, with its warning.
  MinMaxObserver fresh;
  tq::QParams qp;
  const auto warnings = tq::testing::capture_warnings([&] { qp = fresh.calculate_qparams(); });
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("must run observer before calling calculate_qparams"), std::string::npos) << warnings[0];
  EXPECT_EQ(qp.scale.item<float>(), 1.0f);
  EXPECT_EQ(qp.zero_point.item<int64_t>(), 0);

  PerChannelMinMaxObserver pc(PerChannelMinMaxObserverOptions().ch_axis(2));
  expect_error([&] { pc.forward(at::randn({2, 3})); }, "axis 2 is out of range");
  pc.forward(at::randn({2, 3}).unsqueeze(2).expand({2, 3, 4}).contiguous());
  expect_error([&] { pc.forward(at::randn({2, 3, 5})); }, "input has 5 channels along axis 2, but earlier inputs had 4");
}

TEST(Observers, BadArgumentsAreRejectedWithTheirValues) {
  expect_error([] { MinMaxObserver(MinMaxObserverOptions().quant_min(5).quant_max(3)); }, "must include 0");
  expect_error([] { MinMaxObserver(MinMaxObserverOptions().quant_min(-5).quant_max(300)); }, "outside the range of quint8");
  expect_error([] { MinMaxObserver(MinMaxObserverOptions().quant_min(0)); }, "must be given together");
  expect_error([] { MinMaxObserver(MinMaxObserverOptions().qscheme(QScheme::PerChannelAffine)); },
               "qscheme must be per_tensor_affine or per_tensor_symmetric, got per_channel_affine");
  expect_error([] { MinMaxObserver(MinMaxObserverOptions().qscheme(QScheme::PerTensorSymmetric).reduce_range(true)); },
               "cannot reduce range for symmetric");
  expect_error([] { MinMaxObserver(MinMaxObserverOptions().dtype(QDType::Float16)); }, "got float16");
  expect_error([] { PerChannelMinMaxObserver(PerChannelMinMaxObserverOptions().qscheme(QScheme::PerTensorAffine)); },
               "got per_tensor_affine");
  expect_error([] { MovingAverageMinMaxObserver(MovingAverageMinMaxObserverOptions().is_dynamic(true)); },
               "averaging_constant 1");
  expect_error([] { MovingAverageMinMaxObserver(MovingAverageMinMaxObserverOptions().averaging_constant(0)); },
               "averaging_constant must be in (0, 1]");
  expect_error([] { HistogramObserver(HistogramObserverOptions().bins(0)); }, "bins must be positive");
  expect_error([] { FixedQParamsObserver(FixedQParamsObserverOptions(-1.0, 0)); }, "scale must be positive");
}

TEST(Observers, DefaultFactoriesMakeFreshConfiguredInstances) {
  auto f = default_observer();
  auto a = std::dynamic_pointer_cast<MinMaxObserver>(f());
  auto b = std::dynamic_pointer_cast<MinMaxObserver>(f());
  ASSERT_TRUE(a && b);
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(a->quant_max(), 127);
  a->forward(at::ones({2}));
  EXPECT_EQ(b->max_val().item<float>(), -INFINITY);  // independent state

  auto w = std::dynamic_pointer_cast<MinMaxObserver>(weight_observer_range_neg_127_to_127()());
  EXPECT_EQ(w->quant_min(), -127);
  EXPECT_EQ(w->eps().item<float>(), 1.0f / 4096);
  auto pc = std::dynamic_pointer_cast<PerChannelMinMaxObserver>(default_per_channel_weight_observer()());
  EXPECT_EQ(pc->qscheme(), QScheme::PerChannelSymmetric);
  auto fq = std::dynamic_pointer_cast<FixedQParamsObserver>(default_fixed_qparams_range_neg1to1_observer()());
  EXPECT_EQ(fq->calculate_qparams().scale.item<float>(), 2.0f / 256.0f);
  EXPECT_EQ(fq->calculate_qparams().zero_point.item<int>(), 128);
  auto fq01 = std::dynamic_pointer_cast<FixedQParamsObserver>(default_fixed_qparams_range_0to1_observer()());
  EXPECT_EQ(fq01->calculate_qparams().scale.item<float>(), 1.0f / 256.0f);
  auto h = std::dynamic_pointer_cast<HistogramObserver>(default_histogram_observer()());
  EXPECT_EQ(h->quant_max(), 127);
  EXPECT_EQ(h->bins(), 2048);
  auto fl = std::dynamic_pointer_cast<PerChannelMinMaxObserver>(default_float_qparams_observer_4bit()());
  EXPECT_EQ(fl->dtype(), QDType::QUInt4x2);
  EXPECT_EQ(fl->quant_max(), 15);
  auto dyn = default_dynamic_quant_observer()();
  EXPECT_TRUE(dyn->is_dynamic());
  EXPECT_EQ(dyn->dtype(), QDType::QUInt8);
  tq::testing::expect_error([&] { dyn->calculate_qparams(); }, "[PlaceholderObserver] calculate_qparams should not be called for PlaceholderObserver");
}

TEST(Observers, PassThroughObservers) {
  auto x = at::randn({3});
  RecordingObserver rec;
  rec.forward(x);
  rec.forward(x * 2);
  ASSERT_EQ(rec.get_tensor_value().size(), 2u);
  EXPECT_TRUE(tensors_equal(rec.get_tensor_value()[1], x * 2));
  tq::testing::expect_error([&] { rec.calculate_qparams(); }, "[RecordingObserver] calculate_qparams should not be called for RecordingObserver");
  NoopObserver noop;
  EXPECT_EQ(noop.dtype(), QDType::Float16);
  EXPECT_TRUE(tensors_equal(noop.forward(x), x));
  tq::testing::expect_error([&] { noop.calculate_qparams(); }, "[NoopObserver] calculate_qparams should not be called for NoopObserver");
  PlaceholderObserver ph;
  EXPECT_EQ(ph.dtype(), QDType::Float32);
  tq::testing::expect_error([&] { ph.calculate_qparams(); }, "[PlaceholderObserver] calculate_qparams should not be called for PlaceholderObserver");
}

TEST(Observers, PrintsItsStateLikeExtraRepr) {
  MinMaxObserver ob(MinMaxObserverOptions().dtype(QDType::QInt8).qscheme(QScheme::PerTensorSymmetric));
  ob.forward(at::tensor({-0.5f, 1.5f}));
  std::ostringstream s;
  s << ob;
  EXPECT_EQ(s.str(), "MinMaxObserver(min_val=-0.5, max_val=1.5, dtype=qint8, qscheme=per_tensor_symmetric, "
                     "quant_min=-128, quant_max=127)");
}

TEST(Observers, BufferNamesFollowPyTorch) {
  std::vector<std::string> names;
  MinMaxObserver mm;
  for (const auto& b : mm.named_buffers()) names.push_back(b.key());
  EXPECT_EQ(names, (std::vector<std::string>{"eps", "min_val", "max_val"}));
  names.clear();
  HistogramObserver h;
  for (const auto& b : h.named_buffers()) names.push_back(b.key());
  EXPECT_EQ(names, (std::vector<std::string>{"eps", "histogram", "min_val", "max_val"}));
}

// Distributed calibration's merge (Quantizer::merge_across_processes) in one process: a group of
// two ranks whose other rank holds exactly what this one holds, so merging must give what one
// process gives after seeing the data twice.
class MirroredTwoRanks : public tq::Collective {
 public:
  int64_t world_size() const override { return 2; }
  void all_reduce(std::vector<at::Tensor>& tensors, tq::ReduceOp op) override {
    if (op == tq::ReduceOp::Sum) {
      for (auto& t : tensors) t.mul_(2);
    }
  }
  std::vector<at::Tensor> all_gather(const at::Tensor& t) override { return {t.clone(), t.clone()}; }
};

TEST(MergeAcrossProcesses, RanksThatSawTheSameDataGiveOneProcessThatSawItTwice) {
  MirroredTwoRanks group;
  at::manual_seed(3);
  const auto x = at::randn({4, 3, 5});
  MinMaxObserver min_max;
  MovingAverageMinMaxObserver moving;
  PerChannelMinMaxObserver per_channel(PerChannelMinMaxObserverOptions().ch_axis(1));
  MovingAveragePerChannelMinMaxObserver moving_per_channel(MovingAveragePerChannelMinMaxObserverOptions().ch_axis(1));
  HistogramObserver histogram, twice;
  for (tq::Quantizer* q : std::initializer_list<tq::Quantizer*>{&min_max, &moving, &per_channel, &moving_per_channel,
                                                                &histogram, &twice}) {
    q->forward(x);
  }
  twice.forward(x);
  const auto before = std::vector<at::Tensor>{min_max.max_val().clone(), moving.max_val().clone(),
                                              per_channel.max_val().clone(), moving_per_channel.max_val().clone()};
  min_max.merge_across_processes(group, "min_max");
  moving.merge_across_processes(group, "moving");
  per_channel.merge_across_processes(group, "per_channel");
  moving_per_channel.merge_across_processes(group, "moving_per_channel");
  histogram.merge_across_processes(group, "histogram");
  // Min and max, and means of two equal running ranges, are the ranges themselves.
  EXPECT_TRUE(tensors_equal(min_max.max_val(), before[0]));
  EXPECT_TRUE(tensors_equal(moving.max_val(), before[1]));
  EXPECT_TRUE(tensors_equal(per_channel.max_val(), before[2]));
  EXPECT_TRUE(tensors_equal(moving_per_channel.max_val(), before[3]));
  EXPECT_EQ(per_channel.max_val().numel(), 3);
  // The histogram of both ranks: every count doubled, the range unchanged.
  EXPECT_TRUE(tensors_equal(histogram.histogram(), twice.histogram()));
  EXPECT_EQ(histogram.histogram().sum().item<float>(), 2 * x.numel());
  EXPECT_TRUE(tensors_equal(histogram.min_val(), twice.min_val()));
  EXPECT_TRUE(tensors_equal(histogram.max_val(), twice.max_val()));
}

TEST(MergeAcrossProcesses, PerChannelObserversThatSawNothingStayEmpty) {
  MirroredTwoRanks group;
  PerChannelMinMaxObserver per_channel;
  per_channel.merge_across_processes(group, "per_channel");
  EXPECT_EQ(per_channel.min_val().numel(), 0);
  EXPECT_FALSE(per_channel.has_observed());
}

TEST(MergeAcrossProcesses, ObserversWithNothingToMergeDoNothingAndOthersSaySo) {
  MirroredTwoRanks group;
  PlaceholderObserver placeholder;
  EXPECT_NO_THROW(placeholder.merge_across_processes(group, "placeholder"));
  tq::observers::EntropyObserver entropy;
  entropy.forward(at::randn({16}));
  expect_error([&] { entropy.merge_across_processes(group, "features.0.entropy"); },
               "[sync_observers] 'features.0.entropy' is a tq::observers::EntropyObserver, which cannot be synchronized yet");
}
