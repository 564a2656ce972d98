#pragma once
// Golden data written by PyTorch. Two kinds:
// - golden(): pure numerics (observers, fake quantization, qparams on stored inputs), committed in
//   tests/golden/ and the same on every machine;
// - machine_golden(): values that depend on float kernels (activations, conv outputs, training
//   losses), which differ in their last bits between CPUs, ISA caps and thread counts. PyTorch
//   writes them at test time on the machine that runs the tests (the GoldenHere.* ctest fixtures
//   run the tools/gen_golden_*.py generators into the build tree), so tq is compared bit for bit
//   with PyTorch on the same machine.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include "tq/core/torch_version.h"
#include <functional>
#include <string>

namespace tq::testing {

std::string golden_path(const std::string& file);
// Parsed once per process.
const nlohmann::json& golden(const std::string& file);
std::string machine_golden_path(const std::string& file);
const nlohmann::json& machine_golden(const std::string& file);
// {"shape", "data", "dtype"} -> tensor (float32, or int32 / int64 as written).
at::Tensor to_tensor(const nlohmann::json& j);
// Plain list + shape -> float32 tensor.
at::Tensor float_tensor(const nlohmann::json& data, const std::vector<int64_t>& shape);

// Bit-exact comparison (after converting `actual` to expected's dtype); -0.0 equals 0.0.
::testing::AssertionResult tensors_equal(const at::Tensor& actual, const at::Tensor& expected);
// Runs fn, which must throw a c10::Error whose message contains `needle`.
void expect_error(const std::function<void()>& fn, const std::string& needle);

// The warnings (TORCH_WARN) fn raises, in order.
std::vector<std::string> capture_warnings(const std::function<void()>& fn);

::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected, double rtol,
                                         double atol);

// machine_golden() data is written by Debian's PyTorch 1.13 (its torchvision rebuilds the models).
// On a LibTorch 2.x build that is another version's float kernels (convolutions, linears, int8
// requantization, transcendental functions), which may differ in the last bits: bit-exact claims
// hold within one version, and across versions the tests state their bound.
constexpr bool kMachineGoldenFromOtherLibTorch = TQ_TORCH_VERSION_AT_LEAST(2, 0);
// Bit for bit within one LibTorch version; across versions, within a few float32 ulps of the
// largest value: |actual - expected| <= 1e-6 * (|expected| + max|expected|).
::testing::AssertionResult tensors_match_reference(const at::Tensor& actual, const at::Tensor& expected);
// The same for one scale: equal within one version, within 1e-6 relative across versions.
bool scale_matches_reference(double actual, double expected);

}  // namespace tq::testing
