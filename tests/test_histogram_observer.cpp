#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "tq/observers/histogram_observer.h"

using namespace tq::observers;
using tq::testing::float_tensor;
using tq::testing::tensors_close;
using tq::testing::tensors_equal;

namespace {
HistogramObserverOptions options_of(const nlohmann::json& cfg) {
  HistogramObserverOptions o;
  o.bins(cfg.at("bins")).dtype(tq::qdtype_from_string(cfg.at("dtype")));
  o.qscheme(tq::qscheme_from_string(cfg.at("qscheme")));
  if (cfg.contains("reduce_range")) o.reduce_range(cfg.at("reduce_range").get<bool>());
  if (cfg.contains("quant_min")) o.quant_min(cfg.at("quant_min").get<int64_t>()).quant_max(cfg.at("quant_max").get<int64_t>());
  return o;
}
}  // namespace

// The 40 cases PyTorch 2.11 wrote (tools/gen_histogram_reference.py): min/max, the histogram and
// the qparams after every batch, all compared exactly (the re-binning grid follows ATen's
// vectorized linspace, see histogram_observer.cpp).
TEST(HistogramObserverGolden, PyTorch2ReferenceCases) {
  const auto& ref = tq::testing::golden("histogram_observer_reference.json");
  int cases = 0;
  for (const auto& c : ref.at("cases")) {
    HistogramObserver ob(options_of(c.at("config")));
    const std::string label = c.at("config").dump() + " " + c.at("kind").get<std::string>();
    for (size_t b = 0; b < c.at("batches").size(); ++b) {
      const auto& batch = c.at("batches")[b];
      ob.forward(float_tensor(batch.at("data"), batch.at("shape").get<std::vector<int64_t>>()));
      const auto& want = c.at("after_each_batch")[b];
      EXPECT_EQ(ob.min_val().item<float>(), static_cast<float>(want.at("min_val").get<double>())) << label << " " << b;
      EXPECT_EQ(ob.max_val().item<float>(), static_cast<float>(want.at("max_val").get<double>())) << label << " " << b;
      const auto hist = float_tensor(want.at("histogram"), {static_cast<int64_t>(want.at("histogram").size())});
      EXPECT_TRUE(tensors_equal(ob.histogram(), hist)) << label << " batch " << b;
      const auto qp = ob.calculate_qparams();
      EXPECT_TRUE(tensors_equal(qp.scale, float_tensor(want.at("scale"), {1}))) << label << " batch " << b;
      EXPECT_EQ(qp.zero_point.item<int64_t>(), want.at("zero_point")[0].get<int64_t>()) << label << " batch " << b;
    }
    ++cases;
  }
  EXPECT_EQ(cases, 40);
}

// ATen 1.13's histc is an older implementation than the 2.x one tq follows; away from bin edges
// both agree. Values k/1000 + 1/2000 keep every element off the edges of these ranges.
TEST(HistogramObserver, HistcMatchesATenAwayFromBinEdges) {
  at::manual_seed(3);
  auto x = (at::randint(-9000, 9000, {5000}).to(at::kFloat) + 0.5f) / 1000.0f;
  for (auto [lo, hi] : {std::pair<float, float>{-2.0f, 2.0f}, {-10.f, 10.f}, {0.5f, 0.5f}}) {
    EXPECT_TRUE(tensors_equal(histc(x, 100, lo, hi), at::histc(x, 100, lo, hi)));
  }
}

TEST(HistogramObserver, MemoryDoesNotGrowWithOutliersOrBatches) {
  HistogramObserver ob(HistogramObserverOptions().bins(256));
  for (int i = 0; i < 20; ++i) ob.forward(at::randn({1000}) * (i % 2 ? 1e-3f : 1e6f));
  EXPECT_EQ(ob.histogram().numel(), 256);
  EXPECT_NEAR(ob.histogram().sum().item<double>(), 20000.0, 1e-2);  // no observed value is dropped
}

TEST(HistogramObserver, InfinitiesAreIgnoredNaNIsAnError) {
  HistogramObserver ob(HistogramObserverOptions().bins(64));
  ob.forward(at::tensor({-1.0f, INFINITY, 3.0f, -INFINITY}));
  EXPECT_EQ(ob.min_val().item<float>(), -1.0f);
  EXPECT_EQ(ob.max_val().item<float>(), 3.0f);
  EXPECT_EQ(ob.histogram().sum().item<float>(), 2.0f);
  tq::testing::expect_error([&] { ob.forward(at::tensor({NAN})); }, "[HistogramObserver] input contains NaN");
  EXPECT_EQ(ob.histogram().sum().item<float>(), 2.0f);
}

TEST(HistogramObserver, UnobservedGivesDefaultsAndResetForgets) {
  HistogramObserver ob;
  EXPECT_EQ(ob.calculate_qparams().scale.item<float>(), 1.0f);
  ob.forward(at::randn({100}));
  ob.reset_min_max_vals();
  EXPECT_EQ(ob.histogram().sum().item<float>(), 0.0f);
  EXPECT_EQ(ob.calculate_qparams().scale.item<float>(), 1.0f);
}

TEST(HistogramObserver, MergeRebinsBothOntoTheUnionOfTheRanges) {
  // Hand-derived with 2 bins: {0, 4} gives [1, 1] over [0, 4]; {8} gives one value at 8. On [0, 8]
  // all 32 sixteenth-parts of the first histogram have midpoints below 4 (bin 0), and 8 is the
  // right edge (bin 1): [2, 1] -- what observing {8} after {0, 4} gives too.
  HistogramObserver a(HistogramObserverOptions().bins(2)), b(HistogramObserverOptions().bins(2)),
      sequential(HistogramObserverOptions().bins(2));
  a.forward(at::tensor({0.0f, 4.0f}));
  b.forward(at::tensor({8.0f}));
  sequential.forward(at::tensor({0.0f, 4.0f}));
  sequential.forward(at::tensor({8.0f}));
  a.merge(b.histogram(), b.min_val().item<float>(), b.max_val().item<float>());
  EXPECT_TRUE(tensors_equal(a.histogram(), at::tensor({2.0f, 1.0f})));
  EXPECT_EQ(a.min_val().item<float>(), 0.0f);
  EXPECT_EQ(a.max_val().item<float>(), 8.0f);
  EXPECT_TRUE(tensors_equal(sequential.histogram(), a.histogram()));
  // An empty state changes nothing; merged into an empty observer, a state is copied.
  HistogramObserver empty(HistogramObserverOptions().bins(2));
  a.merge(empty.histogram(), empty.min_val().item<float>(), empty.max_val().item<float>());
  EXPECT_TRUE(tensors_equal(a.histogram(), at::tensor({2.0f, 1.0f})));
  empty.merge(a.histogram(), 0.0f, 8.0f);
  EXPECT_TRUE(tensors_equal(empty.histogram(), a.histogram()));
  tq::testing::expect_error([&] { a.merge(at::zeros({3}), 0.0f, 1.0f); },
                            "[HistogramObserver] merge needs a float32 histogram of 2 bins, got Float [3]");
}
