// Pairs <Op>/tq and <Op>/aten measured in one process (run with
// --benchmark_enable_random_interleaving=true so the pairs interleave). bytes_per_second counts
// the float32 input once, so every op compares directly with Copy (a same-size tensor copy into
// an existing tensor: the memory-bandwidth limit).
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "bench_common.h"
#include "tq/fake_quant/default_fake_quants.h"
#include "tq/numerics/fake_quantize.h"
#include "tq/numerics/fake_quantize_learnable.h"
#include "tq/observers/min_max_observer.h"
#include "tq/observers/per_channel_min_max_observer.h"

namespace {

constexpr int64_t kNumel = 16 * 1024 * 1024;
constexpr int64_t kChannels = 256;

at::Tensor input() {
  static at::Tensor x = at::randn({kNumel}) * 3;
  return x;
}
at::Tensor per_channel_input() {
  static at::Tensor x = at::randn({kChannels, kNumel / kChannels}) * 3;
  return x;
}
at::Tensor channel_scale() {
  static at::Tensor s = at::rand({kChannels}) * 0.05f + 0.01f;
  return s;
}
at::Tensor channel_zero_point() {
  static at::Tensor z = at::randint(0, 256, {kChannels}, at::kInt);
  return z;
}

void set_bytes(benchmark::State& state) { state.SetBytesProcessed(state.iterations() * kNumel * sizeof(float)); }

void Copy(benchmark::State& state) {
  auto x = input();
  auto y = at::empty_like(x);
  for (auto _ : state) {
    y.copy_(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_bytes(state);
}
BENCHMARK(Copy)->Unit(benchmark::kMillisecond)->UseRealTime();

template <bool kTq>
void FakeQuantPerTensorFwd(benchmark::State& state) {
  auto x = input();
  for (auto _ : state) {
    auto y = kTq ? tq::fake_quantize_per_tensor_affine(x, 0.05, 128, 0, 255)
                 : at::fake_quantize_per_tensor_affine(x, 0.05, 128, 0, 255);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_bytes(state);
}
BENCHMARK(FakeQuantPerTensorFwd<true>)->Name("FakeQuantPerTensorFwd/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FakeQuantPerTensorFwd<false>)->Name("FakeQuantPerTensorFwd/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

// Writing into an existing tensor, like Copy (ATen has no out= variant for fake quantization).
void FakeQuantPerTensorFwdOut(benchmark::State& state) {
  auto x = input();
  auto y = at::empty_like(x);
  for (auto _ : state) {
    tq::fake_quantize_per_tensor_affine_out(x, 0.05, 128, 0, 255, y);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_bytes(state);
}
BENCHMARK(FakeQuantPerTensorFwdOut)->Name("FakeQuantPerTensorFwdOut/tq")->Unit(benchmark::kMillisecond)->UseRealTime();

template <bool kTq>
void FakeQuantPerTensorFwdBwd(benchmark::State& state) {
  auto x = input().clone().set_requires_grad(true);
  auto dy = at::ones_like(x);
  for (auto _ : state) {
    auto y = kTq ? tq::fake_quantize_per_tensor_affine(x, 0.05, 128, 0, 255)
                 : at::fake_quantize_per_tensor_affine(x, 0.05, 128, 0, 255);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
  }
  set_bytes(state);
}
BENCHMARK(FakeQuantPerTensorFwdBwd<true>)->Name("FakeQuantPerTensorFwdBwd/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FakeQuantPerTensorFwdBwd<false>)->Name("FakeQuantPerTensorFwdBwd/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

template <bool kTq>
void FakeQuantPerChannelFwd(benchmark::State& state) {
  auto x = per_channel_input();
  auto s = channel_scale();
  auto z = channel_zero_point();
  for (auto _ : state) {
    auto y = kTq ? tq::fake_quantize_per_channel_affine(x, s, z, 0, 0, 255)
                 : at::fake_quantize_per_channel_affine(x, s, z, 0, 0, 255);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_bytes(state);
}
BENCHMARK(FakeQuantPerChannelFwd<true>)->Name("FakeQuantPerChannelFwd/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FakeQuantPerChannelFwd<false>)->Name("FakeQuantPerChannelFwd/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

template <bool kTq>
void FakeQuantPerChannelFwdBwd(benchmark::State& state) {
  auto x = per_channel_input().clone().set_requires_grad(true);
  auto s = channel_scale();
  auto z = channel_zero_point();
  auto dy = at::ones_like(x);
  for (auto _ : state) {
    auto y = kTq ? tq::fake_quantize_per_channel_affine(x, s, z, 0, 0, 255)
                 : at::fake_quantize_per_channel_affine(x, s, z, 0, 0, 255);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
  }
  set_bytes(state);
}
BENCHMARK(FakeQuantPerChannelFwdBwd<true>)->Name("FakeQuantPerChannelFwdBwd/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FakeQuantPerChannelFwdBwd<false>)->Name("FakeQuantPerChannelFwdBwd/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

// aten: the tensor operations PyTorch's MinMaxObserver.forward runs.
void MinMaxObserver_aten(benchmark::State& state) {
  auto x = input();
  auto min_val = at::scalar_tensor(INFINITY), max_val = at::scalar_tensor(-INFINITY);
  for (auto _ : state) {
    auto [mn, mx] = at::aminmax(x.detach().to(at::kFloat));
    min_val.copy_(at::min(mn, min_val));
    max_val.copy_(at::max(mx, max_val));
  }
  set_bytes(state);
}
void MinMaxObserver_tq(benchmark::State& state) {
  auto x = input();
  tq::observers::MinMaxObserver ob;
  for (auto _ : state) ob.forward(x);
  set_bytes(state);
}
BENCHMARK(MinMaxObserver_tq)->Name("MinMaxObserver/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(MinMaxObserver_aten)->Name("MinMaxObserver/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

void MovingAverageMinMaxObserver_aten(benchmark::State& state) {
  auto x = input();
  auto min_val = at::scalar_tensor(-1.0f), max_val = at::scalar_tensor(1.0f);
  for (auto _ : state) {
    auto [mn, mx] = at::aminmax(x.detach().to(at::kFloat));
    min_val.copy_(min_val + 0.01 * (mn - min_val));
    max_val.copy_(max_val + 0.01 * (mx - max_val));
  }
  set_bytes(state);
}
void MovingAverageMinMaxObserver_tq(benchmark::State& state) {
  auto x = input();
  tq::observers::MovingAverageMinMaxObserver ob;
  for (auto _ : state) ob.forward(x);
  set_bytes(state);
}
BENCHMARK(MovingAverageMinMaxObserver_tq)->Name("MovingAverageMinMaxObserver/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(MovingAverageMinMaxObserver_aten)->Name("MovingAverageMinMaxObserver/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

void PerChannelMinMaxObserver_aten(benchmark::State& state) {
  auto x = per_channel_input();
  at::Tensor min_val, max_val;
  for (auto _ : state) {
    auto y = at::flatten(x.detach().permute({0, 1}).to(at::kFloat), 1);
    auto [mn, mx] = at::aminmax(y, 1);
    if (min_val.defined()) {
      mn = at::min(mn, min_val);
      mx = at::max(mx, max_val);
    }
    min_val = mn;
    max_val = mx;
  }
  set_bytes(state);
}
void PerChannelMinMaxObserver_tq(benchmark::State& state) {
  auto x = per_channel_input();
  tq::observers::PerChannelMinMaxObserver ob;
  for (auto _ : state) ob.forward(x);
  set_bytes(state);
}
BENCHMARK(PerChannelMinMaxObserver_tq)->Name("PerChannelMinMaxObserver/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(PerChannelMinMaxObserver_aten)->Name("PerChannelMinMaxObserver/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

// Train-mode FakeQuantize forward: observe, compute qparams, fake-quantize. aten runs the
// LibTorch calls PyTorch's FakeQuantize + MovingAverageMinMaxObserver make, in the same order.
void FakeQuantizeModule_aten(benchmark::State& state) {
  auto x = input();
  auto min_val = at::scalar_tensor(INFINITY), max_val = at::scalar_tensor(-INFINITY);
  auto eps = at::full({1}, 1.1920928955078125e-07f);
  auto scale = at::ones({1}), zero_point = at::zeros({1}, at::kInt);
  for (auto _ : state) {
    auto xd = x.detach().to(at::kFloat);
    if (std::isinf(min_val.item<float>()) && std::isinf(max_val.item<float>())) {
      auto [mn, mx] = at::aminmax(xd);
      min_val.copy_(mn);
      max_val.copy_(mx);
    } else {
      auto [mn, mx] = at::aminmax(xd);
      min_val.copy_(min_val + 0.01 * (mn - min_val));
      max_val.copy_(max_val + 0.01 * (mx - max_val));
    }
    // _calculate_qparams (affine): the tensor operations in order.
    auto min_neg = at::min(min_val, at::zeros_like(min_val));
    auto max_pos = at::max(max_val, at::zeros_like(max_val));
    auto s = at::max((max_pos - min_neg) / 255.0, eps);
    auto z = at::clamp(0 - at::round(min_neg / s).to(at::kInt), 0, 255);
    scale.copy_(s);
    zero_point.copy_(z);
    auto y = at::fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_bytes(state);
}
void FakeQuantizeModule_tq(benchmark::State& state) {
  auto x = input();
  tq::fake_quant::FakeQuantize fq(tq::fake_quant::FakeQuantizeOptions().observer(
      tq::observers::with_args<tq::observers::MovingAverageMinMaxObserver>(
          tq::observers::MovingAverageMinMaxObserverOptions().quant_min(0).quant_max(255))));
  for (auto _ : state) {
    auto y = fq.forward(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_bytes(state);
}
BENCHMARK(FakeQuantizeModule_tq)->Name("FakeQuantizeModule/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FakeQuantizeModule_aten)->Name("FakeQuantizeModule/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

template <bool kTq>
void FusedMovingAvgObsFakeQuant(benchmark::State& state) {
  auto x = input();
  auto on = at::ones({1}, at::kLong);
  auto rmin = at::scalar_tensor(INFINITY), rmax = at::scalar_tensor(-INFINITY);
  auto scale = at::ones({1}), zp = at::zeros({1}, at::kInt);
  for (auto _ : state) {
    auto y = kTq ? tq::fake_quant::fused_moving_avg_obs_fake_quant(x, on, on, rmin, rmax, scale, zp, 0.01, 0, 255, 0,
                                                                   false, false)
                 : at::fused_moving_avg_obs_fake_quant(x, on, on, rmin, rmax, scale, zp, 0.01, 0, 255, 0, false, false);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_bytes(state);
}
BENCHMARK(FusedMovingAvgObsFakeQuant<true>)->Name("FusedMovingAvgObsFakeQuant/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FusedMovingAvgObsFakeQuant<false>)->Name("FusedMovingAvgObsFakeQuant/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

template <bool kTq>
void LearnablePerTensorFwdBwd(benchmark::State& state) {
  auto x = input().clone().set_requires_grad(true);
  auto scale = at::full({1}, 0.05f).set_requires_grad(true);
  auto zp = at::full({1}, 128.0f).set_requires_grad(true);
  auto dy = at::ones_like(x);
  const double gf = 1.0 / std::sqrt(static_cast<double>(kNumel) * 255);
  for (auto _ : state) {
    auto y = kTq ? tq::fake_quantize_learnable_per_tensor_affine(x, scale, zp, 0, 255, gf)
                 : at::_fake_quantize_learnable_per_tensor_affine(x, scale, zp, 0, 255, gf);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
    scale.mutable_grad().reset();
    zp.mutable_grad().reset();
  }
  set_bytes(state);
}
BENCHMARK(LearnablePerTensorFwdBwd<true>)->Name("LearnablePerTensorFwdBwd/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(LearnablePerTensorFwdBwd<false>)->Name("LearnablePerTensorFwdBwd/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

template <bool kTq>
void LearnablePerChannelFwdBwd(benchmark::State& state) {
  auto x = per_channel_input().clone().set_requires_grad(true);
  auto scale = channel_scale().clone().set_requires_grad(true);
  auto zp = channel_zero_point().to(at::kFloat).set_requires_grad(true);
  auto dy = at::ones_like(x);
  const double gf = 1.0 / std::sqrt(static_cast<double>(kNumel) * 255);
  for (auto _ : state) {
    auto y = kTq ? tq::fake_quantize_learnable_per_channel_affine(x, scale, zp, 0, 0, 255, gf)
                 : at::_fake_quantize_learnable_per_channel_affine(x, scale, zp, 0, 0, 255, gf);
    y.backward(dy);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
    scale.mutable_grad().reset();
    zp.mutable_grad().reset();
  }
  set_bytes(state);
}
BENCHMARK(LearnablePerChannelFwdBwd<true>)->Name("LearnablePerChannelFwdBwd/tq")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(LearnablePerChannelFwdBwd<false>)->Name("LearnablePerChannelFwdBwd/aten")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  const int threads = tq::bench::configure_process();
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("allocation", "glibc heap only (M_MMAP_MAX=0, no trim): freed buffers are reused");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
