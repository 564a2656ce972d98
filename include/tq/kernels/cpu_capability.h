#pragma once
// Which compiled copy of the CPU kernels runs. Each kernel source is compiled once per
// instruction set (baseline everywhere; AVX2+FMA and AVX-512 F/BW/VL/DQ on x86); by default the
// best one the processor supports runs. Tests and benchmarks force a copy to check it against the
// scalar reference; a user can force one with the environment variable
// TQ_CPU_CAPABILITY=default|avx2|avx512, read on first use, as ATen reads ATEN_CPU_CAPABILITY.
#include <string>
#include <vector>

namespace tq::kernels {

enum class CpuCapability { kDefault, kAvx2, kAvx512 };

const char* to_string(CpuCapability capability);
// "default", "avx2" or "avx512"; anything else throws tq::Error naming the accepted values.
CpuCapability parse_cpu_capability(const std::string& name);
// The copies built into this library that this processor can run, baseline first, best last.
std::vector<CpuCapability> available_cpu_capabilities();
// The copy in use.
CpuCapability cpu_capability();
// Forces a copy for the whole process; throws tq::Error if it is not available here.
void set_cpu_capability(CpuCapability capability);

}  // namespace tq::kernels
