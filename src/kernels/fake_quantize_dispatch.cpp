// Picks the kernel copy for the running CPU: AVX2+FMA when the processor has it, else baseline.
#include "tq/kernels/fake_quantize_kernels.h"

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
  }
TQ_DECLARE_KERNELS(cpu_default)
#if TQ_HAS_AVX2_KERNELS
TQ_DECLARE_KERNELS(cpu_avx2)

namespace tq::kernels::cpu {
namespace {
bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
}  // namespace
}  // namespace tq::kernels::cpu

#define TQ_DISPATCH(fn, ...) return has_avx2() ? cpu_avx2::fn(__VA_ARGS__) : cpu_default::fn(__VA_ARGS__)
#else
// Not x86 (CMake builds no AVX2 copy): the portable kernels only.
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

}  // namespace tq::kernels::cpu
