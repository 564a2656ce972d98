// The int8 backend seam (tq/kernels/int8_backend.h).
// - Int8Reference: the "reference" backend against numbers derived by hand from the quantization
//   formulas, so the yardstick itself is checked.
// - Int8Conformance: every operation of every backend (libtorch-quantized on each engine this
//   LibTorch has) against the reference backend, on the same plain uint8 / int8 values: int8
//   outputs within one quantization step everywhere, and exact on nearly all elements (the engines
//   requantize with a float multiplier and an int32 bias, the reference with one rounding of the
//   exact value: a value near a rounding boundary may land one step apart). This is the suite a
//   new backend must pass.
// - Int8Backends: chosen at run time, per thread; two backends side by side in one process; a
//   weight runs only on the backend that packed it.
//
// Activations for convolutions and linears stay in [0, 127] (7-bit): on x86 CPUs without VNNI the
// engines add pairs of uint8 x int8 products in int16, which saturates with full-range inputs
// (tq/kernels/int8_saturation.h); 7-bit inputs keep every pair in range on every CPU.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <limits>
#include <thread>

#include "golden.h"
#include "tq/core/torch_version.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_backend.h"
#include "tq/kernels/int8_saturation.h"

namespace {

namespace int8 = tq::kernels::int8;
using int8::QTensor;
using int8::WeightParts;
using tq::testing::expect_error;

const int8::Int8Backend& reference() {
  static const auto r = int8::find_backend("reference");
  return *r;
}

QTensor random_activation(at::IntArrayRef sizes, double scale, int64_t zero_point, int64_t high = 256) {
  return {at::randint(0, high, sizes, at::kByte), scale, zero_point};
}

// Symmetric int8 weights (zero point 0, as every engine takes them), per output channel or not.
WeightParts random_weight(at::IntArrayRef sizes, bool per_channel) {
  WeightParts w;
  w.values = at::randint(-127, 128, sizes, at::kChar);
  const int64_t n = per_channel ? sizes[0] : 1;
  w.scales = (at::rand({n}, at::kDouble) * 0.01 + 0.002);
  w.zero_points = at::zeros({n}, at::kLong);
  return w;
}

// The float weight the integers stand for.
at::Tensor real_weight(const WeightParts& w) {
  std::vector<int64_t> shape(w.values.dim(), 1);
  shape[0] = w.scales.numel();
  return w.values.to(at::kFloat) * w.scales.to(at::kFloat).reshape(shape);
}

// Output qparams covering [lo, hi] on the uint8 range.
std::pair<double, int64_t> out_qparams(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  const double scale = (hi - lo) / 255.0;
  return {scale, static_cast<int64_t>(std::nearbyint(-lo / scale))};
}
std::pair<double, int64_t> out_qparams(const at::Tensor& y) {
  return out_qparams(y.min().item<double>(), y.max().item<double>());
}

// got within one step of want everywhere, and at most `max_off` of the elements one step off.
void expect_conforms(const std::string& what, const QTensor& got, const QTensor& want, double max_off = 0.01) {
  SCOPED_TRACE(what);
  ASSERT_TRUE(got.values.defined());
  ASSERT_EQ(got.values.scalar_type(), want.values.scalar_type());
  ASSERT_EQ(got.values.sizes(), want.values.sizes());
  EXPECT_DOUBLE_EQ(got.scale, want.scale);
  EXPECT_EQ(got.zero_point, want.zero_point);
  const auto diff = (got.values.to(at::kInt) - want.values.to(at::kInt)).abs();
  const int64_t worst = diff.max().item<int64_t>();
  const double off = diff.ne(0).to(at::kDouble).mean().item<double>();
  std::cout << "  " << what << ": " << 100 * off << "% one step off, max " << worst << "\n";
  EXPECT_LE(worst, 1);
  EXPECT_LE(off, max_off);
}

void expect_close(const std::string& what, const at::Tensor& got, const at::Tensor& want, double rel) {
  SCOPED_TRACE(what);
  ASSERT_EQ(got.sizes(), want.sizes());
  const double scale = want.abs().max().item<double>();
  const double err = (got - want).abs().max().item<double>();
  std::cout << "  " << what << ": max error " << err << " of max |value| " << scale << "\n";
  EXPECT_LE(err, rel * scale);
}

}  // namespace

// ---- the yardstick, by hand ----

TEST(Int8Reference, LinearFromTheFormula) {
  // x = (q - 10) * 0.5 = [0, 5]; w = q * 0.25 = [[0.5, -0.25], [0.25, 0.25]]; b = [0.1, -0.2]
  // y = [-1.15, 1.05]; out scale 0.25, zero point 128: round(-4.6) = -5 -> 123, round(4.2) = 4 -> 132.
  const QTensor x{at::tensor({10, 20}, at::kByte).reshape({1, 2}), 0.5, 10};
  WeightParts w{at::tensor({2, -1, 1, 1}, at::kChar).reshape({2, 2}), at::full({1}, 0.25, at::kDouble),
                at::zeros({1}, at::kLong)};
  const auto packed = reference().prepack_linear(w, at::tensor({0.1f, -0.2f}));
  const auto y = reference().linear(x, packed, 0.25, 128, false);
  EXPECT_TRUE(at::equal(y.values, at::tensor({123, 132}, at::kByte).reshape({1, 2}))) << y.values;
  // relu: max(y, 0) before rounding -> [128, 132].
  EXPECT_TRUE(at::equal(reference().linear(x, packed, 0.25, 128, true).values,
                        at::tensor({128, 132}, at::kByte).reshape({1, 2})));
}

