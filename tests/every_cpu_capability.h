#pragma once
// A value-parameterized fixture that runs its tests once per copy of tq's CPU kernels this
// processor can run (baseline; AVX2 and AVX-512 on x86), forcing each copy in turn and restoring
// the one in use afterwards: a machine tests every copy it can run, not only the one it would pick.
#include <gtest/gtest.h>

#include <string>

#include "tq/kernels/cpu_capability.h"

namespace tq::testing {

class EveryCpuCapability : public ::testing::TestWithParam<kernels::CpuCapability> {
 protected:
  void SetUp() override {
    previous_ = kernels::cpu_capability();
    kernels::set_cpu_capability(GetParam());
  }
  void TearDown() override { kernels::set_cpu_capability(previous_); }

 private:
  kernels::CpuCapability previous_ = kernels::CpuCapability::kDefault;
};

inline std::string capability_name(const ::testing::TestParamInfo<kernels::CpuCapability>& info) {
  return kernels::to_string(info.param);
}

}  // namespace tq::testing

// Instantiates `suite` (a fixture derived from EveryCpuCapability) for every compiled copy.
#define TQ_INSTANTIATE_FOR_EVERY_CPU_CAPABILITY(suite)                                             \
  INSTANTIATE_TEST_SUITE_P(EveryCompiledCopy, suite,                                               \
                           ::testing::ValuesIn(::tq::kernels::available_cpu_capabilities()), \
                           ::tq::testing::capability_name)
