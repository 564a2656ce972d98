// Weight-only Linear at LLM sizes against fp32 and against the memory's bandwidth, in one process:
// tq's 4- and 8-bit group-wise kernel (group 128), fp32 at::linear (LibTorch's BLAS), and a
// parallel memcpy of as many bytes as the packed 4-bit weight. Weights and the copy's source
// rotate through copies that together exceed the caches, so every run reads from memory, as a
// decoder that streams its layers does. Counter "GB/s": weight bytes read (or copied) per second.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.h"
#include "tq/kernels/int8_weight_only.h"

namespace {

constexpr int64_t kGroup = 128;
constexpr int64_t kRotationBytes = int64_t{512} << 20;  // well beyond any L3 here

int64_t copies_for(int64_t bytes) { return std::max<int64_t>(2, kRotationBytes / bytes); }

// Random packed integers and qparams: the kernel's speed does not depend on the values.
std::vector<tq::GroupwiseWeight> weights(int64_t out, int64_t in, int64_t bits) {
  const int64_t bytes = out * in * bits / 8;
  std::vector<tq::GroupwiseWeight> all;
  for (int64_t c = 0; c < copies_for(bytes); ++c) {
    all.push_back({at::randint(0, 256, {out, in * bits / 8}, at::kByte), at::rand({out, in / kGroup}) * 0.01f,
                   at::randint(0, 1 << bits, {out, in / kGroup}).to(at::kFloat), bits, kGroup, in});
  }
  return all;
}

void weight_only(benchmark::State& state, int64_t out, int64_t in, int64_t batch, int64_t bits) {
  const auto all = weights(out, in, bits);
  const auto x = at::randn({batch, in});
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(tq::kernels::linear_weight_only(x, all[i], c10::nullopt).data_ptr());
    i = (i + 1) % all.size();
  }
  state.counters["GB/s"] = benchmark::Counter(double(out * in * bits / 8) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

void fp32(benchmark::State& state, int64_t out, int64_t in, int64_t batch) {
  std::vector<at::Tensor> all;
  for (int64_t c = 0; c < copies_for(out * in * 4); ++c) all.push_back(at::randn({out, in}));
  const auto x = at::randn({batch, in});
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(at::linear(x, all[i]).data_ptr());
    i = (i + 1) % all.size();
  }
  state.counters["GB/s"] = benchmark::Counter(double(out * in * 4) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

// The bandwidth limit: the packed 4-bit weight's bytes copied by as many threads as the kernel
// uses, 64 KiB at a time into a small per-task buffer that stays in the cache, so the figure is
// the memory's read bandwidth (a plain large memcpy streams its writes to memory too).
void copy_bytes(benchmark::State& state, int64_t bytes) {
  constexpr int64_t kChunk = 64 * 1024;
  const int64_t copies = copies_for(bytes);
  std::vector<uint8_t> source(static_cast<size_t>(bytes * copies), 1);
  int64_t c = 0;
  for (auto _ : state) {
    const uint8_t* from = source.data() + c * bytes;
    at::parallel_for(0, bytes / kChunk, 1, [&](int64_t begin, int64_t end) {
      std::vector<uint8_t> target(kChunk);
      for (int64_t i = begin; i < end; ++i) std::memcpy(target.data(), from + i * kChunk, kChunk);
      benchmark::DoNotOptimize(target.data());
    });
    c = (c + 1) % copies;
  }
  state.counters["GB/s"] = benchmark::Counter(double(bytes / kChunk * kChunk) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

// The same bytes only read (summed as 64-bit words): the memory's read bandwidth without memcpy's
// stores, what a kernel that only reads its weight can approach.
void read_bytes(benchmark::State& state, int64_t bytes) {
  const int64_t copies = copies_for(bytes), words = bytes / 8;
  std::vector<uint64_t> source(static_cast<size_t>(words * copies), 1);
  int64_t c = 0;
  for (auto _ : state) {
    const uint64_t* from = source.data() + c * words;
    const uint64_t total = at::parallel_reduce(
        0, words, 1 << 17, uint64_t{0},
        [&](int64_t begin, int64_t end, uint64_t sum) {
          for (int64_t i = begin; i < end; ++i) sum += from[i];
          return sum;
        },
        [](uint64_t a, uint64_t b) { return a + b; });
    benchmark::DoNotOptimize(total);
    c = (c + 1) % copies;
  }
  state.counters["GB/s"] = benchmark::Counter(double(words * 8) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = tq::bench::configure_process();
  benchmark::AddCustomContext("threads", std::to_string(threads));
  struct Shape {
    int64_t out, in;
  };
  for (const Shape s : {Shape{4096, 4096}, Shape{11008, 4096}, Shape{4096, 11008}}) {
    const std::string shape = std::to_string(s.out) + "x" + std::to_string(s.in);
    for (int64_t batch : {1, 8}) {
      const std::string tail = "/bs:" + std::to_string(batch);
      for (int64_t bits : {4, 8}) {
        benchmark::RegisterBenchmark(("Linear" + shape + tail + "/tq_w" + std::to_string(bits) + "g128").c_str(),
                                     weight_only, s.out, s.in, batch, bits)
            ->UseRealTime();
      }
      benchmark::RegisterBenchmark(("Linear" + shape + tail + "/fp32").c_str(), fp32, s.out, s.in, batch)
          ->UseRealTime();
    }
    benchmark::RegisterBenchmark(("Copy" + shape + "/w4_bytes").c_str(), copy_bytes, s.out * s.in / 2)->UseRealTime();
    benchmark::RegisterBenchmark(("Read" + shape + "/w4_bytes").c_str(), read_bytes, s.out * s.in / 2)->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