TEST(Int8Reference, PerTokenDynamicLinearFromTheFormula) {
  // Row 0: max|x| = 2.54 -> scale 0.02; x / scale = [127, -63.5, 0.5] -> [127, -64, 0] (ties to even).
  // Row 1: all zeros -> scale 1e-5 (the floor), integers 0.
  // w = [[1, 2, 3], [-1, 0, 4]] with scales [0.5, 0.25]; bias [1, -1].
  // Row 0 sums: 127 - 128 + 0 = -1 and -127 + 0 + 0 = -127 -> -1 * 0.02 * 0.5 + 1 = 0.99 and
  // -127 * 0.02 * 0.25 - 1 = -1.635. Row 1: the biases.
  const auto x = at::tensor({2.54f, -1.27f, 0.01f, 0.f, 0.f, 0.f}).reshape({2, 3});
  WeightParts w{at::tensor({1, 2, 3, -1, 0, 4}, at::kChar).reshape({2, 3}), at::tensor({0.5, 0.25}, at::kDouble),
                at::zeros({2}, at::kLong)};
  const auto y = reference().linear_dynamic_per_token(x, w, at::tensor({1.f, -1.f}));
  // The scale 2.54f / 127 is float32's nearest to 0.02 and the scaling is float32's: within 1e-6.
  EXPECT_TRUE(at::allclose(y, at::tensor({0.99f, -1.635f, 1.f, -1.f}).reshape({2, 2}), 1e-6, 1e-6)) << y;
  // A NaN in a row makes that row's outputs NaN, as float32's Linear does; the other row is unchanged.
  auto with_nan = x.clone();
  with_nan[1][2] = std::numeric_limits<float>::quiet_NaN();
  const auto y_nan = reference().linear_dynamic_per_token(with_nan, w, at::tensor({1.f, -1.f}));
  EXPECT_TRUE(y_nan[1].isnan().all().item<bool>()) << y_nan;
  EXPECT_TRUE(at::equal(y_nan[0], y[0])) << y_nan;
  // Rows longer than one exact float32 block (1024 products) still sum exactly: 3000 products of
  // 127 * [100, 127] add up to about 43 million, beyond float32's 2^24 integers, where one float32
  // matrix product is off by a few units.
  at::manual_seed(0);
  const auto wide = at::ones({4, 3000});  // max 1 -> scale 1/127 (float32), integers 127
  WeightParts wide_w{at::randint(100, 128, {8, 3000}).to(at::kChar), at::ones({8}, at::kDouble),
                     at::zeros({8}, at::kLong)};
  const auto exact = at::matmul(at::full({4, 3000}, 127, at::kLong), wide_w.values.to(at::kLong).t());
  const auto want = exact.to(at::kFloat) * (1.0f / 127.0f);  // the exact sums rounded once, then scaled
  EXPECT_TRUE(at::equal(reference().linear_dynamic_per_token(wide, wide_w, c10::nullopt), want));
}

TEST(Int8Reference, ExactInt8MatmulByEitherPathGivesTheIntegerSums) {
  // Extreme values (-128 x -128) and rows of 3,000 products, whose sums pass float32's 2^24
  // integers: each path gives the exact sum rounded once to float32. Where LibTorch has an int8
  // GEMM that cannot saturate here, the first call runs it and the second the float32 blocks.
  at::manual_seed(0);
  for (int64_t k : {5, 1024, 3000}) {
    auto a = at::randint(-128, 128, {7, k}).to(at::kChar), b = at::randint(-128, 128, {9, k}).to(at::kChar);
    a.select(1, 0).fill_(-128);
    b.select(1, 0).fill_(-128);
    a.narrow(0, 0, 1).fill_(127);
    b.narrow(0, 0, 1).fill_(127);
    const auto want = at::matmul(a.to(at::kLong), b.to(at::kLong).t()).to(at::kFloat);
    EXPECT_TRUE(at::equal(tq::kernels::int8::int8_matmul_exact(a, b), want)) << "k " << k;
    EXPECT_TRUE(at::equal(tq::kernels::int8::int8_matmul_exact(a, b, false), want)) << "k " << k;
  }
  EXPECT_THROW(tq::kernels::int8::int8_matmul_exact(at::zeros({2, 3}, at::kChar), at::zeros({2, 4}, at::kChar)),
               c10::Error);
}

