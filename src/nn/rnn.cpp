#include "tq/nn/rnn.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>

#include "tq/core/check.h"

namespace tq::nn {
namespace {
int64_t gate_count(RnnKind kind) { return kind == RnnKind::LSTM ? 4 : (kind == RnnKind::GRU ? 3 : 1); }
}  // namespace

RnnBase::RnnBase(std::string name, RnnKind kind, int64_t input_size, int64_t hidden_size, int64_t layers, bool cell)
    : torch::nn::Module(std::move(name)), kind_(kind), input_size_(input_size), hidden_size_(hidden_size),
      layers_(layers) {
  TQ_CHECK(input_size > 0 && hidden_size > 0 && layers > 0, this->name(), "input_size (", input_size,
           "), hidden_size (", hidden_size, ") and num_layers (", layers, ") must be positive");
  const int64_t g = gate_count(kind);
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  for (int64_t l = 0; l < layers; ++l) {
    const std::string suffix = cell ? "" : "_l" + std::to_string(l);
    RnnWeights w;
    const int64_t in = l == 0 ? input_size : hidden_size;
    w.w_ih = register_parameter("weight_ih" + suffix, at::empty({g * hidden_size, in}).uniform_(-bound, bound));
    w.w_hh = register_parameter("weight_hh" + suffix, at::empty({g * hidden_size, hidden_size}).uniform_(-bound, bound));
    w.b_ih = register_parameter("bias_ih" + suffix, at::empty({g * hidden_size}).uniform_(-bound, bound));
    w.b_hh = register_parameter("bias_hh" + suffix, at::empty({g * hidden_size}).uniform_(-bound, bound));
    weights_.push_back(w);
  }
}

at::Tensor RnnBase::input_gates(const RnnWeights& w, const at::Tensor& x) const {
  return mode_ == QuantMode::DynamicQuantized ? kernels::int8::linear_dynamic(x, w.packed_ih, /*reduce_range=*/true)
                                              : at::linear(x, w.w_ih, w.b_ih);
}

std::pair<at::Tensor, at::Tensor> RnnBase::step(const RnnWeights& w, const at::Tensor& gates_ih, const at::Tensor& h,
                                                const at::Tensor& c) const {
  const bool dyn = mode_ == QuantMode::DynamicQuantized;
  auto linear_hh = [&](const at::Tensor& in) {
    return dyn ? kernels::int8::linear_dynamic(in, w.packed_hh, /*reduce_range=*/true) : at::linear(in, w.w_hh, w.b_hh);
  };
  if (kind_ == RnnKind::LSTM) {
    const auto gates = linear_hh(h).add_(gates_ih);  // ATen's order: hh + ih
    const auto chunks = gates.chunk(4, 1);
    const auto i = chunks[0].sigmoid(), f = chunks[1].sigmoid(), g = chunks[2].tanh(), o = chunks[3].sigmoid();
    const auto cy = f * c + i * g;
    return {o * cy.tanh(), cy};
  }
  if (kind_ == RnnKind::GRU) {
    const auto gi = gates_ih.chunk(3, 1), gh = linear_hh(h).chunk(3, 1);
    const auto r = (gi[0] + gh[0]).sigmoid(), z = (gi[1] + gh[1]).sigmoid();
    const auto n = (gi[2] + r * gh[2]).tanh();
    return {n + z * (h - n), at::Tensor()};
  }
  return {(gates_ih + linear_hh(h)).tanh(), at::Tensor()};
}

void RnnBase::prepare(const QConfig&) {
  TQ_FAIL(name(), "has no static int8 form; use quantize_dynamic");
}
void RnnBase::convert(const std::string& qualified_name) {
  TQ_FAIL(qualified_name.empty() ? name() : qualified_name, "has no static int8 form; use quantize_dynamic");
}

Quantizable::InstallStep RnnBase::plan_dynamic(const QConfig& qconfig) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "quantize_dynamic needs a float module, this one is ", to_string(mode_));
  at::NoGradGuard no_grad;
  auto planned = weights_;  // shares the float tensors; only the packed weights are new
  for (auto& w : planned) {
    for (auto* pair : {&w.w_ih, &w.w_hh}) {
      auto obs = qconfig.weight();
      run_quantizer(*obs, pair->detach());
      TQ_CHECK(!is_per_channel(quantizer_qscheme(*obs)), name(), "recurrent weights are quantized per tensor");
      const auto qp = quantizer_qparams(*obs);
      const auto wq = kernels::int8::quantize_weight(*pair, qp, /*per_channel=*/false);
      const bool ih = pair == &w.w_ih;
      (ih ? w.packed_ih : w.packed_hh) = kernels::int8::prepack_linear(wq, (ih ? w.b_ih : w.b_hh).detach());
    }
  }
  return [this, planned = std::move(planned)] {
    weights_ = planned;
    mode_ = QuantMode::DynamicQuantized;
  };
}

