#pragma once
// Process-wide settings every benchmark run states: thread count and allocation policy.
#include <ATen/Parallel.h>
#include <malloc.h>

#include <cstdlib>
#include <string>

namespace tq::bench {

// LibTorch starts with one thread here; benchmarks use TQ_BENCH_THREADS (default 2).
// Allocation policy: glibc maps large buffers fresh on every call (2.5 GB/s for a 64 MiB clone:
// page faults), which would hide kernel speed. glibc caps M_MMAP_THRESHOLD at 32 MiB, so the
// benchmarks turn mmap off (M_MMAP_MAX = 0) and trimming off: freed buffers stay in the heap and
// both tq and ATen reuse them, as a caching allocator would.
inline int configure_process() {
  const char* env = std::getenv("TQ_BENCH_THREADS");
  const int threads = env ? std::atoi(env) : 2;
  at::set_num_threads(threads);
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  return threads;
}

}  // namespace tq::bench
