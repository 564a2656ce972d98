// Every compiled copy of the CPU kernels (baseline; AVX2 and AVX-512 on x86) against the scalar reference:
// the copies are forced one after the other, so a machine tests all it can run, not only the
// one it would pick.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "every_cpu_capability.h"
#include "golden.h"
#include "tq/kernels/cpu_capability.h"
#include "tq/kernels/kernel_table.h"
#include "tq/kernels/tensor_kernels.h"

namespace {

using tq::kernels::ChannelLayout;
using tq::kernels::CpuCapability;
// The copy forced by the fixture, and the scalar definition it must equal.
const tq::kernels::KernelTable& cpu() { return tq::kernels::cpu_kernels(); }
const tq::kernels::KernelTable& reference() { return tq::kernels::reference_kernels(); }

// Runs the test body once per copy this processor can run, restoring the copy in use afterwards.
class CpuKernels : public tq::testing::EveryCpuCapability {
 protected:
  void SetUp() override {
    EveryCpuCapability::SetUp();
    at::manual_seed(7);
  }
};

const ChannelLayout kLayouts[] = {{1, 7, 5000}, {300, 33, 1}, {17, 5, 3}, {2, 70000, 1}};

int64_t numel(ChannelLayout l) { return l.outer * l.channels * l.inner; }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Data with the cases kernels get wrong: half steps (round-half-even ties), values far outside
// the range, a long random body (several parallel tasks) and an odd tail.
at::Tensor hard_data(int64_t n, float step) {
  auto ties = (at::arange(-600, 600, at::kFloat) * 0.5f * step).narrow(0, 0, std::min<int64_t>(1200, n));
  auto body = at::randn({n - ties.numel()}) * (40 * step);
  auto x = at::cat({ties, body});
  if (n > 10) {
    x[3] = 1e30f;
    x[n - 2] = -1e30f;
  }
  return x.contiguous();
}

TEST_P(CpuKernels, FakeQuantizePerTensorEqualsReference) {
  const int64_t n = 100003 + 1200;
  auto x = hard_data(n, 0.37f);
  for (bool float_zp : {false, true}) {
    tq::kernels::PerTensorQParams qp{0.37f, float_zp ? 3.25f : 7.0f, -128.0f, 127.0f, float_zp};
    std::vector<float> y_ref(n), y_cpu(n);
    std::vector<char> m_ref(n), m_cpu(n);
    reference().fake_quantize_per_tensor(x.data_ptr<float>(), y_ref.data(), reinterpret_cast<bool*>(m_ref.data()), n,
                                        qp);
    cpu().fake_quantize_per_tensor(x.data_ptr<float>(), y_cpu.data(), reinterpret_cast<bool*>(m_cpu.data()), n, qp);
    EXPECT_TRUE(same_bits(y_ref, y_cpu)) << "float zero point " << float_zp;
    EXPECT_EQ(m_ref, m_cpu);
  }
}

TEST_P(CpuKernels, FakeQuantizePerChannelEqualsReferenceOnEveryLayout) {
  for (auto l : kLayouts) {
    const int64_t n = numel(l);
    auto x = hard_data(n, 0.1f);
    auto scale = at::rand({l.channels}) * 0.3f + 0.01f;
    auto zp = at::randint(0, 255, {l.channels}).to(at::kFloat);
    tq::kernels::PerChannelQParams qp{scale.data_ptr<float>(), zp.data_ptr<float>(), 0.0f, 255.0f, false};
    std::vector<float> y_ref(n), y_cpu(n);
    std::vector<char> m_ref(n), m_cpu(n);
    reference().fake_quantize_per_channel(x.data_ptr<float>(), y_ref.data(), reinterpret_cast<bool*>(m_ref.data()), l,
                                         qp);
    cpu().fake_quantize_per_channel(x.data_ptr<float>(), y_cpu.data(), reinterpret_cast<bool*>(m_cpu.data()), l, qp);
    EXPECT_TRUE(same_bits(y_ref, y_cpu)) << "channels " << l.channels << " inner " << l.inner;
    EXPECT_EQ(m_ref, m_cpu);
  }
}

TEST_P(CpuKernels, MaskedGradEqualsReference) {
  const int64_t n = 70001;
  auto dy = at::randn({n});
  auto mask = at::rand({n}) > 0.3;
  std::vector<float> ref(n), out(n, -1.0f);
  reference().masked_grad(dy.data_ptr<float>(), mask.data_ptr<bool>(), ref.data(), n);
  cpu().masked_grad(dy.data_ptr<float>(), mask.data_ptr<bool>(), out.data(), n);
  EXPECT_TRUE(same_bits(ref, out));
  EXPECT_EQ(ref[0], mask[0].item<bool>() ? dy[0].item<float>() : 0.0f);
}

TEST_P(CpuKernels, QuantizePerTensorEqualsReferenceAndMapsNaNToTheMinimum) {
  const int64_t n = 100003 + 1200;
  auto x = hard_data(n, 0.37f);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  std::vector<int64_t> q_ref(n), q_cpu(n, -7);
  reference().quantize_per_tensor(x.data_ptr<float>(), q_ref.data(), n, 0.37f, 7, -128, 127);
  cpu().quantize_per_tensor(x.data_ptr<float>(), q_cpu.data(), n, 0.37f, 7, -128, 127);
  EXPECT_EQ(q_ref, q_cpu);
  EXPECT_EQ(q_cpu[5], -128);
  EXPECT_EQ(q_cpu[3], 127);  // 1e30 clamps to the maximum
  // Ties round half to even: x = 0.5 * step gives 0 + 7, 1.5 * step gives 2 + 7.
  const float half_steps[] = {0.5f * 0.37f, 1.5f * 0.37f};
  int64_t q_half[2];
  cpu().quantize_per_tensor(half_steps, q_half, 2, 0.37f, 7, -128, 127);
  EXPECT_EQ(q_half[0], static_cast<int64_t>(std::nearbyint(half_steps[0] * (1.0f / 0.37f))) + 7);
  EXPECT_EQ(q_half[1], static_cast<int64_t>(std::nearbyint(half_steps[1] * (1.0f / 0.37f))) + 7);
}

TEST_P(CpuKernels, MinMaxEqualsReferenceAndPropagatesNaN) {
  for (int64_t n : {1, 31, 33, 65536 * 3 + 17}) {
    auto x = at::randn({n}) * 5;
    float mn_ref, mx_ref, mn, mx;
    reference().min_max(x.data_ptr<float>(), n, &mn_ref, &mx_ref);
    cpu().min_max(x.data_ptr<float>(), n, &mn, &mx);
    EXPECT_EQ(mn, mn_ref) << n;
    EXPECT_EQ(mx, mx_ref) << n;
    EXPECT_EQ(mn, x.min().item<float>()) << n;
    x[n / 2] = std::numeric_limits<float>::quiet_NaN();
    cpu().min_max(x.data_ptr<float>(), n, &mn, &mx);
    EXPECT_TRUE(std::isnan(mn) && std::isnan(mx)) << n;
  }
}

TEST_P(CpuKernels, MinMaxPerChannelEqualsReferenceOnEveryLayout) {
  for (auto l : kLayouts) {
    auto x = at::randn({numel(l)}) * 3;
    x[numel(l) - 1] = std::numeric_limits<float>::quiet_NaN();  // the last channel's min and max are NaN
    std::vector<float> mn_ref(l.channels), mx_ref(l.channels), mn(l.channels), mx(l.channels);
    reference().min_max_per_channel(x.data_ptr<float>(), l, mn_ref.data(), mx_ref.data());
    cpu().min_max_per_channel(x.data_ptr<float>(), l, mn.data(), mx.data());
    EXPECT_TRUE(same_bits(mn_ref, mn)) << "channels " << l.channels << " inner " << l.inner;
    EXPECT_TRUE(same_bits(mx_ref, mx)) << "channels " << l.channels << " inner " << l.inner;
    EXPECT_TRUE(std::isnan(mx.back()));
  }
}

TEST_P(CpuKernels, HistogramEqualsReferenceAndTorchHistc) {
  const int64_t n = 300007, bins = 2048;
  auto x = at::randn({n}) * 2;
  x[0] = 3.0f;    // the right edge: counted in the last bin
  x[1] = -3.0f;   // the left edge
  x[2] = 3.5f;    // outside: skipped
  x[3] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> ref(bins), out(bins);
  reference().histogram(x.data_ptr<float>(), n, -3.0f, 3.0f, bins, ref.data());
  cpu().histogram(x.data_ptr<float>(), n, -3.0f, 3.0f, bins, out.data());
  EXPECT_TRUE(same_bits(ref, out));
  auto finite = x.narrow(0, 4, n - 4);
  auto histc = at::histc(at::cat({x.narrow(0, 0, 3), finite}), bins, -3.0, 3.0);
  EXPECT_TRUE(tq::testing::tensors_equal(at::from_blob(out.data(), {bins}).clone(), histc));
}

TEST_P(CpuKernels, LearnableBackwardEqualsReference) {
  // dx exactly; the scale / zero-point sums to summation order (blocks of float lanes).
  for (auto l : kLayouts) {
    const int64_t n = numel(l);
    auto x = hard_data(n, 0.05f);
    auto dy = at::randn({n});
    auto scale = at::rand({l.channels}) * 0.1f + 0.01f;
    auto zp = at::randint(-5, 5, {l.channels}).to(at::kFloat);
    std::vector<float> dx_ref(n), dx(n);
    std::vector<double> ds_ref(l.channels), dz_ref(l.channels), ds(l.channels), dz(l.channels);
    reference().learnable_backward_per_channel(x.data_ptr<float>(), dy.data_ptr<float>(), dx_ref.data(), l,
                                              scale.data_ptr<float>(), zp.data_ptr<float>(), -8, 7, 0.5f,
                                              ds_ref.data(), dz_ref.data());
    cpu().learnable_backward_per_channel(x.data_ptr<float>(), dy.data_ptr<float>(), dx.data(), l,
                                        scale.data_ptr<float>(), zp.data_ptr<float>(), -8, 7, 0.5f, ds.data(),
                                        dz.data());
    EXPECT_TRUE(same_bits(dx_ref, dx)) << "channels " << l.channels;
    for (int64_t c = 0; c < l.channels; ++c) {
      EXPECT_NEAR(ds[c], ds_ref[c], 1e-4 * (1 + std::abs(ds_ref[c]))) << c;
      EXPECT_NEAR(dz[c], dz_ref[c], 1e-4 * (1 + std::abs(dz_ref[c]))) << c;
    }
  }
  const int64_t n = 100003;
  auto x = hard_data(n, 0.05f);
  auto dy = at::randn({n});
  std::vector<float> dx_ref(n), dx(n);
  double ds_ref, dz_ref, ds, dz;
  reference().learnable_backward_per_tensor(x.data_ptr<float>(), dy.data_ptr<float>(), dx_ref.data(), n, 0.05f, 3.0f,
                                           0, 15, 0.25f, &ds_ref, &dz_ref);
  cpu().learnable_backward_per_tensor(x.data_ptr<float>(), dy.data_ptr<float>(), dx.data(), n, 0.05f, 3.0f, 0, 15,
                                     0.25f, &ds, &dz);
  EXPECT_TRUE(same_bits(dx_ref, dx));
  EXPECT_NEAR(ds, ds_ref, 1e-5 * std::abs(ds_ref));
  EXPECT_NEAR(dz, dz_ref, 1e-5 * std::abs(dz_ref));
  EXPECT_NE(dz_ref, 0.0);  // some elements fall outside the range
}

TEST_P(CpuKernels, QuantizeRowsStaticEqualsReference) {
  // Hand-derived on the reference: scale 0.5, zero point 3 on [0, 255], shifted by 128:
  // [1.25, -0.25, 200] -> [round(2.5) + 3, round(-0.5) + 3, 255] - 128 = [-123, -125, 127].
  const float hand[] = {1.25f, -0.25f, 200.0f};
  int8_t hand_q[3];
  float hand_scale = 0;
  reference().quantize_rows_static(hand, nullptr, 1, 3, {0.5f, 3, 0, 255, 128}, hand_q, &hand_scale);
  EXPECT_EQ(std::vector<int>(hand_q, hand_q + 3), (std::vector<int>{-123, -125, 127}));
  EXPECT_EQ(hand_scale, 0.5f);

  // Rows of 1003 (an odd tail), half steps, values far outside, infinities and a NaN row, with and
  // without factors, on the three ranges the Linears use.
  const int64_t rows = 23, cols = 1003;
  const float step = 0.03125f;
  auto x = hard_data(rows * cols, step).reshape({rows, cols}).contiguous();
  x[4][7] = std::numeric_limits<float>::infinity();
  x[5][9] = -std::numeric_limits<float>::infinity();
  x[6][1000] = std::numeric_limits<float>::quiet_NaN();
  const auto factors = (at::rand({cols}) * 4 + 0.125).contiguous();
  const tq::kernels::StaticRowQuantization params[] = {{step, 131, 0, 255, 128}, {step, 60, 0, 127, 0}, {step, 0, -128, 127, 0}};
  for (const auto& p : params) {
    for (const float* f : std::vector<const float*>{nullptr, factors.data_ptr<float>()}) {
      std::vector<int8_t> q(rows * cols), q_ref(rows * cols);
      std::vector<float> s(rows), s_ref(rows);
      cpu().quantize_rows_static(x.data_ptr<float>(), f, rows, cols, p, q.data(), s.data());
      reference().quantize_rows_static(x.data_ptr<float>(), f, rows, cols, p, q_ref.data(), s_ref.data());
      EXPECT_EQ(q, q_ref) << cpu().name << " zero point " << p.zero_point << (f ? " with factors" : "");
      EXPECT_EQ(std::memcmp(s.data(), s_ref.data(), rows * sizeof(float)), 0) << cpu().name;
      EXPECT_TRUE(std::isnan(s[6]) && s[5] == step) << cpu().name;
    }
  }
}

TEST_P(CpuKernels, QuantizeRowsPerTokenEqualsReference) {
  // Hand-derived on the reference: max |row| 2.54 -> scale 0.02; [2.54, -0.01, 0.03, -2.54] / 0.02
  // -> [127, round(-0.5) = 0, round(1.5) = 2, -127] (ties to even, within float32's rounding of
  // the scale: 0.03 / 0.02 lands on 1.5 or next to it, both round to 2).
  const float hand[] = {2.54f, -0.01f, 0.03f, -2.54f};
  int8_t hand_q[4];
  float hand_scale = 0;
  reference().quantize_rows_per_token(hand, 1, 4, hand_q, &hand_scale);
  EXPECT_EQ(std::vector<int>(hand_q, hand_q + 4), (std::vector<int>{127, 0, 2, -127}));
  EXPECT_EQ(hand_scale, 2.54f / 127.0f);

  // Rows of 1003 with exact half steps of their own scale, a row of zeros (scale 1e-5), a NaN row
  // and an infinite row.
  const int64_t rows = 21, cols = 1003;
  auto x = (at::randn({rows, cols}) * 3).contiguous();
  x.select(1, 0).fill_(12.7f);  // scale 0.1 in every row: the next values are half steps of it
  x.narrow(1, 1, 200).copy_((at::arange(-100, 100) + 0.5) * 0.1);
  x[2].zero_();
  x[5][500] = std::numeric_limits<float>::quiet_NaN();
  x[7][3] = -std::numeric_limits<float>::infinity();
  x.narrow(1, 201, cols - 201).clamp_(-12.7, 12.7);
  std::vector<int8_t> q(rows * cols), q_ref(rows * cols);
  std::vector<float> s(rows), s_ref(rows);
  cpu().quantize_rows_per_token(x.data_ptr<float>(), rows, cols, q.data(), s.data());
  reference().quantize_rows_per_token(x.data_ptr<float>(), rows, cols, q_ref.data(), s_ref.data());
  EXPECT_EQ(q, q_ref) << cpu().name;
  EXPECT_EQ(std::memcmp(s.data(), s_ref.data(), rows * sizeof(float)), 0) << cpu().name;
  EXPECT_EQ(s[2], 1e-5f);
  EXPECT_TRUE(std::isnan(s[5]));
  EXPECT_EQ(s[0], 12.7f / 127.0f);
}

TEST_P(CpuKernels, ScaleInt32SumsEqualsReference) {
  // Hand-derived: (254 + 0.5) * 0.5 * 0.25 + 1 = 32.8125, written over the sum's bytes.
  int32_t hand = 254;
  const float half = 0.5f, quarter = 0.25f, offset = 0.5f, one = 1.0f;
  reference().scale_int32_sums(&hand, 1, 1, &half, &quarter, &offset, &one);
  float hand_out;
  std::memcpy(&hand_out, &hand, sizeof(hand_out));
  EXPECT_EQ(hand_out, 32.8125f);

  // Sums beyond 2^24 (float32 rounds them), a NaN row scale, every combination of offsets and bias.
  const int64_t rows = 19, cols = 1003;
  const auto sums = at::randint(-(int64_t{1} << 27), int64_t{1} << 27, {rows, cols}).to(at::kInt);
  auto row_scales = (at::rand({rows}) * 0.01 + 1e-4).contiguous();
  row_scales[3] = std::numeric_limits<float>::quiet_NaN();
  const auto channel_scales = (at::rand({cols}) * 0.01).contiguous();
  const auto offsets = (at::randint(-3000, 3000, {cols}) * 1.0).to(at::kFloat).contiguous();
  const auto bias = at::randn({cols}).contiguous();
  for (bool with_offsets : {false, true}) {
    for (bool with_bias : {false, true}) {
      auto a = sums.clone(), b = sums.clone();
      const float* o = with_offsets ? offsets.data_ptr<float>() : nullptr;
      const float* bi = with_bias ? bias.data_ptr<float>() : nullptr;
      cpu().scale_int32_sums(a.data_ptr<int32_t>(), rows, cols, row_scales.data_ptr<float>(),
                             channel_scales.data_ptr<float>(), o, bi);
      reference().scale_int32_sums(b.data_ptr<int32_t>(), rows, cols, row_scales.data_ptr<float>(),
                                   channel_scales.data_ptr<float>(), o, bi);
      EXPECT_TRUE(at::equal(a, b)) << cpu().name << " offsets " << with_offsets << " bias " << with_bias;
      // The formula in float32, step by step, on the rows without a NaN.
      auto want = sums.to(at::kFloat);
      if (with_offsets) want = want + offsets;
      want = want * row_scales.unsqueeze(1) * channel_scales;
      if (with_bias) want = want + bias;
      const auto got = a.view(at::kFloat);
      EXPECT_TRUE(at::isnan(got[3]).all().item<bool>());
      const auto keep = at::arange(rows).ne(3);
      EXPECT_TRUE(at::equal(got.index({keep}), want.index({keep}))) << cpu().name;
    }
  }
}

TQ_INSTANTIATE_FOR_EVERY_CPU_CAPABILITY(CpuKernels);

TEST(CpuCapability, AnX86ProcessorRunsEveryCopyItsInstructionsAllow) {
  const auto available = tq::kernels::available_cpu_capabilities();
  ASSERT_GE(available.size(), 1u);
  EXPECT_EQ(available.front(), CpuCapability::kDefault);
#if defined(__x86_64__) || defined(__i386__)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  EXPECT_EQ(available.size(), 1u + avx2 + avx512);
  if (avx512) EXPECT_EQ(available.back(), CpuCapability::kAvx512);
#else
  EXPECT_EQ(available.size(), 1u);
#endif
}

TEST(CpuCapability, EnvironmentVariableForcesTheCopy) {
  // Run as is, the best copy is in use; ctest also runs the kernel tests with TQ_CPU_CAPABILITY=default.
  const char* forced = std::getenv("TQ_CPU_CAPABILITY");
  const auto expected = forced != nullptr ? tq::kernels::parse_cpu_capability(forced)
                                          : tq::kernels::available_cpu_capabilities().back();
  EXPECT_EQ(tq::kernels::cpu_capability(), expected);
}

TEST(CpuCapability, UnknownNamesAreRejected) {
  tq::testing::expect_error([] { tq::kernels::parse_cpu_capability("sse4"); },
                            "[cpu_capability] unknown CPU capability 'sse4': expected default, avx2 or avx512");
  EXPECT_EQ(tq::kernels::parse_cpu_capability("avx2"), CpuCapability::kAvx2);
  EXPECT_EQ(tq::kernels::parse_cpu_capability("avx512"), CpuCapability::kAvx512);
}

// A device with no kernels is refused by name; registering a table for a device makes every
// entry point run it. The meta device stands in for a new one (its tensors have no memory, so it
// is only looked up); a recording table put in the CPU's slot shows the entry points calling it.
int64_t g_recorded_calls = 0;
int64_t g_recorded_elements = 0;
void record_fake_quantize_per_tensor(const float*, float* y, bool* mask, int64_t n,
                                     const tq::kernels::PerTensorQParams&) {
  ++g_recorded_calls;
  g_recorded_elements = n;
  for (int64_t i = 0; i < n; ++i) {
    y[i] = 42.0f;
    if (mask) mask[i] = true;
  }
}
const tq::kernels::KernelTable& recording_kernels() {
  static const tq::kernels::KernelTable table = [] {
    tq::kernels::KernelTable t = tq::kernels::reference_kernels();
    t.name = "recording";
    t.fake_quantize_per_tensor = &record_fake_quantize_per_tensor;
    return t;
  }();
  return table;
}
const tq::kernels::KernelTable& active_cpu_copy() { return tq::kernels::cpu_kernels(); }

TEST(KernelDispatch, ANewDeviceIsOneTableAndOneRegistration) {
  const auto meta = at::TensorOptions().device(at::kMeta).dtype(at::kFloat);
  const tq::kernels::PerTensorQParams qp{0.5f, 0.0f, -128.0f, 127.0f, false};
  tq::testing::expect_error([&] { tq::kernels::fake_quantize_per_tensor(at::empty({3, 4}, meta), qp); },
                            "[fake_quantize_per_tensor] input is on meta, where tq has no kernels (it has them for: cpu)");
  tq::kernels::register_kernels(c10::DeviceType::Meta, &recording_kernels);
  EXPECT_STREQ(tq::kernels::kernels_for(at::Device(at::kMeta), "lookup").name, "recording");
  tq::kernels::unregister_kernels(c10::DeviceType::Meta);
  tq::testing::expect_error([&] { tq::kernels::kernels_for(at::Device(at::kMeta), "after"); },
                            "[after] input is on meta, where tq has no kernels");
  tq::testing::expect_error([] { tq::kernels::unregister_kernels(c10::DeviceType::CPU); },
                            "[unregister_kernels] the CPU kernels stay registered");

  g_recorded_calls = 0;
  tq::kernels::register_kernels(c10::DeviceType::CPU, &recording_kernels);
  at::Tensor mask;
  at::Tensor y;
  try {
    y = tq::kernels::fake_quantize_per_tensor(at::zeros({3, 4}).t(), qp, &mask);  // made contiguous first
  } catch (...) {
    tq::kernels::register_kernels(c10::DeviceType::CPU, &active_cpu_copy);
    throw;
  }
  tq::kernels::register_kernels(c10::DeviceType::CPU, &active_cpu_copy);
  EXPECT_EQ(g_recorded_calls, 1);
  EXPECT_EQ(g_recorded_elements, 12);
  EXPECT_EQ(y.sizes(), at::IntArrayRef({4, 3}));
  EXPECT_TRUE(y.eq(42.0f).all().item<bool>());
  EXPECT_TRUE(mask.all().item<bool>());
  EXPECT_EQ(tq::kernels::fake_quantize_per_tensor(at::zeros({3}), qp).sum().item<float>(), 0.0f);  // restored
}

TEST(KernelDispatch, CpuTensorsRunTheCopyInUse) {
  // Every CPU copy and the reference agree bit for bit on fake quantization, so the tensor-level
  // result equals the reference's; the table behind the CPU is the one cpu_capability() names.
  const auto x = hard_data(5000, 0.25f);
  const tq::kernels::PerTensorQParams qp{0.25f, 3.0f, 0.0f, 255.0f, false};
  std::vector<float> ref(5000);
  reference().fake_quantize_per_tensor(x.data_ptr<float>(), ref.data(), nullptr, 5000, qp);
  const auto y = tq::kernels::fake_quantize_per_tensor(x, qp);
  EXPECT_EQ(std::memcmp(y.data_ptr<float>(), ref.data(), ref.size() * sizeof(float)), 0);
  EXPECT_STREQ(tq::kernels::kernels_for(at::Device(at::kCPU), "test").name,
               (std::string("cpu_") + tq::kernels::to_string(tq::kernels::cpu_capability())).c_str());
  const auto [mn, mx] = tq::kernels::min_max(x);
  EXPECT_EQ(mn, x.min().item<float>());
  EXPECT_EQ(mx, x.max().item<float>());
  tq::testing::expect_error([] { tq::kernels::min_max(at::zeros({3}, at::kDouble)); },
                            "[min_max] expects a float32 tensor, got Double");
}

}  // namespace