TEST(Int8Reference, StaticInputLinearWithFloatOutputIsTheIntegerFormula) {
  // Hand-derived: scale 0.5, zero point 3 on [0, 255]; x = [1.25, -0.25, 200] -> codes
  // [round(2.5) + 3, round(-0.5) + 3, 255] = [5, 3, 255] (ties to even), minus the zero point
  // [2, 0, 252]. Weight [[1, -2, 1]], scale 0.25, bias 1: (2 + 0 + 252) * 0.5 * 0.25 + 1 = 32.75.
  const auto one = tq::kernels::int8::linear_int8_float_output(
      at::tensor({1.25f, -0.25f, 200.0f}).reshape({1, 3}), 0.5, 3, 0, 255, at::tensor({1, -2, 1}, at::kChar).reshape({1, 3}),
      at::tensor({0.25}, at::kDouble), at::tensor({1.0f}));
  EXPECT_TRUE(at::equal(one, at::tensor({32.75f}).reshape({1, 1}))) << one;
  // Against the formula in float64 on random data, ranges [0, 255] (codes shifted into int8) and
  // [0, 127], with values far outside the range and a row holding a NaN (its outputs NaN).
  at::manual_seed(3);
  for (int64_t quant_max : {255, 127}) {
    auto x = at::randn({2, 5, 700}) * 4;
    x.select(2, 3).fill_(1e6);
    x[1][2][7] = std::numeric_limits<float>::quiet_NaN();
    const auto w = at::randint(-127, 128, {6, 700}).to(at::kChar);
    const auto ws = at::rand({6}, at::kDouble) * 0.01 + 1e-3;
    const auto bias = at::randn({6});
    const double scale = 0.0625;
    const int64_t zp = quant_max / 2 + 1;
    const auto y = tq::kernels::int8::linear_int8_float_output(x, scale, zp, 0, quant_max, w, ws, bias);
    const auto codes = at::clamp(at::round(x * static_cast<float>(1.0 / scale)) + zp, 0, quant_max);
    const auto want = at::matmul((codes - zp).to(at::kDouble), w.to(at::kDouble).t()) * scale * ws + bias.to(at::kDouble);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 5, 6}));
    EXPECT_TRUE(at::isnan(y[1][2]).all().item<bool>());
    const auto finite = at::ones({2, 5}, at::kBool);
    finite[1][2] = false;
    EXPECT_TRUE(tq::testing::tensors_close(y.index({finite}), want.index({finite}).to(at::kFloat), 1e-5, 1e-4))
        << "quant_max " << quant_max;
    // Input factors (SmoothQuant's 1 / s) give what a separate float32 multiply before gives, bit
    // for bit, NaN row included.
    const auto factors = at::rand({700}) + 0.25;
    const auto folded = tq::kernels::int8::linear_int8_float_output(x, scale, zp, 0, quant_max, w, ws, bias, factors);
    const auto separate = tq::kernels::int8::linear_int8_float_output(x * factors, scale, zp, 0, quant_max, w, ws, bias);
    EXPECT_TRUE(at::equal(folded.nan_to_num(7.0), separate.nan_to_num(7.0))) << "quant_max " << quant_max;
    EXPECT_FALSE(at::equal(folded, y));
  }
  expect_error([] {
    tq::kernels::int8::linear_int8_float_output(at::ones({1, 2}), 0.5, 3, 0, 255, at::ones({1, 2}, at::kChar),
                                                at::ones({1}, at::kDouble), c10::nullopt, at::ones({3}));
  }, "the input factors must be one float per input feature (2), got [3]");
  expect_error([] {
    const int64_t in = 131073;  // |sum| up to in * 128 * 128 would overflow the int32 sums
    tq::kernels::int8::linear_int8_float_output(at::zeros({1, in}), 0.5, 3, 0, 255, at::zeros({1, in}, at::kChar),
                                                at::ones({1}, at::kDouble), c10::nullopt);
  }, "the weight takes 131073 input features; int32 sums hold at most 131072");
  expect_error([] {
    tq::kernels::int8::linear_int8_float_output(at::ones({1, 2}), 0.5, 300, 0, 255, at::ones({1, 2}, at::kChar),
                                                at::ones({1}, at::kDouble), c10::nullopt);
  }, "with zero point 300 is not an 8-bit range holding its zero point");
}

// tq's int8 batched matmul from its formula: S = sum (a - za)(b - zb) exactly (int64 here), then
// round(float32(S) * float32(alpha * sa * sb / so)) + zo, clamped to [0, 255].
at::Tensor matmul_formula(const QTensor& a, const QTensor& b, double alpha, double out_scale, int64_t out_zero_point) {
  const auto sums = at::matmul(a.values.to(at::kLong) - a.zero_point, b.values.to(at::kLong) - b.zero_point);
  const auto m = static_cast<float>(alpha * a.scale * b.scale / out_scale);
  return at::clamp(at::round(sums.to(at::kFloat) * m) + out_zero_point, 0, 255).to(at::kByte);
}

TEST(Int8Reference, BatchedMatmulIsTheIntegerFormula) {
  // By hand: a = [[3, 5]] (zero point 1, scale 0.5), b = [[2], [4]] (zero point 2, scale 0.25):
  // S = (3-1)(2-2) + (5-1)(4-2) = 8, real 8 * 0.5 * 0.25 = 1; alpha 0.5 and output scale 0.2 ->
  // 8 * 0.5 * 0.5 * 0.25 / 0.2 = 2.5, rounded to even 2, plus zero point 10 = 12.
  const QTensor a{at::tensor({3, 5}, at::kByte).reshape({1, 2}), 0.5, 1};
  const QTensor b{at::tensor({2, 4}, at::kByte).reshape({2, 1}), 0.25, 2};
  const auto one = reference().matmul(a, b, 0.5, 0.2, 10);
  EXPECT_EQ(one.values.item<int64_t>(), 12);
  EXPECT_DOUBLE_EQ(one.scale, 0.2);
  EXPECT_EQ(one.zero_point, 10);
  // Random data: heads of attention ([2, 3, 17, 32] x its transpose, a strided view), rows of 256
  // extreme products (255 x 255, the float32 blocks' bound) and of 700 (three blocks), broadcast
  // batch dimensions, and outputs that saturate at both ends.
  at::manual_seed(5);
  const auto q = random_activation({2, 3, 17, 32}, 0.05, 128), k = random_activation({2, 3, 17, 32}, 0.04, 120);
  const QTensor kt{k.values.transpose(-2, -1), k.scale, k.zero_point};
  EXPECT_TRUE(at::equal(reference().matmul(q, kt, 0.177, 0.09, 100).values, matmul_formula(q, kt, 0.177, 0.09, 100)));
  const QTensor every_other_row{q.values.slice(2, 0, 17, 2), q.scale, q.zero_point};  // not dense
  EXPECT_TRUE(at::equal(reference().matmul(every_other_row, kt, 0.177, 0.09, 100).values,
                        matmul_formula(every_other_row, kt, 0.177, 0.09, 100)));
  for (int64_t depth : {256, 700}) {
    auto x = random_activation({4, 1, 5, depth}, 0.01, 0), y = random_activation({3, depth, 6}, 0.02, 255);
    x.values.select(2, 0).fill_(255);
    y.values.select(2, 0).fill_(0);
    const double extreme = 255.0 * 255.0 * depth * 0.01 * 0.02;
    for (double out_scale : {extreme / 127, extreme / 2000}) {  // the whole range, and saturating
      const auto got = reference().matmul(x, y, 1.0, out_scale, 128).values;
      EXPECT_TRUE(at::equal(got, matmul_formula(x, y, 1.0, out_scale, 128))) << "depth " << depth;
      EXPECT_EQ(got.sizes(), (std::vector<int64_t>{4, 3, 5, 6})) << "depth " << depth;  // batch broadcast
    }
    // The extreme row times the extreme column: -(255 * 255 * depth) exactly, -127 steps.
    EXPECT_EQ(reference().matmul(x, y, 1.0, extreme / 127, 128).values[0][0][0][0].item<int64_t>(), 1)
        << "depth " << depth;
  }
  expect_error([] { reference().matmul(random_activation({2, 3}, 1, 0), random_activation({4, 2}, 1, 0), 1, 1, 0); },
               "[int8::matmul] a [2, 3] and b [4, 2] do not multiply");
  expect_error([] { reference().matmul(random_activation({4, 2, 3}, 1, 0), random_activation({5, 3, 2}, 1, 0), 1, 1, 0); },
               "[int8::matmul] a [4, 2, 3] and b [5, 3, 2] have batch dimensions that do not broadcast");
  expect_error([] { reference().matmul(random_activation({3}, 1, 0), random_activation({3, 2}, 1, 0), 1, 1, 0); },
               "[int8::matmul] a must have at least 2 dimensions, got [3]");
}

