#pragma once
// A pass over an observed (prepared, not QAT) eager model on behalf of a post-training algorithm
// (tq/quant/adaround.h, tq/quant/bias_correction.h). While an ObservedPassGuard is alive on a
// thread, observed modules record nothing and compute either
//   Float:     as the float model, or
//   Simulated: as the int8 model will (outputs quantized and dequantized with their calibrated
//              qparams, weights as convert() will quantize them), with weights and biases the
//              algorithm substitutes for modules it has already processed,
// and each weighted module's input is handed to `on_input`.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <functional>
#include <unordered_map>
#include <utility>

namespace tq::nn {

class WeightedModule;

struct ObservedPass {
  enum class Kind { Float, Simulated };
  Kind kind = Kind::Float;
  // Simulated only: float weights (on the quantization grid) and biases modules compute with.
  std::unordered_map<const WeightedModule*, at::Tensor> weights, biases;
  // The input each weighted module receives (after its own input quantization, if any).
  std::function<void(const WeightedModule&, const at::Tensor&)> on_input;
  // Calibrated output qparams by observer, computed once per pass.
  mutable std::unordered_map<const torch::nn::Module*, std::pair<double, int64_t>> qparams;
};

// Makes `pass` the current thread's pass for the guard's lifetime.
class ObservedPassGuard {
 public:
  explicit ObservedPassGuard(const ObservedPass& pass);
  ~ObservedPassGuard();
  ObservedPassGuard(const ObservedPassGuard&) = delete;
  ObservedPassGuard& operator=(const ObservedPassGuard&) = delete;

 private:
  const ObservedPass* previous_;
};

// The current thread's pass, or nullptr.
const ObservedPass* current_observed_pass();

// An observed module's output through its observer: recorded (no pass), as it is (Float pass),
// or quantized and dequantized with the observer's qparams (Simulated pass).
at::Tensor observe_output(torch::nn::Module& observer, const at::Tensor& y);

}  // namespace tq::nn
