#include "tq/nn/conv_nd.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <sstream>
#include <variant>

#include "tq/core/check.h"

namespace tq::nn {

using std::get;
using std::holds_alternative;

namespace {
const char* const kSpatialDims[] = {", L", ", H, W", ", D, H, W"};
}  // namespace

template <size_t D>
ConvNdImpl<D>::ConvNdImpl(std::string name, const torch::nn::ConvOptions<D>& o)
    : WeightedModule(std::move(name)), options_(o) {
  const std::string& op = this->name();
  TQ_CHECK(o.in_channels() > 0 && o.out_channels() > 0 && o.groups() > 0 && o.in_channels() % o.groups() == 0 &&
               o.out_channels() % o.groups() == 0,
           op, "in_channels (", o.in_channels(), ") and out_channels (", o.out_channels(),
           ") must be positive multiples of groups (", o.groups(), ")");
  TQ_CHECK(holds_alternative<torch::enumtype::kZeros>(o.padding_mode()), op, "only zero padding is supported");
  TQ_CHECK(holds_alternative<torch::ExpandingArray<D>>(o.padding()), op, "give padding as numbers");
  std::vector<int64_t> shape{o.out_channels(), o.in_channels() / o.groups()};
  double fan_in = static_cast<double>(o.in_channels() / o.groups());
  for (size_t i = 0; i < D; ++i) {
    shape.push_back((*o.kernel_size())[i]);
    fan_in *= (*o.kernel_size())[i];
  }
  weight_ = register_parameter("weight", at::empty(shape));
  torch::nn::init::kaiming_uniform_(weight_, std::sqrt(5));
  if (o.bias()) {
    bias_ = register_parameter("bias", at::empty({o.out_channels()}));
    torch::nn::init::uniform_(bias_, -1.0 / std::sqrt(fan_in), 1.0 / std::sqrt(fan_in));
  }
}

template <size_t D>
std::vector<int64_t> ConvNdImpl<D>::stride() const {
  return std::vector<int64_t>(options_.stride()->begin(), options_.stride()->end());
}
template <size_t D>
std::vector<int64_t> ConvNdImpl<D>::padding() const {
  const auto& p = get<torch::ExpandingArray<D>>(options_.padding());
  return std::vector<int64_t>(p->begin(), p->end());
}
template <size_t D>
std::vector<int64_t> ConvNdImpl<D>::dilation() const {
  return std::vector<int64_t>(options_.dilation()->begin(), options_.dilation()->end());
}

template <size_t D>
at::Tensor ConvNdImpl<D>::float_op(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const {
  TQ_CHECK(x.dim() == static_cast<int64_t>(D) + 2 && x.size(1) == options_.in_channels(), name(), "input must be (N, ",
           options_.in_channels(), kSpatialDims[D - 1], "), got ", x.sizes());
  if constexpr (D == 1) {
    return at::conv1d(x, weight, bias, stride(), padding(), dilation(), options_.groups());
  } else if constexpr (D == 2) {
    return at::conv2d(x, weight, bias, stride(), padding(), dilation(), options_.groups());
  } else {
    return at::conv3d(x, weight, bias, stride(), padding(), dilation(), options_.groups());
  }
}

template <size_t D>
kernels::int8::PackedWeight ConvNdImpl<D>::prepack(const at::Tensor& weight_q,
                                                   const c10::optional<at::Tensor>& bias) const {
  return kernels::int8::prepack_conv(D, weight_q, bias, stride(), padding(), dilation(), options_.groups());
}

template <size_t D>
at::Tensor ConvNdImpl<D>::int8_op(const at::Tensor& x_q, double scale, int64_t zero_point) const {
  TQ_CHECK(x_q.dim() == static_cast<int64_t>(D) + 2 && x_q.size(1) == options_.in_channels(), name(),
           "input must be (N, ", options_.in_channels(), kSpatialDims[D - 1], "), got ", x_q.sizes());
  return kernels::int8::conv(D, x_q, packed_, scale, zero_point, relu_);
}

template <size_t D>
std::string ConvNdImpl<D>::describe() const {
  std::ostringstream s;
  s << options_.in_channels() << ", " << options_.out_channels() << ", kernel_size=" << options_.kernel_size()
    << ", stride=" << options_.stride() << ", padding=" << c10::IntArrayRef(padding()) << ", groups=" << options_.groups();
  return s.str();
}

template class ConvNdImpl<1>;
template class ConvNdImpl<2>;
template class ConvNdImpl<3>;

}  // namespace tq::nn