// PyTorch's quantized::matmul (dequantize, float32 matmul, quantize) gives the same codes but where
// its float32 rounding lands a value on the other side of a half step.
TEST(Int8Reference, BatchedMatmulAgreesWithPyTorchsQuantizedMatmul) {
  at::manual_seed(9);
  const auto a = random_activation({4, 6, 33, 64}, 0.03, 131), b = random_activation({4, 6, 64, 33}, 0.02, 117);
  const auto want = at::matmul(reference().dequantize(a), reference().dequantize(b));
  const auto [s, z] = out_qparams(want);
  // Boxed: LibTorch 1.13 and 2.x register the kernel with different C++ signatures.
  torch::jit::Stack stack{int8::from_qtensor(a), int8::from_qtensor(b), s, z};
  c10::Dispatcher::singleton().findSchemaOrThrow("quantized::matmul", "").callBoxed(&stack);
  const auto pytorch = stack[0].toTensor();
  expect_conforms("matmul vs quantized::matmul", reference().matmul(a, b, 1.0, s, z), int8::to_qtensor(pytorch),
                  0.001);
}

TEST(Int8Reference, ConvPadsWithRealZerosAndRoundsHalfToEven) {
  // 1-d, one channel, kernel [1, 1] (scale 1), padding 1: x real = [2, 4] (q - 3, scale 1).
  // y = [0 + 2, 2 + 4, 4 + 0] = [2, 6, 4]; out scale 4, zero point 0: 0.5 -> 0, 1.5 -> 2, 1.0 -> 1.
  const QTensor x{at::tensor({5, 7}, at::kByte).reshape({1, 1, 2}), 1.0, 3};
  WeightParts w{at::tensor({1, 1}, at::kChar).reshape({1, 1, 2}), at::ones({1}, at::kDouble), at::zeros({1}, at::kLong)};
  const auto packed = reference().prepack_conv(w, c10::nullopt, {1, {1}, {1}, {1}, 1});
  const auto y = reference().conv(x, packed, 4.0, 0, false);
  EXPECT_TRUE(at::equal(y.values, at::tensor({0, 2, 1}, at::kByte).reshape({1, 1, 3}))) << y.values;
}

TEST(Int8Reference, QuantizeSaturatesAndRelu6ClampsTheIntegers) {
  const auto q = reference().quantize(at::tensor({-1.0f, 0.25f, 0.75f, 200.0f}), 0.5, 2, false);
  // -1/0.5 + 2 = 0; 0.5 -> 0 (even) + 2 = 2; 1.5 -> 2 + 2 = 4; saturates at 255.
  EXPECT_TRUE(at::equal(q.values, at::tensor({0, 2, 4, 255}, at::kByte))) << q.values;
  // relu6 at scale 0.5, zero point 2: integers clamped to [2, 14].
  const auto r = reference().relu6(q);
  EXPECT_TRUE(at::equal(r.values, at::tensor({2, 2, 4, 14}, at::kByte))) << r.values;
  EXPECT_TRUE(at::equal(reference().dequantize(r), at::tensor({0.0f, 0.0f, 1.0f, 6.0f})));
}

// ---- every backend against the yardstick ----

namespace {

struct Target {
  std::string backend, engine;  // engine: "" for backends without engines
};

void PrintTo(const Target& t, std::ostream* os) { *os << t.backend << (t.engine.empty() ? "" : " on " + t.engine); }

std::vector<Target> targets() {
  std::vector<Target> out;
  for (const auto& name : int8::available_backends()) {
    if (name == "reference") continue;
    if (name == "libtorch-quantized") {
      for (const auto& e : int8::available_engines()) out.push_back({name, e});
    } else {
      out.push_back({name, ""});
    }
  }
  return out;
}

class Int8Conformance : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override {
    previous_engine_ = int8::current_engine();
    if (!GetParam().engine.empty()) int8::set_engine(GetParam().engine);
    at::manual_seed(11);
  }
  void TearDown() override { int8::set_engine(previous_engine_); }
  const int8::Int8Backend& tested() const { return *int8::find_backend(GetParam().backend); }
  bool has_fp16() const {
    return GetParam().backend != "libtorch-quantized" || [] {
      const auto e = int8::available_engines();
      return std::find(e.begin(), e.end(), "fbgemm") != e.end() || std::find(e.begin(), e.end(), "x86") != e.end();
    }();
  }

