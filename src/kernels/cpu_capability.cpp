// Picks the CPU kernel copy that runs: AVX-512 (F, BW, VL, DQ), else AVX2+FMA, when the processor
// has it, else baseline, unless one is forced (cpu_capability.h).
#include <atomic>
#include <cstdlib>
#include <string>

#include "tq/core/check.h"
#include "tq/kernels/cpu_capability.h"
#include "tq/kernels/kernel_table.h"

// Each copy's table (src/kernels/kernel_copy.h).
namespace tq::kernels::cpu_default {
const KernelTable& kernel_table();
}
#if TQ_HAS_AVX2_KERNELS
namespace tq::kernels::cpu_avx2 {
const KernelTable& kernel_table();
}
namespace tq::kernels::cpu_avx512 {
const KernelTable& kernel_table();
}
#endif
namespace tq::kernels::reference {
const KernelTable& kernel_table();
}

namespace tq::kernels {
namespace {

bool processor_has_avx2() {
#if TQ_HAS_AVX2_KERNELS
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;  // not x86: CMake builds no AVX2 copy
#endif
}

bool processor_has_avx512() {
#if TQ_HAS_AVX2_KERNELS
  static const bool yes = processor_has_avx2() && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512dq");
  return yes;
#else
  return false;
#endif
}

bool available(CpuCapability c) {
  switch (c) {
    case CpuCapability::kAvx512: return processor_has_avx512();
    case CpuCapability::kAvx2: return processor_has_avx2();
    default: return true;
  }
}

constexpr const char* kNames = "expected default, avx2 or avx512";

CpuCapability initial_capability() {
  const char* forced = std::getenv("TQ_CPU_CAPABILITY");
  if (forced != nullptr && *forced != '\0') {
    const std::string name = forced;
    TQ_CHECK(name == "default" || name == "avx2" || name == "avx512", "TQ_CPU_CAPABILITY",
             "unknown CPU capability '", name, "' in the environment: ", kNames);
    const CpuCapability c = parse_cpu_capability(name);
    TQ_CHECK(available(c), "TQ_CPU_CAPABILITY", "'", forced, "' is not available on this processor or build");
    return c;
  }
  return available_cpu_capabilities().back();
}

std::atomic<CpuCapability>& active() {
  static std::atomic<CpuCapability> capability{initial_capability()};
  return capability;
}

}  // namespace

const char* to_string(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::kAvx512: return "avx512";
    case CpuCapability::kAvx2: return "avx2";
    default: return "default";
  }
}

CpuCapability parse_cpu_capability(const std::string& name) {
  if (name == "default") return CpuCapability::kDefault;
  if (name == "avx2") return CpuCapability::kAvx2;
  if (name == "avx512") return CpuCapability::kAvx512;
  TQ_FAIL("cpu_capability", "unknown CPU capability '", name, "': ", kNames);
  return CpuCapability::kDefault;
}

std::vector<CpuCapability> available_cpu_capabilities() {
  std::vector<CpuCapability> out{CpuCapability::kDefault};
  if (available(CpuCapability::kAvx2)) out.push_back(CpuCapability::kAvx2);
  if (available(CpuCapability::kAvx512)) out.push_back(CpuCapability::kAvx512);
  return out;
}

CpuCapability cpu_capability() { return active().load(std::memory_order_relaxed); }

void set_cpu_capability(CpuCapability capability) {
  TQ_CHECK(available(capability), "cpu_capability", "'", to_string(capability),
           "' kernels are not available on this processor or build");
  active().store(capability, std::memory_order_relaxed);
}

const KernelTable& reference_kernels() { return reference::kernel_table(); }

namespace {
const KernelTable& table_of(CpuCapability capability) {
  switch (capability) {
#if TQ_HAS_AVX2_KERNELS
    case CpuCapability::kAvx512: return cpu_avx512::kernel_table();
    case CpuCapability::kAvx2: return cpu_avx2::kernel_table();
#endif
    default: return cpu_default::kernel_table();
  }
}
}  // namespace

const KernelTable& cpu_kernels(CpuCapability capability) {
  TQ_CHECK(available(capability), "cpu_kernels", "'", to_string(capability),
           "' kernels are not available on this processor or build");
  return table_of(capability);
}

// The active copy was checked when it was chosen.
const KernelTable& cpu_kernels() { return table_of(cpu_capability()); }

}  // namespace tq::kernels

