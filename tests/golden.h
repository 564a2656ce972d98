#pragma once
// Golden data written by PyTorch (tools/gen_golden.py, tools/gen_histogram_reference.py).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <functional>
#include <string>

namespace tq::testing {

std::string golden_path(const std::string& file);
// Parsed once per process.
const nlohmann::json& golden(const std::string& file);
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

}  // namespace tq::testing
