// The device registry and the tensor-level entry points of the float kernels.
#include "tq/kernels/tensor_kernels.h"

#include <ATen/ATen.h>

#include <array>
#include <atomic>
#include <sstream>

#include "tq/core/check.h"

namespace tq::kernels {
namespace {

const KernelTable& active_cpu_kernels() { return cpu_kernels(); }

// One slot per device type; CPU is filled from the start. Registration is rare (at start-up), so
// each slot is an atomic pointer and lookups take no lock.
using Registry = std::array<std::atomic<KernelTableGetter>, static_cast<size_t>(c10::DeviceType::COMPILE_TIME_MAX_DEVICE_TYPES)>;

Registry& registry() {
  static Registry* slots = [] {
    auto* r = new Registry();
    for (auto& slot : *r) slot.store(nullptr);
    (*r)[static_cast<size_t>(c10::DeviceType::CPU)].store(&active_cpu_kernels);
    return r;
  }();
  return *slots;
}

std::string devices_with_kernels() {
  std::ostringstream s;
  const char* sep = "";
  for (size_t i = 0; i < registry().size(); ++i) {
    if (registry()[i].load() == nullptr) continue;
    s << sep << c10::DeviceTypeName(static_cast<c10::DeviceType>(i), /*lower_case=*/true);
    sep = ", ";
  }
  return s.str();
}

at::Tensor float_input(const at::Tensor& x, const char* kernel) {
  TQ_CHECK(x.defined() && x.scalar_type() == at::kFloat, kernel, "expects a float32 tensor, got ",
           x.defined() ? std::string(c10::toString(x.scalar_type())) : std::string("an undefined tensor"));
  return x.contiguous();
}

int64_t numel(ChannelLayout l) { return l.outer * l.channels * l.inner; }

void check_layout(const at::Tensor& x, ChannelLayout layout, const char* kernel) {
  TQ_CHECK(numel(layout) == x.numel(), kernel, "layout [", layout.outer, ", ", layout.channels, ", ", layout.inner,
           "] does not cover the input's ", x.numel(), " elements");
}

at::Tensor per_channel_values(const at::Tensor& v, const at::Tensor& x, int64_t channels, const char* what,
                              const char* kernel) {
  TQ_CHECK(v.numel() == channels, kernel, what, " must hold ", channels, " values, got ", v.numel());
  return v.to(x.device(), at::kFloat).contiguous();
}

}  // namespace

void register_kernels(c10::DeviceType device, KernelTableGetter table) {
  TQ_CHECK(table != nullptr, "register_kernels", "no table given for ", device);
  registry()[static_cast<size_t>(device)].store(table);
}

void unregister_kernels(c10::DeviceType device) {
  TQ_CHECK(device != c10::DeviceType::CPU, "unregister_kernels", "the CPU kernels stay registered");
  registry()[static_cast<size_t>(device)].store(nullptr);
}

const KernelTable& kernels_for(c10::Device device, const char* op) {
  const KernelTableGetter table = registry()[static_cast<size_t>(device.type())].load(std::memory_order_acquire);
  TQ_CHECK(table != nullptr, op, "input is on ", device, ", where tq has no kernels (it has them for: ",
           devices_with_kernels(), ")");
  return table();
}

void check_kernels_exist(const at::Tensor& x, const char* op) { kernels_for(x.device(), op); }

std::pair<float, float> min_max(const at::Tensor& x) {
  const auto xc = float_input(x, "min_max");
  const auto& k = kernels_for(xc.device(), "min_max");
  if (xc.device().is_cpu()) {
    float mn, mx;
    k.min_max(xc.data_ptr<float>(), xc.numel(), &mn, &mx);
    return {mn, mx};
  }
  auto out = at::empty({2}, xc.options());
  k.min_max(xc.data_ptr<float>(), xc.numel(), out.data_ptr<float>(), out.data_ptr<float>() + 1);
  const auto host = out.cpu();
  return {host.data_ptr<float>()[0], host.data_ptr<float>()[1]};
}

std::pair<at::Tensor, at::Tensor> min_max_per_channel(const at::Tensor& x, ChannelLayout layout) {
  const auto xc = float_input(x, "min_max_per_channel");
  check_layout(xc, layout, "min_max_per_channel");
  auto mn = at::empty({layout.channels}, xc.options());
  auto mx = at::empty({layout.channels}, xc.options());
  kernels_for(xc.device(), "min_max_per_channel")
      .min_max_per_channel(xc.data_ptr<float>(), layout, mn.data_ptr<float>(), mx.data_ptr<float>());
  return {mn, mx};
}

at::Tensor histogram(const at::Tensor& x, float lo, float hi, int64_t bins) {
  const auto xc = float_input(x, "histogram");
  TQ_CHECK(lo < hi && bins > 0, "histogram", "needs lo < hi and bins > 0, got [", lo, ", ", hi, "] and ", bins);
  auto hist = at::empty({bins}, xc.options());
  kernels_for(xc.device(), "histogram").histogram(xc.data_ptr<float>(), xc.numel(), lo, hi, bins, hist.data_ptr<float>());
  return hist;
}

at::Tensor fake_quantize_per_tensor(const at::Tensor& x, const PerTensorQParams& qp, at::Tensor* mask) {
  const auto xc = float_input(x, "fake_quantize_per_tensor");
  const auto& k = kernels_for(xc.device(), "fake_quantize_per_tensor");
  at::Tensor y = at::empty(xc.sizes(), xc.options());
  bool* m = nullptr;
  if (mask) {
    *mask = at::empty(xc.sizes(), xc.options().dtype(at::kBool));
    m = mask->data_ptr<bool>();
  }
  k.fake_quantize_per_tensor(xc.data_ptr<float>(), y.data_ptr<float>(), m, xc.numel(), qp);
  return y;
}

at::Tensor fake_quantize_per_channel(const at::Tensor& x, ChannelLayout layout, const at::Tensor& scale,
                                     const at::Tensor& zero_point, float quant_min, float quant_max,
                                     bool float_zero_point, at::Tensor* mask) {
  const char* kernel = "fake_quantize_per_channel";
  const auto xc = float_input(x, kernel);
  check_layout(xc, layout, kernel);
  const auto& k = kernels_for(xc.device(), kernel);
  const auto s = per_channel_values(scale, xc, layout.channels, "scale", kernel);
  const auto z = per_channel_values(zero_point, xc, layout.channels, "zero_point", kernel);
  at::Tensor y = at::empty(xc.sizes(), xc.options());
  bool* m = nullptr;
  if (mask) {
    *mask = at::empty(xc.sizes(), xc.options().dtype(at::kBool));
    m = mask->data_ptr<bool>();
  }
  const PerChannelQParams qp{s.data_ptr<float>(), z.data_ptr<float>(), quant_min, quant_max, float_zero_point};
  k.fake_quantize_per_channel(xc.data_ptr<float>(), y.data_ptr<float>(), m, layout, qp);
  return y;
}

at::Tensor quantize_per_tensor(const at::Tensor& x, float scale, int64_t zero_point, int64_t quant_min,
                               int64_t quant_max) {
  const auto xc = float_input(x, "quantize_per_tensor");
  at::Tensor q = at::empty(xc.sizes(), xc.options().dtype(at::kLong));
  kernels_for(xc.device(), "quantize_per_tensor")
      .quantize_per_tensor(xc.data_ptr<float>(), q.data_ptr<int64_t>(), xc.numel(), scale, zero_point, quant_min,
                           quant_max);
  return q;
}

at::Tensor masked_grad(const at::Tensor& dy, const at::Tensor& mask) {
  const auto g = dy.to(at::kFloat).contiguous();
  const auto m = mask.contiguous();
  TQ_CHECK(m.scalar_type() == at::kBool && m.numel() == g.numel(), "masked_grad",
           "mask must be a bool tensor with the gradient's ", g.numel(), " elements");
  at::Tensor dx = at::empty(g.sizes(), g.options());
  kernels_for(g.device(), "masked_grad").masked_grad(g.data_ptr<float>(), m.data_ptr<bool>(), dx.data_ptr<float>(), g.numel());
  return dx;
}

LearnableGradients learnable_backward_per_tensor(const at::Tensor& x, const at::Tensor& dy, float scale,
                                                 float zero_point, float quant_min, float quant_max,
                                                 float grad_factor) {
  const char* kernel = "learnable_backward_per_tensor";
  const auto xc = float_input(x, kernel);
  const auto g = dy.to(at::kFloat).contiguous();
  TQ_CHECK(g.numel() == xc.numel(), kernel, "the gradient has ", g.numel(), " elements, the input ", xc.numel());
  LearnableGradients out{at::empty(xc.sizes(), xc.options()), at::zeros({1}, xc.options().dtype(at::kDouble)),
                         at::zeros({1}, xc.options().dtype(at::kDouble))};
  kernels_for(xc.device(), kernel)
      .learnable_backward_per_tensor(xc.data_ptr<float>(), g.data_ptr<float>(), out.dx.data_ptr<float>(), xc.numel(),
                                     scale, zero_point, quant_min, quant_max, grad_factor,
                                     out.dscale.data_ptr<double>(), out.dzero_point.data_ptr<double>());
  return out;
}

LearnableGradients learnable_backward_per_channel(const at::Tensor& x, const at::Tensor& dy, ChannelLayout layout,
                                                  const at::Tensor& scale, const at::Tensor& zero_point,
                                                  float quant_min, float quant_max, float grad_factor) {
  const char* kernel = "learnable_backward_per_channel";
  const auto xc = float_input(x, kernel);
  check_layout(xc, layout, kernel);
  const auto g = dy.to(at::kFloat).contiguous();
  TQ_CHECK(g.numel() == xc.numel(), kernel, "the gradient has ", g.numel(), " elements, the input ", xc.numel());
  const auto s = per_channel_values(scale, xc, layout.channels, "scale", kernel);
  const auto z = per_channel_values(zero_point, xc, layout.channels, "zero_point", kernel);
  LearnableGradients out{at::empty(xc.sizes(), xc.options()),
                         at::empty({layout.channels}, xc.options().dtype(at::kDouble)),
                         at::empty({layout.channels}, xc.options().dtype(at::kDouble))};
  kernels_for(xc.device(), kernel)
      .learnable_backward_per_channel(xc.data_ptr<float>(), g.data_ptr<float>(), out.dx.data_ptr<float>(), layout,
                                      s.data_ptr<float>(), z.data_ptr<float>(), quant_min, quant_max, grad_factor,
                                      out.dscale.data_ptr<double>(), out.dzero_point.data_ptr<double>());
  return out;
}

}  // namespace tq::kernels