 private:
  std::string previous_engine_;
};

std::string target_name(const ::testing::TestParamInfo<Target>& info) {
  std::string s = info.param.backend + (info.param.engine.empty() ? "" : "_" + info.param.engine);
  for (auto& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

}  // namespace

TEST_P(Int8Conformance, QuantizeAndDequantize) {
  const auto x = at::randn({4, 33}) * 3;
  expect_conforms("quantize uint8", tested().quantize(x, 0.03, 120, false), reference().quantize(x, 0.03, 120, false),
                  0.001);
  expect_conforms("quantize int8", tested().quantize(x, 0.03, -5, true), reference().quantize(x, 0.03, -5, true), 0.001);
  const auto q = random_activation({4, 33}, 0.03, 120);
  EXPECT_TRUE(at::equal(tested().dequantize(q), reference().dequantize(q)));
}

TEST_P(Int8Conformance, Linear) {
  for (bool per_channel : {false, true}) {
    for (bool relu : {false, true}) {
      const auto x = random_activation({3, 5, 40}, 0.05, 60, 128);  // 3-D: leading dimensions fold
      const auto w = random_weight({24, 40}, per_channel);
      const auto bias = at::randn({24});
      const auto y_real = at::linear(reference().dequantize(x), real_weight(w), bias);
      const auto [s, z] = out_qparams(y_real);
      const auto got = tested().linear(x, tested().prepack_linear(w, bias), s, z, relu);
      const auto want = reference().linear(x, reference().prepack_linear(w, bias), s, z, relu);
      expect_conforms(std::string("linear") + (per_channel ? " per-channel" : " per-tensor") + (relu ? " relu" : ""),
                      got, want);
    }
  }
}

TEST_P(Int8Conformance, Convolutions) {
  struct Case {
    int dims;
    std::vector<int64_t> input;
    int64_t out_channels, groups, kernel, stride, padding, dilation;
  };
  const std::vector<Case> cases = {
      {2, {2, 8, 9, 9}, 16, 1, 3, 1, 1, 1},  {2, {2, 8, 10, 10}, 8, 8, 3, 2, 1, 1},
      {2, {1, 6, 11, 11}, 12, 2, 3, 1, 2, 2}, {1, {2, 8, 20}, 16, 1, 5, 2, 2, 1},
      {3, {1, 4, 5, 6, 6}, 8, 1, 3, 1, 1, 1}};
  for (const auto& c : cases) {
    for (bool relu : {false, true}) {
      const auto x = random_activation(c.input, 0.04, 70, 128);
      std::vector<int64_t> wshape = {c.out_channels, c.input[1] / c.groups};
      for (int d = 0; d < c.dims; ++d) wshape.push_back(c.kernel);
      const auto w = random_weight(wshape, /*per_channel=*/true);
      const auto bias = at::randn({c.out_channels});
      const int8::ConvGeometry g{c.dims, std::vector<int64_t>(c.dims, c.stride), std::vector<int64_t>(c.dims, c.padding),
                                 std::vector<int64_t>(c.dims, c.dilation), c.groups};
      const auto y_real = at::convolution(reference().dequantize(x), real_weight(w), bias, g.stride, g.padding, g.dilation, false,
                                          std::vector<int64_t>(c.dims, 0), g.groups);
      const auto [s, z] = out_qparams(y_real);
      const auto got = tested().conv(x, tested().prepack_conv(w, bias, g), s, z, relu);
      const auto want = reference().conv(x, reference().prepack_conv(w, bias, g), s, z, relu);
      expect_conforms("conv" + std::to_string(c.dims) + "d groups " + std::to_string(c.groups) + " stride " +
                          std::to_string(c.stride) + (relu ? " relu" : ""),
                      got, want);
    }
  }
}

TEST_P(Int8Conformance, DynamicLinear) {
  const auto x = at::randn({6, 40});
  const auto w = random_weight({16, 40}, true);
  const auto bias = at::randn({16});
  const auto got = tested().linear_dynamic(x, tested().prepack_linear(w, bias), /*reduce_range=*/true);
  // LibTorch's qnnpack ignores reduce_range (it warns so itself): its inputs take the full 8 bits.
  const bool reduce_range = GetParam().engine != "qnnpack";
  const auto want = reference().linear_dynamic(x, reference().prepack_linear(w, bias), reduce_range);
  // Both quantize x with the same qparams; the engines' float epilogue rounds in float32.
  expect_close("linear_dynamic", got, want, 1e-5);
}

TEST_P(Int8Conformance, DynamicLinearPerToken) {
  auto x = at::randn({2, 5, 40});
  x.select(2, 3).mul_(30);  // an outlier channel, as transformers have
  auto w = random_weight({16, 40}, true);
  w.zero_points.zero_();
  const auto bias = at::randn({16});
  const auto got = tested().linear_dynamic_per_token(x, w, bias);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 5, 16}));
  expect_close("linear_dynamic_per_token", got, reference().linear_dynamic_per_token(x, w, bias), 1e-6);
}

TEST_P(Int8Conformance, DynamicLinearFloat16) {
  if (!has_fp16()) GTEST_SKIP() << "float16 Linear needs the fbgemm or x86 engine, absent from this LibTorch";
  const auto x = at::randn({6, 40});
  const auto bias = at::randn({16});
  const auto wf = at::randn({16, 40});
  expect_close("linear_dynamic_fp16", tested().linear_dynamic_fp16(x, tested().prepack_linear_fp16(wf, bias)),
               reference().linear_dynamic_fp16(x, reference().prepack_linear_fp16(wf, bias)), 1e-5);
}

