// EntropyObserver, PercentileObserver, MSEObserver and PerChannelMSEObserver against
// tools/calibration_reference.py (TensorRT's entropy calibration, ONNX Runtime's percentile,
// pytorch-quantization's MSE, as tools/gen_golden_calibration.py runs them).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>

#include "golden.h"
#include "tq/observers/entropy_observer.h"
#include "tq/observers/histogram_observer.h"
#include "tq/observers/mse_observer.h"
#include "tq/observers/per_channel_mse_observer.h"
#include "tq/observers/percentile_observer.h"

using namespace tq::observers;
using tq::testing::expect_error;
using tq::testing::tensors_equal;
using tq::testing::to_tensor;

namespace {

template <class Options>
Options common(Options o, const nlohmann::json& a) {
  o.dtype(tq::qdtype_from_string(a.at("dtype"))).qscheme(tq::qscheme_from_string(a.at("qscheme")));
  o.quant_min(a.at("quant_min").get<int64_t>()).quant_max(a.at("quant_max").get<int64_t>());
  return o;
}

std::shared_ptr<ObserverBase> make(const nlohmann::json& c) {
  const auto& a = c.at("args");
  const std::string kind = c.at("observer");
  if (kind == "entropy") return std::make_shared<EntropyObserver>(common(EntropyObserverOptions(), a).bins(a.at("bins")));
  if (kind == "mse") return std::make_shared<MSEObserver>(common(MSEObserverOptions(), a).bins(a.at("bins")));
  if (kind == "percentile") {
    return std::make_shared<PercentileObserver>(
        common(PercentileObserverOptions(), a).bins(a.at("bins")).percentile(a.at("percentile")));
  }
  return std::make_shared<PerChannelMSEObserver>(
      common(PerChannelMSEObserverOptions(), a).ch_axis(a.at("ch_axis")).candidates(a.at("candidates")));
}

at::Tensor floats(const nlohmann::json& v) {
  return v.is_array() ? at::tensor(v.get<std::vector<double>>(), at::kDouble).to(at::kFloat)
                      : at::scalar_tensor(v.get<double>(), at::kFloat);
}

}  // namespace

TEST(CalibrationObserversGolden, SameHistogramRangeAndQParamsAsTheReference) {
  int cases = 0;
  for (const auto& c : tq::testing::golden("calibration.json").at("cases")) {
    const std::string name = c.at("name");
    auto ob = make(c);
    for (const auto& b : c.at("batches")) ob->forward(to_tensor(b));
    const auto qp = ob->calculate_qparams();
    if (auto* h = dynamic_cast<CalibrationHistogramObserver*>(ob.get())) {
      EXPECT_EQ(h->threshold(), static_cast<float>(c.at("threshold").get<double>())) << name;
      EXPECT_TRUE(tensors_equal(h->min_val(), floats(c.at("min_val")))) << name;
      EXPECT_TRUE(tensors_equal(h->max_val(), floats(c.at("max_val")))) << name;
      // tq's histc is ATen 2.x's; the reference ran 1.13's, which can differ for values on a bin edge.
      const auto want = at::tensor(c.at("histogram").get<std::vector<double>>(), at::kDouble);
      EXPECT_EQ(h->histogram().sum().item<double>(), want.sum().item<double>()) << name;
      EXPECT_LE((h->histogram() - want).abs().sum().item<double>(), 4.0) << name;
      const auto [lo, hi] = h->clipped_range();
      EXPECT_EQ(lo, static_cast<float>(c.at("range")[0].get<double>())) << name;
      EXPECT_EQ(hi, static_cast<float>(c.at("range")[1].get<double>())) << name;
    } else {
      auto* p = dynamic_cast<PerChannelMSEObserver*>(ob.get());
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(tensors_equal(p->min_val(), floats(c.at("min_val")))) << name;
      EXPECT_TRUE(tensors_equal(p->max_val(), floats(c.at("max_val")))) << name;
    }
    EXPECT_TRUE(tensors_equal(qp.scale.flatten(), floats(c.at("scale")).flatten())) << name;
    const auto zp = c.at("zero_point");
    const auto want_zp = zp.is_array() ? at::tensor(zp.get<std::vector<int64_t>>()) : at::tensor({zp.get<int64_t>()});
    EXPECT_TRUE(at::equal(qp.zero_point.flatten().to(at::kLong), want_zp)) << name;
    ++cases;
  }
  EXPECT_GE(cases, 20);
}

