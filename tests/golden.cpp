#include "golden.h"

#include <c10/util/Exception.h>
#include "tq/core/torch_version.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>

namespace tq::testing {

// TQ_GOLDEN_DIR in the environment reads them from another folder (a LibTorch 2.x build, whose
// golden files PyTorch 2.x writes, runs the stored 2.11 HistogramObserver cases this way).
std::string golden_path(const std::string& file) {
  const char* live = std::getenv("TQ_GOLDEN_DIR");
  return std::string(live != nullptr && *live != '\0' ? live : TQ_GOLDEN_DIR) + "/" + file;
}
std::string machine_golden_path(const std::string& file) { return std::string(TQ_MACHINE_GOLDEN_DIR) + "/" + file; }

namespace {
const nlohmann::json& parsed(const std::string& path, const char* hint) {
  static std::map<std::string, nlohmann::json> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(path);
  if (it == cache.end()) {
    std::ifstream f(path);
    if (!f.good()) throw std::runtime_error("golden file missing: " + path + hint);
    it = cache.emplace(path, nlohmann::json::parse(f)).first;
  }
  return it->second;
}
}  // namespace

const nlohmann::json& golden(const std::string& file) { return parsed(golden_path(file), ""); }
const nlohmann::json& machine_golden(const std::string& file) {
  return parsed(machine_golden_path(file), " (written by the GoldenHere.* tests: run the suite through ctest)");
}

at::Tensor float_tensor(const nlohmann::json& data, const std::vector<int64_t>& shape) {
  std::vector<float> v;
  v.reserve(data.size());
  for (const auto& e : data) v.push_back(static_cast<float>(e.get<double>()));
  return at::tensor(v, at::kFloat).reshape(shape).clone();
}

at::Tensor to_tensor(const nlohmann::json& j) {
  const auto shape = j.at("shape").get<std::vector<int64_t>>();
  const std::string dtype = j.value("dtype", "float32");
  if (dtype == "float32" || dtype == "float64") return float_tensor(j.at("data"), shape);
  std::vector<int64_t> v;
  for (const auto& e : j.at("data")) v.push_back(e.get<int64_t>());
  auto t = at::tensor(v, at::kLong).reshape(shape).clone();
  if (dtype == "int32") return t.to(at::kInt);
  return t;
}

::testing::AssertionResult tensors_equal(const at::Tensor& actual, const at::Tensor& expected) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " != expected " << expected.sizes();
  }
  const auto a = actual.to(expected.scalar_type()).contiguous();
  const auto ne = at::ne(a, expected);
  const int64_t bad = ne.sum().item<int64_t>();
  if (bad == 0) return ::testing::AssertionSuccess();
  const int64_t first = ne.flatten().nonzero()[0][0].item<int64_t>();
  return ::testing::AssertionFailure() << bad << " of " << expected.numel() << " values differ; first at "
                                       << first << ": " << a.flatten()[first].item<double>() << " vs expected "
                                       << expected.flatten()[first].item<double>();
}

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected, double rtol,
                                         double atol) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " != expected " << expected.sizes();
  }
  const auto a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  const auto err = (a - e).abs() - (e.abs() * rtol + atol);
  const double worst = err.max().item<double>();
  if (worst <= 0) return ::testing::AssertionSuccess();
  const int64_t i = err.flatten().argmax().item<int64_t>();
  return ::testing::AssertionFailure() << "value " << i << ": " << a.flatten()[i].item<double>() << " vs expected "
                                       << e.flatten()[i].item<double>() << " (rtol " << rtol << ", atol " << atol
                                       << ")";
}

namespace {
// LibTorch 2 hands the handler a c10::Warning; 1.13 its parts.
class RecordingHandler : public c10::WarningHandler {
 public:
#if TQ_TORCH_VERSION_AT_LEAST(2, 0)
  void process(const c10::Warning& warning) override { messages.push_back(warning.msg()); }
#else
  void process(const c10::SourceLocation&, const std::string& msg, const bool) override { messages.push_back(msg); }
#endif
  std::vector<std::string> messages;
};
}  // namespace

std::vector<std::string> capture_warnings(const std::function<void()>& fn) {
  RecordingHandler handler;
#if TQ_TORCH_VERSION_AT_LEAST(2, 0)
  c10::WarningUtils::WarningHandlerGuard guard(&handler);
#else
  c10::Warning::WarningHandlerGuard guard(&handler);
#endif
  fn();
  // LibTorch 2.13 warns once per process that the quantized dtypes tq's LibTorch int8 backend
  // runs on are deprecated (PyTorch issue 184982); that warning is LibTorch's, not the code's.
  std::vector<std::string> out;
  for (auto& m : handler.messages) {
    if (m.find("quantized tensor creation functions") == std::string::npos) out.push_back(std::move(m));
  }
  return out;
}

::testing::AssertionResult tensors_match_reference(const at::Tensor& actual, const at::Tensor& expected) {
  if (!kMachineGoldenFromOtherLibTorch) return tensors_equal(actual, expected);
  const double largest = expected.numel() > 0 ? expected.abs().max().item<double>() : 0.0;
  return tensors_close(actual, expected, 1e-6, 1e-6 * largest);
}

bool scale_matches_reference(double actual, double expected) {
  if (!kMachineGoldenFromOtherLibTorch) return actual == expected;
  return std::abs(actual / expected - 1.0) <= 1e-6;
}

}  // namespace tq::testing