void RnnBase::prepare_quantized_layout(bool) {
  TQ_FAIL(name(), "saving dynamic recurrent modules is not supported yet: save the float weights");
}

void RnnBase::pretty_print(std::ostream& s) const {
  s << name() << "(" << input_size_ << ", " << hidden_size_ << ", num_layers=" << layers_
    << ", mode=" << to_string(mode_) << (mode_ == QuantMode::DynamicQuantized ? ", weight=qint8 per_tensor" : "")
    << ")";
}

LSTMImpl::LSTMImpl(int64_t input_size, int64_t hidden_size, int64_t num_layers, bool batch_first)
    : RnnBase("LSTM", RnnKind::LSTM, input_size, hidden_size, num_layers, false), batch_first_(batch_first) {}

std::tuple<at::Tensor, std::tuple<at::Tensor, at::Tensor>> LSTMImpl::forward(const at::Tensor& input) {
  TQ_CHECK(input.dim() == 3 && input.size(2) == input_size_, name(), "input must be 3-D with ", input_size_,
           " features, got ", input.sizes());
  auto x = batch_first_ ? input.transpose(0, 1) : input;
  const int64_t steps = x.size(0), batch = x.size(1);
  std::vector<at::Tensor> hs, cs;
  for (const auto& w : weights_) {
    auto h = at::zeros({batch, hidden_size_}), c = at::zeros({batch, hidden_size_});
    const auto ih = input_gates(w, x.contiguous());
    std::vector<at::Tensor> outs;
    for (int64_t t = 0; t < steps; ++t) {
      std::tie(h, c) = step(w, ih[t], h, c);
      outs.push_back(h);
    }
    x = at::stack(outs);
    hs.push_back(h);
    cs.push_back(c);
  }
  return {batch_first_ ? x.transpose(0, 1) : x, {at::stack(hs), at::stack(cs)}};
}

GRUImpl::GRUImpl(int64_t input_size, int64_t hidden_size, int64_t num_layers, bool batch_first)
    : RnnBase("GRU", RnnKind::GRU, input_size, hidden_size, num_layers, false), batch_first_(batch_first) {}

std::tuple<at::Tensor, at::Tensor> GRUImpl::forward(const at::Tensor& input) {
  TQ_CHECK(input.dim() == 3 && input.size(2) == input_size_, name(), "input must be 3-D with ", input_size_,
           " features, got ", input.sizes());
  auto x = batch_first_ ? input.transpose(0, 1) : input;
  const int64_t steps = x.size(0), batch = x.size(1);
  std::vector<at::Tensor> hs;
  for (const auto& w : weights_) {
    auto h = at::zeros({batch, hidden_size_});
    const auto ih = input_gates(w, x.contiguous());
    std::vector<at::Tensor> outs;
    for (int64_t t = 0; t < steps; ++t) {
      h = step(w, ih[t], h, at::Tensor()).first;
      outs.push_back(h);
    }
    x = at::stack(outs);
    hs.push_back(h);
  }
  return {batch_first_ ? x.transpose(0, 1) : x, at::stack(hs)};
}

std::tuple<at::Tensor, at::Tensor> LSTMCellImpl::forward(const at::Tensor& x, const at::Tensor& h, const at::Tensor& c) {
  const auto [hy, cy] = step(weights_[0], input_gates(weights_[0], x), h, c);
  return {hy, cy};
}

at::Tensor GRUCellImpl::forward(const at::Tensor& x, const at::Tensor& h) {
  return step(weights_[0], input_gates(weights_[0], x), h, {}).first;
}
at::Tensor RNNCellImpl::forward(const at::Tensor& x, const at::Tensor& h) {
  return step(weights_[0], input_gates(weights_[0], x), h, {}).first;
}

}  // namespace tq::nn