TEST_P(Int8Conformance, BatchNorm) {
  const auto x = random_activation({2, 6, 5, 5}, 0.05, 100);
  const auto weight = at::rand({6}) + 0.5, bias = at::randn({6}) * 0.1, mean = at::randn({6}) * 0.2,
             var = at::rand({6}) + 0.5;
  const auto [s, z] = out_qparams(-8.0, 8.0);
  expect_conforms("batch_norm2d", tested().batch_norm2d(x, weight, bias, mean, var, 1e-5, s, z),
                  reference().batch_norm2d(x, weight, bias, mean, var, 1e-5, s, z));
}

TEST_P(Int8Conformance, Embeddings) {
  const auto table = at::randn({50, 16});
  const auto lo = std::get<0>(table.min(1)), hi = std::get<0>(table.max(1));
  for (bool four_bit : {false, true}) {
    const double levels = four_bit ? 15 : 255;
    const auto scales = ((hi - lo) / levels).to(at::kFloat);
    const int8::EmbeddingWeight w{table, scales, (-lo / scales).to(at::kFloat), four_bit};
    const auto pt = tested().prepack_embedding(w), pr = reference().prepack_embedding(w);
    const std::string bits = four_bit ? " 4-bit" : " 8-bit";
    const auto idx = at::randint(0, 50, {12}, at::kLong);
    expect_close("embedding" + bits, tested().embedding(pt, idx), reference().embedding(pr, idx), 1e-6);
    const auto offsets = at::tensor({0, 3, 3, 7}, at::kLong);  // one empty bag
    const auto weights = at::rand({12});
    for (int64_t mode : {0, 1, 2}) {
      const auto psw = mode == 0 ? c10::optional<at::Tensor>(weights) : c10::nullopt;
      expect_close("embedding_bag mode " + std::to_string(mode) + bits,
                   tested().embedding_bag(pt, idx, offsets, mode, psw, false),
                   reference().embedding_bag(pr, idx, offsets, mode, psw, false), 1e-5);
    }
  }
}

TEST_P(Int8Conformance, ElementwiseAndCat) {
  const auto a = random_activation({2, 8, 6, 6}, 0.04, 110), b = random_activation({2, 8, 6, 6}, 0.03, 140);
  const auto [sa, za] = out_qparams(-9.0, 9.0);
  for (bool relu : {false, true}) {
    expect_conforms(std::string("add") + (relu ? " relu" : ""), tested().add(a, b, sa, za, relu),
                    reference().add(a, b, sa, za, relu));
  }
  const auto [sm, zm] = out_qparams(-20.0, 20.0);
  expect_conforms("mul", tested().mul(a, b, sm, zm), reference().mul(a, b, sm, zm));
  const auto [sc, zc] = out_qparams(-5.0, 5.5);
  expect_conforms("cat", tested().cat({a, b}, 1, sc, zc), reference().cat({a, b}, 1, sc, zc));
}

TEST_P(Int8Conformance, BatchedMatmul) {
  const auto q = random_activation({2, 4, 9, 16}, 0.05, 128), k = random_activation({2, 4, 9, 16}, 0.04, 120);
  const QTensor kt{k.values.transpose(-2, -1), k.scale, k.zero_point};
  const auto [s, z] = out_qparams(-30.0, 30.0);
  expect_conforms("matmul", tested().matmul(q, kt, 0.25, s, z), reference().matmul(q, kt, 0.25, s, z), 0.0);
}

TEST_P(Int8Conformance, Activations) {
  const auto x = random_activation({4, 64}, 0.06, 128);
  expect_conforms("relu6", tested().relu6(x), reference().relu6(x), 0.0);
  const auto [sh, zh] = out_qparams(-0.375, 7.7);
  expect_conforms("hardswish", tested().hardswish(x, sh, zh), reference().hardswish(x, sh, zh));
  const auto [se, ze] = out_qparams(-1.0, 7.7);
  expect_conforms("elu", tested().elu(x, 1.0, se, ze), reference().elu(x, 1.0, se, ze));
  const auto [sl, zl] = out_qparams(-0.8, 7.7);
  expect_conforms("leaky_relu", tested().leaky_relu(x, 0.1, sl, zl), reference().leaky_relu(x, 0.1, sl, zl));
  expect_conforms("sigmoid", tested().sigmoid(x, 1.0 / 256, 0), reference().sigmoid(x, 1.0 / 256, 0));
}

INSTANTIATE_TEST_SUITE_P(EveryBackend, Int8Conformance, ::testing::ValuesIn(targets()), target_name);

// ---- choosing backends ----

