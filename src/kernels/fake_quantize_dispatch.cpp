// Picks the kernel copy that runs: AVX-512 (F, BW, VL, DQ), else AVX2+FMA, when the processor has
// it, else baseline, unless one is forced (cpu_capability.h).
#include <atomic>
#include <cstdlib>
#include <string>

#include "tq/core/check.h"
#include "tq/kernels/cpu_capability.h"
#include "tq/kernels/fake_quantize_kernels.h"
#include "tq/kernels/weight_only_kernels.h"

#define TQ_DECLARE_KERNELS(ns)                                                                                      \
  namespace tq::kernels::ns {                                                                                       \
  void fake_quantize_per_tensor(const float*, float*, bool*, int64_t, const PerTensorQParams&);                     \
  void fake_quantize_per_channel(const float*, float*, bool*, ChannelLayout, const PerChannelQParams&);             \
  void masked_grad(const float*, const bool*, float*, int64_t);                                                     \
  void min_max(const float*, int64_t, float*, float*);                                                              \
  void min_max_per_channel(const float*, ChannelLayout, float*, float*);                                            \
  void histogram(const float*, int64_t, float, float, int64_t, float*);                                            \
  void learnable_backward_per_tensor(const float*, const float*, float*, int64_t, float, float, float, float, float, \
                                     double*, double*);                                                             \
  void learnable_backward_per_channel(const float*, const float*, float*, ChannelLayout, const float*, const float*, \
                                      float, float, float, double*, double*);                                       \
  void linear_weight_only(const float*, int64_t, const GroupwiseWeightView&, const float*, float*);                 \
  }
TQ_DECLARE_KERNELS(cpu_default)
#if TQ_HAS_AVX2_KERNELS
TQ_DECLARE_KERNELS(cpu_avx2)
TQ_DECLARE_KERNELS(cpu_avx512)
#endif

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

}  // namespace tq::kernels

#if TQ_HAS_AVX2_KERNELS
#define TQ_DISPATCH(fn, ...)                                   \
  switch (::tq::kernels::cpu_capability()) {                   \
    case CpuCapability::kAvx512: return cpu_avx512::fn(__VA_ARGS__); \
    case CpuCapability::kAvx2: return cpu_avx2::fn(__VA_ARGS__);     \
    default: return cpu_default::fn(__VA_ARGS__);                    \
  }
#else
#define TQ_DISPATCH(fn, ...) return cpu_default::fn(__VA_ARGS__)
#endif

namespace tq::kernels::cpu {

void fake_quantize_per_tensor(const float* x, float* y, bool* mask, int64_t n, const PerTensorQParams& qp) {
  TQ_DISPATCH(fake_quantize_per_tensor, x, y, mask, n, qp);
}
void fake_quantize_per_channel(const float* x, float* y, bool* mask, ChannelLayout l, const PerChannelQParams& qp) {
  TQ_DISPATCH(fake_quantize_per_channel, x, y, mask, l, qp);
}
void masked_grad(const float* dy, const bool* mask, float* dx, int64_t n) { TQ_DISPATCH(masked_grad, dy, mask, dx, n); }
void min_max(const float* x, int64_t n, float* mn, float* mx) { TQ_DISPATCH(min_max, x, n, mn, mx); }
void min_max_per_channel(const float* x, ChannelLayout l, float* mn, float* mx) {
  TQ_DISPATCH(min_max_per_channel, x, l, mn, mx);
}

void histogram(const float* x, int64_t n, float lo, float hi, int64_t bins, float* hist) {
  TQ_DISPATCH(histogram, x, n, lo, hi, bins, hist);
}

void learnable_backward_per_tensor(const float* x, const float* dy, float* dx, int64_t n, float scale, float zero_point,
                                   float quant_min, float quant_max, float grad_factor, double* dscale,
                                   double* dzero_point) {
  TQ_DISPATCH(learnable_backward_per_tensor, x, dy, dx, n, scale, zero_point, quant_min, quant_max, grad_factor, dscale,
              dzero_point);
}
void learnable_backward_per_channel(const float* x, const float* dy, float* dx, ChannelLayout layout,
                                    const float* scale, const float* zero_point, float quant_min, float quant_max,
                                    float grad_factor, double* dscale, double* dzero_point) {
  TQ_DISPATCH(learnable_backward_per_channel, x, dy, dx, layout, scale, zero_point, quant_min, quant_max, grad_factor,
              dscale, dzero_point);
}

void linear_weight_only(const float* x, int64_t rows, const GroupwiseWeightView& w, const float* bias, float* y) {
  TQ_DISPATCH(linear_weight_only, x, rows, w, bias, y);
}

}  // namespace tq::kernels::cpu
