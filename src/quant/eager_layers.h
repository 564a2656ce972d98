#pragma once
// What the eager post-training algorithms (AdaRound, bias correction, equalization) share: the
// Linear / Conv modules of a model as tq::ptq::WeightedLayer, the order forward() calls them in,
// and their inputs captured from the model run float or as the int8 model would compute it.
// Not installed.
#include <ATen/core/grad_mode.h>
#include <torch/nn/module.h>

#include <optional>
#include <string>
#include <vector>

#include "tq/nn/observed_pass.h"
#include "tq/nn/weighted.h"
#include "tq/ptq/weighted_layer.h"
#include "tq/quant/forward_fn.h"

namespace tq::quant::detail {

struct EagerLayer {
  nn::WeightedModule* module = nullptr;
  ptq::WeightedLayer layer;  // weight and bias alias the module's
  std::string type;          // "Conv2d", "Linear"
};

// The module as a WeightedLayer named `name`; nullopt with the reason in `why` for modules the
// algorithms cannot describe (a QAT batch norm attached).
std::optional<ptq::WeightedLayer> describe(const nn::WeightedModule& module, const std::string& name, std::string& why);

// Puts the model in eval mode without gradients for the algorithm, and its training flag back.
class EvalScope {
 public:
  explicit EvalScope(torch::nn::Module& model);
  ~EvalScope();

 private:
  torch::nn::Module& model_;
  bool training_;
  at::NoGradGuard no_grad_;
};

// Throws, naming `op` and the observer, if the model has no observed modules or an observer
// never saw data.
void check_calibrated(torch::nn::Module& model, const char* op);

// The first n samples of `data` as one tensor; throws (naming `op`) if `data` holds fewer.
at::Tensor take_samples(const std::vector<at::Tensor>& data, int64_t n, const char* op);

// The observed Linear / Conv modules in the order `forward` first calls them on `probe`; modules
// it calls more than once, never calls, or that cannot be described go to `skipped` ("name: why").
std::vector<EagerLayer> observed_layers(torch::nn::Module& model, const ForwardFn& forward, const at::Tensor& probe,
                                        std::vector<std::string>& skipped);

// Runs `forward` on `samples` in chunks of `chunk` under `pass` and returns the inputs `module`
// receives, concatenated (each pass stops once the module has its input).
at::Tensor capture_input(const ForwardFn& forward, const at::Tensor& samples, int64_t chunk, nn::ObservedPass& pass,
                         const nn::WeightedModule& module);

}  // namespace tq::quant::detail