TEST(Int8Backends, ChosenByNamePerThreadAndSideBySide) {
  const auto names = int8::available_backends();
  EXPECT_NE(std::find(names.begin(), names.end(), "libtorch-quantized"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "reference"), names.end());
  EXPECT_EQ(int8::backend().name(), "libtorch-quantized");
  expect_error([] { int8::set_backend("cuda-int8"); }, "no int8 backend 'cuda-int8'; available: libtorch-quantized, ");
  expect_error([] { int8::ScopedInt8Backend s("nope"); }, "no int8 backend 'nope'");
  EXPECT_EQ(int8::backend().name(), "libtorch-quantized");  // a failed choice changes nothing

  // The eager API (quint8 carrier) on both backends, in two threads at once.
  at::manual_seed(3);
  const auto x = at::randn({8, 32});
  const auto wq = int8::quantize_weight(at::randn({16, 32}) * 0.1,
                                        {at::full({16}, 0.002f), at::zeros({16}, at::kInt)}, /*per_channel=*/true);
  const auto bias = at::randn({16});
  at::Tensor results[2];
  auto run = [&](int i, const char* name) {
    int8::ScopedInt8Backend scope(name);
    EXPECT_EQ(int8::backend().name(), name);
    const auto xq = int8::quantize_activation(x.clamp(0, 2.5), 0.02, 0);  // 7-bit: [0, 125]
    const auto packed = int8::prepack_linear(wq, bias);
    results[i] = int8::dequantize(int8::linear(xq, packed, 0.05, 128, false));
  };
  std::thread a(run, 0, "libtorch-quantized"), b(run, 1, "reference");
  a.join();
  b.join();
  EXPECT_EQ(int8::backend().name(), "libtorch-quantized");
  EXPECT_LE((results[0] - results[1]).abs().max().item<double>(), 0.05 * 1.0001);

  // A weight runs only where it was packed.
  at::Tensor xq = int8::quantize_activation(x.clamp(0, 2.5), 0.02, 0);
  const auto packed = int8::prepack_linear(wq, bias);
  int8::ScopedInt8Backend scope("reference");
  expect_error([&] { int8::linear(xq, packed, 0.05, 128, false); },
               "the weight was packed by the 'libtorch-quantized' int8 backend, not by reference");
}

// The process default comes from TQ_INT8_BACKEND (ctest runs this test again with it set to
// "reference" and, on LibTorch 2.x, "onednn").
TEST(Int8Backends, DefaultFromTheEnvironment) {
  const char* env = std::getenv("TQ_INT8_BACKEND");
  const std::string expected = env && *env ? env : "libtorch-quantized";
  EXPECT_EQ(int8::backend().name(), expected);
  const auto x = at::rand({4, 16}) * 2;  // the eager API runs on it
  const auto y = int8::dequantize(int8::quantize_activation(x, 0.01, 0));
  EXPECT_LE((y - x).abs().max().item<double>(), 0.005 + 1e-6);
}

TEST(Int8Backends, CarrierConvertsWithoutACopy) {
  const auto q = int8::quantize_activation(at::randn({2, 3, 4, 4}).contiguous(at::MemoryFormat::ChannelsLast), 0.1, 7);
  const auto v = int8::to_qtensor(q);
  EXPECT_EQ(v.values.scalar_type(), at::kByte);
  EXPECT_EQ(v.values.data_ptr(), q.data_ptr());
  EXPECT_EQ(v.values.strides(), q.strides());
  EXPECT_EQ(v.scale, q.q_scale());
  EXPECT_EQ(v.zero_point, 7);
  const auto back = int8::from_qtensor(v);
  EXPECT_EQ(back.data_ptr(), q.data_ptr());
  EXPECT_TRUE(at::equal(back.int_repr(), q.int_repr()));
  expect_error([] { int8::to_qtensor(at::ones({2})); }, "input must be a quint8 quantized tensor");
  expect_error([] { int8::from_qtensor({at::ones({2}), 1.0, 0}); }, "activations must be uint8 values, got Float");
}

// ---- the onednn backend (LibTorch 2.x) ----

// Where it runs, and why not elsewhere.
TEST(Int8OnednnRegistry, ExactlyWhereLibTorchHasItsOperators) {
  const auto names = int8::available_backends();
  const bool registered = std::find(names.begin(), names.end(), "onednn") != names.end();
#if TQ_TORCH_VERSION_AT_LEAST(2, 1)
  EXPECT_TRUE(registered) << int8::onednn_backend_unavailable_reason();
#else
  EXPECT_FALSE(registered);
  expect_error([] { int8::set_backend("onednn"); },
               "the int8 backend 'onednn' is not available: this LibTorch lacks onednn::qlinear_prepack");
  EXPECT_EQ(int8::backend().name(), "libtorch-quantized");
#endif
}

class Int8Onednn : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto names = int8::available_backends();
    if (std::find(names.begin(), names.end(), "onednn") == names.end()) {
      GTEST_SKIP() << int8::onednn_backend_unavailable_reason();
    }
    at::manual_seed(5);
  }
  const int8::Int8Backend& onednn() const { return *int8::find_backend("onednn"); }
};

// Full-range uint8 inputs: oneDNN without VNNI would sum products in int16 and overflow; the
// backend must still answer as the reference does (this test also runs with oneDNN capped at AVX2).
TEST_F(Int8Onednn, FullRangeInputsNeverSaturateSilently) {
  std::cout << "  oneDNN ISA: " << int8::int8_isa("onednn").isa << "\n";
  // Weights at the int8 extremes and inputs at 255 make every pair sum exceed int16.
  WeightParts w = random_weight({16, 64}, true);
  w.values = at::where(at::rand({16, 64}) < 0.5, at::full({}, -128, at::kChar), at::full({}, 127, at::kChar));
  const QTensor x = {at::full({4, 64}, 255, at::kByte).index_put_({at::indexing::Slice(), 0}, 3), 0.01, 0};
  const auto y_real = at::linear(reference().dequantize(x), real_weight(w));
  const auto [s, z] = out_qparams(y_real);
  expect_conforms("linear, full-range input", onednn().linear(x, onednn().prepack_linear(w, c10::nullopt), s, z, false),
                  reference().linear(x, reference().prepack_linear(w, c10::nullopt), s, z, false));

  WeightParts wc = random_weight({8, 16, 3, 3}, true);
  wc.values = at::where(at::rand({8, 16, 3, 3}) < 0.5, at::full({}, -128, at::kChar), at::full({}, 127, at::kChar));
  const QTensor xc = {at::randint(200, 256, {2, 16, 6, 6}, at::kByte), 0.01, 3};
  const int8::ConvGeometry g{2, {1, 1}, {1, 1}, {1, 1}, 1};
  const auto yc = at::conv2d(reference().dequantize(xc), real_weight(wc), {}, 1, 1);
  const auto [sc, zc] = out_qparams(yc);
  expect_conforms("conv, full-range input", onednn().conv(xc, onednn().prepack_conv(wc, c10::nullopt, g), sc, zc, false),
                  reference().conv(xc, reference().prepack_conv(wc, c10::nullopt, g), sc, zc, false));
}