// 100,000 normal values and ten outliers at 20 (20 sigma): MinMax keeps them; entropy and the
// 99.9th percentile (cutting 50 values at each end) clip them to a few sigma. MSE keeps most of
// the range: clipping at T costs 10 (20 - T)^2, more than the bulk's rounding error at full range
// (100,000 * (40 / 255)^2 / 12 ~ 205) for any T below ~15.
TEST(CalibrationObservers, EntropyAndPercentileClipOutliersMSEKeepsThem) {
  at::manual_seed(11);
  auto x = at::cat({at::randn({100000}), at::full({10}, 20.0f)});
  EntropyObserver entropy;
  PercentileObserver percentile(PercentileObserverOptions().percentile(99.9));
  MSEObserver mse;
  for (CalibrationHistogramObserver* ob : std::vector<CalibrationHistogramObserver*>{&entropy, &percentile, &mse}) {
    ob->forward(x);
    const auto [lo, hi] = ob->clipped_range();
    EXPECT_LT(lo, -2.0f) << ob->name();
    if (ob == &mse) {
      EXPECT_GT(hi, 15.0f);
    } else {
      EXPECT_LT(hi, 10.0f) << ob->name();
      EXPECT_GT(hi, 2.5f) << ob->name();
    }
  }
}

// Merging pairs of bins when the range doubles loses nothing: after data on [-1, 1) and then on
// [-4, 4), the histogram equals one built directly over [-4, 4]. Values are odd multiples of
// 1/4096 (never on an edge, edges are multiples of 1/1024) and the minimum, which sets T, sits on
// the lowest edge both ways.
TEST(CalibrationObservers, RangeDoublingIsExact) {
  auto small = at::cat({at::full({1}, -1.0f), (at::arange(-2000, 2000, at::kFloat) * 2 + 1) / 4096.0f});
  auto large = small * 4;
  EntropyObserver ob;
  ob.forward(small);
  EXPECT_EQ(ob.threshold(), 1.0f);
  ob.forward(large);
  EXPECT_EQ(ob.threshold(), 4.0f);
  const auto direct = histc(at::cat({small, large}), ob.bins(), -4.0f, 4.0f).to(at::kDouble);
  EXPECT_TRUE(tensors_equal(ob.histogram(), direct));
}

TEST(CalibrationObservers, AllZerosThenData) {
  MSEObserver ob;
  ob.forward(at::zeros({100}));
  EXPECT_EQ(ob.threshold(), 0.0f);
  EXPECT_EQ(ob.histogram()[ob.bins() / 2].item<double>(), 100.0);
  ob.forward(at::linspace(-1, 1, 101));
  EXPECT_EQ(ob.threshold(), 1.0f);
  EXPECT_EQ(ob.histogram().sum().item<double>(), 201.0);
  EXPECT_GE(ob.histogram()[ob.bins() / 2].item<double>(), 100.0);
}

TEST(CalibrationObservers, BadInputAndOptions) {
  EntropyObserver ob;
  expect_error([&] { ob.forward(at::tensor({1.0f, NAN})); }, "input contains NaN");
  expect_error([&] { ob.forward(at::tensor({1.0f, INFINITY})); }, "input contains Inf");
  expect_error([&] { ob.forward(at::empty({0})); }, "input is empty");
  EXPECT_EQ(ob.histogram().sum().item<double>(), 0.0);  // nothing changed
  expect_error([] { EntropyObserver(EntropyObserverOptions().bins(1002)); }, "multiple of 4");
  expect_error([] { PercentileObserver(PercentileObserverOptions().percentile(0)); }, "percentile must be in (0, 100]");
  expect_error([] { PercentileObserver(PercentileObserverOptions().percentile(101)); }, "percentile must be in (0, 100]");
  expect_error([] { MSEObserver(MSEObserverOptions().qscheme(tq::QScheme::PerChannelAffine)); }, "qscheme must be per_tensor");
  expect_error([] { PerChannelMSEObserver(PerChannelMSEObserverOptions().candidates(0)); }, "candidates must be at least 1");
  PerChannelMSEObserver pc;
  pc.forward(at::randn({4, 3}));
  expect_error([&] { pc.forward(at::randn({5, 3})); }, "input has 5 channels");
}

TEST(CalibrationObservers, StateDictRoundTrip) {
  PercentileObserver a(PercentileObserverOptions().percentile(99.0)), b(PercentileObserverOptions().percentile(99.0));
  a.forward(at::randn({500}) * 3);
  a.forward(at::randn({500}) * 7);
  for (const auto& kv : a.named_buffers()) b.named_buffers()[kv.key()].copy_(kv.value());
  const auto qa = a.calculate_qparams(), qb = b.calculate_qparams();
  EXPECT_TRUE(tensors_equal(qa.scale, qb.scale));
  EXPECT_TRUE(at::equal(qa.zero_point, qb.zero_point));
}
