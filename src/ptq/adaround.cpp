#include "tq/ptq/adaround.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <iomanip>
#include <sstream>

#include "tq/core/check.h"
#include "tq/fake_quant/adaround_fake_quantizer.h"
#include "tq/kernels/int8.h"
#include "tq/nn/qconfig.h"

namespace tq::ptq {

void AdaRoundOptions::validate() const {
  const char* op = "adaround";
  TQ_CHECK(iterations() >= 1, op, "iterations must be at least 1, got ", iterations());
  TQ_CHECK(batch_size() >= 1, op, "batch_size must be at least 1, got ", batch_size());
  TQ_CHECK(num_samples() >= 1, op, "num_samples must be at least 1, got ", num_samples());
  TQ_CHECK(reg_lambda() >= 0 && std::isfinite(reg_lambda()), op, "reg_lambda must be finite and >= 0, got ",
           reg_lambda());
  TQ_CHECK(beta_end() > 0 && beta_start() >= beta_end() && std::isfinite(beta_start()), op,
           "beta must fall from beta_start to beta_end > 0, got ", beta_start(), " -> ", beta_end());
  TQ_CHECK(warm_start() >= 0 && warm_start() < 1, op, "warm_start must be in [0, 1), got ", warm_start());
  TQ_CHECK(learning_rate() > 0 && std::isfinite(learning_rate()), op, "learning_rate must be positive, got ",
           learning_rate());
}

at::Tensor reconstruction_loss(const at::Tensor& output, const at::Tensor& target) {
  return (output - target).pow(2).sum(1).mean();
}

double adaround_beta(const AdaRoundOptions& o, int64_t it) {
  const double warm_end = o.warm_start() * static_cast<double>(o.iterations());
  const double rel = (static_cast<double>(it) - warm_end) / (static_cast<double>(o.iterations()) - warm_end);
  return o.beta_end() + 0.5 * (o.beta_start() - o.beta_end()) * (1.0 + std::cos(rel * M_PI));
}

namespace {

// Reconstruction loss over all samples, in chunks (the cache can be large).
double full_loss(const WeightedLayer& layer, const at::Tensor& w, const at::Tensor& inputs, const at::Tensor& targets) {
  constexpr int64_t kChunk = 256;
  const int64_t n = inputs.size(0);
  double total = 0;
  for (int64_t s = 0; s < n; s += kChunk) {
    const int64_t e = std::min(n, s + kChunk);
    const auto loss = reconstruction_loss(layer.forward(inputs.slice(0, s, e), w), targets.slice(0, s, e));
    total += loss.item<double>() * static_cast<double>(e - s);
  }
  return total / static_cast<double>(n);
}

}  // namespace

AdaRoundResult adaround_layer(const WeightedLayer& layer, const observers::ObserverFactory& weight_observer,
                              const at::Tensor& inputs, const at::Tensor& targets, const AdaRoundOptions& o) {
  const char* op = "adaround";
  o.validate();
  TQ_CHECK(layer.weight.defined() && layer.weight.scalar_type() == at::kFloat, op, layer.name,
           ": the weight must be float32");
  layer.check_input(inputs, op);
  TQ_CHECK(targets.defined() && targets.dim() >= 1 && targets.size(0) == inputs.size(0), op, layer.name,
           ": inputs and targets must hold the same number of samples, got ", inputs.sizes(), " and ",
           targets.sizes());
  TQ_CHECK(inputs.size(0) >= 1, op, layer.name, ": no samples");
  at::Tensor x_all = inputs.detach().to(at::kFloat).contiguous();
  at::Tensor y_all = targets.detach().to(at::kFloat).contiguous();
  const at::Tensor w = layer.weight.detach();
  {
    at::NoGradGuard no_grad;
    const auto y0 = layer.forward(x_all.slice(0, 0, 1), w);
    TQ_CHECK(y0.sizes().slice(1) == y_all.sizes().slice(1), op, layer.name, ": targets have shape ", y_all.sizes(),
             " but the layer's outputs have shape ", y0.sizes());
  }

  fake_quant::AdaroundFakeQuantizer fq(fake_quant::AdaroundFakeQuantizerOptions().observer(weight_observer));
  TQ_CHECK(!fq.is_per_channel() || fq.ch_axis() == 0, op, layer.name,
           ": per-channel weights must be quantized along axis 0, got axis ", fq.ch_axis());
  {
    at::NoGradGuard no_grad;
    fq.forward(w);  // observes: the scale, and V so that h(V) is the rounding residual
  }
  fq.disable_observer();
  fq.use_soft_rounding(false);
  at::Tensor nearest;
  {
    at::NoGradGuard no_grad;
    nearest = fq.forward(w);
  }
  fq.use_soft_rounding(true);

  at::AutoGradMode grad_mode(true);  // whatever the caller's mode: V learns by gradient
  torch::optim::Adam adam(std::vector<at::Tensor>{fq.V()}, torch::optim::AdamOptions(o.learning_rate()));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed());
  const int64_t n = x_all.size(0), b = std::min(o.batch_size(), n);
  const double warm_end = o.warm_start() * static_cast<double>(o.iterations());
  for (int64_t it = 0; it < o.iterations(); ++it) {
    const auto idx = at::randperm(n, gen, at::kLong).slice(0, 0, b);
    const auto x = x_all.index_select(0, idx), y = y_all.index_select(0, idx);
    const auto wq = fq.forward(w);
    auto loss = reconstruction_loss(layer.forward(x, wq), y);
    if (static_cast<double>(it) >= warm_end) {
      const double beta = adaround_beta(o, it);
      const auto h = fq.rectified_sigmoid();
      loss = loss + (1 - (2 * h - 1).abs().pow(beta)).sum() * o.reg_lambda();
    }
    adam.zero_grad();
    loss.backward();
    adam.step();
  }

