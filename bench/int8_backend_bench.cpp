// The int8 backends side by side in one process: the same plain uint8 activations and int8
// weights through each backend's Linear and 3x3 convolution ("libtorch-quantized" once per
// quantized engine, "onednn" where the LibTorch has its operators). Run with
// --benchmark_enable_random_interleaving=true so the backends interleave. Inputs are 7-bit, so no
// backend takes its saturation-safe detour on CPUs without VNNI.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <algorithm>

#include "bench_common.h"
#include "tq/kernels/int8.h"
#include "tq/kernels/int8_backend.h"
#include "tq/kernels/int8_saturation.h"

namespace {

namespace int8 = tq::kernels::int8;

struct Target {
  std::string backend, engine;
  std::string label() const { return engine.empty() ? backend : backend + "(" + engine + ")"; }
};

int8::WeightParts weight(at::IntArrayRef sizes) {
  return {at::randint(-127, 128, sizes, at::kChar), at::rand({sizes[0]}, at::kDouble) * 0.01 + 0.001,
          at::zeros({sizes[0]}, at::kLong)};
}

// Runs `op` with the target's backend (and engine) in force.
template <typename Op>
void run_on(benchmark::State& state, const Target& t, Op op) {
  const auto previous = int8::current_engine();
  if (!t.engine.empty()) int8::set_engine(t.engine);
  const auto& b = *int8::find_backend(t.backend);
  op(state, b);
  int8::set_engine(previous);
}

void linear(benchmark::State& state, const int8::Int8Backend& b, int64_t batch, int64_t in, int64_t out) {
  const int8::QTensor x{at::randint(0, 128, {batch, in}, at::kByte), 0.02, 64};
  const auto packed = b.prepack_linear(weight({out, in}), at::randn({out}));
  for (auto _ : state) benchmark::DoNotOptimize(b.linear(x, packed, 0.05, 128, false).values.data_ptr());
  state.counters["GOPS"] = benchmark::Counter(2.0 * batch * in * out * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

void conv3x3(benchmark::State& state, const int8::Int8Backend& b, int64_t batch, int64_t channels, int64_t size) {
  // channels-last input, as oneDNN's int8 convolutions produce and take it
  const int8::QTensor x{at::randint(0, 128, {batch, channels, size, size}, at::kByte)
                            .contiguous(at::MemoryFormat::ChannelsLast),
                        0.02, 64};
  const int8::ConvGeometry g{2, {1, 1}, {1, 1}, {1, 1}, 1};
  const auto packed = b.prepack_conv(weight({channels, channels, 3, 3}), at::randn({channels}), g);
  for (auto _ : state) benchmark::DoNotOptimize(b.conv(x, packed, 0.05, 128, true).values.data_ptr());
  state.counters["GOPS"] = benchmark::Counter(2.0 * batch * channels * channels * 9 * size * size *
                                                  state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

std::vector<Target> targets() {
  std::vector<Target> out;
  for (const auto& e : int8::available_engines()) {
    if (e == "onednn" || e == "x86" || e == "fbgemm") out.push_back({"libtorch-quantized", e});
  }
  const auto names = int8::available_backends();
  if (std::find(names.begin(), names.end(), "onednn") != names.end()) out.push_back({"onednn", ""});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = tq::bench::configure_process();
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("oneDNN ISA", int8::int8_isa("onednn").isa);
  at::manual_seed(0);
  for (const auto& t : targets()) {
    for (int64_t batch : {1, 16, 128}) {
      benchmark::RegisterBenchmark(("Linear768x3072/bs:" + std::to_string(batch) + "/" + t.label()).c_str(),
                                   [t, batch](benchmark::State& s) {
                                     run_on(s, t, [&](auto& st, auto& b) { linear(st, b, batch, 768, 3072); });
                                   })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
    for (int64_t batch : {1, 8}) {
      benchmark::RegisterBenchmark(("Conv3x3_64ch_56px/bs:" + std::to_string(batch) + "/" + t.label()).c_str(),
                                   [t, batch](benchmark::State& s) {
                                     run_on(s, t, [&](auto& st, auto& b) { conv3x3(st, b, batch, 64, 56); });
                                   })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