// A weight is packed once and serves every batch size and spatial size (LibTorch 1.13's onednn
// engine failed when the batch size changed).
TEST_F(Int8Onednn, OnePackingServesEveryInputShape) {
  const auto w = random_weight({12, 6, 3, 3}, true);
  const auto bias = at::randn({12});
  const int8::ConvGeometry g{2, {1, 1}, {1, 1}, {1, 1}, 1};
  const auto packed = onednn().prepack_conv(w, bias, g), ref = reference().prepack_conv(w, bias, g);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 6, 8, 8}, {16, 6, 8, 8}, {3, 6, 13, 5}, {1, 6, 8, 8}}) {
    const auto x = random_activation(shape, 0.03, 40, 128);
    const auto [s, z] = out_qparams(-6.0, 6.0);
    expect_conforms("conv input " + c10::str(at::IntArrayRef(shape)), onednn().conv(x, packed, s, z, true),
                    reference().conv(x, ref, s, z, true));
  }
  const auto wl = random_weight({10, 20}, false);
  const auto pl = onednn().prepack_linear(wl, c10::nullopt), rl = reference().prepack_linear(wl, c10::nullopt);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 20}, {16, 20}, {2, 7, 20}}) {
    const auto x = random_activation(shape, 0.03, 40, 128);
    const auto [s, z] = out_qparams(-4.0, 4.0);
    expect_conforms("linear input " + c10::str(at::IntArrayRef(shape)), onednn().linear(x, pl, s, z, false),
                    reference().linear(x, rl, s, z, false));
  }
}

// What oneDNN cannot take is refused in one line, not computed wrong.
TEST_F(Int8Onednn, AsymmetricWeightsAreRefused) {
  WeightParts w = random_weight({4, 8}, true);
  w.zero_points = at::full({4}, 3, at::kLong);
  expect_error([&] { onednn().prepack_linear(w, c10::nullopt); },
               "[int8::prepack_linear] the onednn backend takes symmetric int8 weights (zero point 0)");
  const QTensor x = {at::zeros({2, 8}, at::kFloat), 1.0, 0};
  expect_error([&] { onednn().linear(x, onednn().prepack_linear(random_weight({4, 8}, true), c10::nullopt), 1.0, 0, false); },
               "activations must be uint8 values, got Float");
}

// Its path makes no ATen quantized tensor: LibTorch 2.13 warns at every creation of one (with
// warn-always on), and nothing on the onednn path warns; the same ops on libtorch-quantized do.
TEST_F(Int8Onednn, MakesNoQuantizedTensor) {
#if TQ_TORCH_VERSION_AT_LEAST(2, 13)
  struct Recorder : c10::WarningHandler {
    void process(const c10::Warning& w) override { count += w.msg().find("quantized tensor creation") != std::string::npos; }
    int count = 0;
  };
  const bool was_always = c10::WarningUtils::get_warnAlways();
  c10::WarningUtils::set_warnAlways(true);
  auto quantized_tensors_made = [](const int8::Int8Backend& b) {
    Recorder r;
    c10::WarningUtils::WarningHandlerGuard guard(&r);
    const auto x = b.quantize(at::rand({4, 16}), 0.01, 0, false);
    const auto lin = b.linear(x, b.prepack_linear(random_weight({8, 16}, true), at::randn({8})), 0.05, 100, true);
    const int8::ConvGeometry g{2, {1, 1}, {0, 0}, {1, 1}, 1};
    const QTensor xc{lin.values.reshape({4, 8, 1, 1}), lin.scale, lin.zero_point};
    const auto conv = b.conv(xc, b.prepack_conv(random_weight({4, 8, 1, 1}, false), c10::nullopt, g), 0.05, 100, false);
    b.dequantize(conv);
    b.linear_dynamic(at::randn({3, 16}), b.prepack_linear(random_weight({8, 16}, true), c10::nullopt), true);
    return r.count;
  };
  EXPECT_EQ(quantized_tensors_made(onednn()), 0);
  EXPECT_GT(quantized_tensors_made(*int8::find_backend("libtorch-quantized")), 0);  // the warning is seen here
  c10::WarningUtils::set_warnAlways(was_always);
#else
  GTEST_SKIP() << "LibTorch before 2.13 does not warn when a quantized tensor is made";
#endif
}

// The eager modules' int8 API runs on it as on any backend.
TEST_F(Int8Onednn, EagerApiRunsOnIt) {
  int8::ScopedInt8Backend scope("onednn");
  const auto x = at::rand({8, 32}) * 2.5;
  const auto wq = int8::quantize_weight(at::randn({16, 32}) * 0.1,
                                        {at::full({16}, 0.002f), at::zeros({16}, at::kInt)}, /*per_channel=*/true);
  const auto bias = at::randn({16});
  const auto y = int8::dequantize(int8::linear(int8::quantize_activation(x, 0.02, 0), int8::prepack_linear(wq, bias),
                                               0.05, 128, false));
  int8::ScopedInt8Backend ref("reference");
  const auto want = int8::dequantize(int8::linear(int8::quantize_activation(x, 0.02, 0),
                                                  int8::prepack_linear(wq, bias), 0.05, 128, false));
  EXPECT_LE((y - want).abs().max().item<double>(), 0.05 * 1.0001);
}