  fq.use_soft_rounding(false);
  AdaRoundResult r;
  at::NoGradGuard no_grad;
  r.rounded_weight = fq.forward(w).detach();
  const auto qp = fq.calculate_qparams();
  r.scale = qp.scale.flatten();
  r.zero_point = qp.zero_point.flatten();
  r.weight_q = kernels::int8::quantize_weight(r.rounded_weight, {r.scale, r.zero_point.to(at::kLong)},
                                              fq.is_per_channel());
  r.changed = (r.rounded_weight != nearest).sum().item<int64_t>();
  r.loss_nearest = full_loss(layer, nearest, x_all, y_all);
  r.loss_adaround = full_loss(layer, r.rounded_weight, x_all, y_all);
  return r;
}

std::string adaround_unsupported(torch::nn::Module& weight_quantizer) {
  if (dynamic_cast<observers::ObserverBase*>(&weight_quantizer) == nullptr) return "its weight quantizer is not an observer";
  const QScheme scheme = nn::quantizer_qscheme(weight_quantizer);
  if (is_symmetric(scheme)) return "";
  return "its weights are " + to_string(scheme) + " (AdaRound rounds symmetric weights)";
}

std::string AdaRoundReport::to_string() const {
  std::ostringstream s;
  s << "AdaRound on " << layers.size() << " layer(s), " << samples << " samples, " << std::fixed
    << std::setprecision(1) << seconds << " s\n";
  for (const auto& l : layers) {
    s << "  " << std::left << std::setw(28) << (l.layer.empty() ? "(top)" : l.layer) << std::right << " "
      << std::setw(8) << l.changed << " of " << std::setw(8) << l.weights << " weights changed, loss "
      << std::scientific << std::setprecision(3) << l.loss_nearest << " -> " << l.loss_adaround << std::fixed
      << std::setprecision(1) << "  (" << l.seconds << " s)\n";
  }
  for (const auto& k : skipped) s << "  skipped " << k << "\n";
  return s.str();
}

}  // namespace tq::ptq
