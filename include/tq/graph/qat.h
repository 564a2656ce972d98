#pragma once
// Graph-mode quantization-aware training of TorchScript models (PyTorch FX's prepare_qat_fx /
// convert_fx, on TorchScript):
//
//   auto model = tq::graph::load_torchscript("resnet18.pt");
//   auto qat = tq::graph::prepare_qat(model, tq::graph::GraphQuantizeOptions::for_backend_qat("x86"));
//   torch::optim::SGD optimizer(qat.parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
//   for (auto& [x, y] : batches) {
//     auto loss = torch::nn::functional::cross_entropy(qat.forward(x), y);
//     optimizer.zero_grad();
//     loss.backward();
//     optimizer.step();
//   }
//   torch::jit::Module int8 = qat.convert();  // the int8 TorchScript graph-mode PTQ would give
//
// How: the model is prepared as for PTQ (frozen, matched, quantization points where the graph
// quantizer observes), with the qconfig's fake quantizers at the points. Each quantized
// convolution / linear becomes a trainable tq::nn layer in QAT mode (weight fake-quantized; a 2-d
// convolution followed by batch norm trains as PyTorch's ConvBn2d: weight scaled by gamma /
// running std before fake quantization, batch statistics while training, running statistics
// updated), called from the graph through tq's `tq::qat` operator; LibTorch's interpreter runs the
// graph, and autograd records every operation. convert() writes the trained weights (batch norms
// folded with their running statistics) into the float graph, quantizes each weight with its
// trained fake quantizer, and emits the int8 graph with the points' qparams. The user's module is
// never modified.
//
// Convolutions and linears left float (a qconfig of None) train in float, as under FX. Limits:
// the graph is frozen in eval form, so dropout is not applied while training and a batch norm
// outside a quantized convolution match keeps its running statistics and affine parameters; a
// 1-d / 3-d convolution's batch norm is folded before training.
#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tq/graph/graph_quantizer.h"

namespace torch::nn {
class Module;
}

namespace tq::graph {

class QatModel {
 public:
  // Runs the training graph: fake quantization at every point, batch norms on batch statistics
  // while training (running statistics in eval mode or once frozen).
  c10::IValue forward(std::vector<c10::IValue> inputs);
  at::Tensor forward(const at::Tensor& x);

  // The trainable tensors, for torch::optim: each layer's weight and bias (quantized layers, then
  // layers left float), its batch norm's weight and bias, and learnable fake quantizers' scales
  // and zero points.
  std::vector<at::Tensor> parameters() const;
  // The same with names: "conv1.weight", "bn1.bias" (the model's own module paths),
  // "activation_post_process_3.scale" for a learnable point.
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  // Every fake quantizer: "<layer>.weight_fake_quant" for weights, "activation_post_process_<i>"
  // for the i-th quantization point in graph order (a shared one once).
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> named_fake_quantizers() const;

  // Every trainable layer, batch norm and fake quantizer as submodules of one torch::nn::Module
  // (names with '.' written '_': "layer1_0_conv1", "activation_post_process_3"): what state_dict
  // checkpoints and tq::distributed::DataParallel work on.
  torch::nn::Module& module();

  // Batch norms use batch statistics and update running ones while training (the default).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const;
  // Schedule controls, as torch.ao.nn.intrinsic.qat.freeze_bn_stats and
  // torch.ao.quantization.disable_observer / enable_fake_quant applied to the whole model.
  void freeze_bn_stats(bool freeze = true);
  void enable_observer(bool on = true);
  void enable_fake_quant(bool on = true);

  // Steps trained (forward calls while training).
  int64_t steps() const;
  // The int8 model with the trained weights and qparams (reference = float ops between
  // quantize / dequantize pairs). The QAT model is unchanged and can go on training.
  torch::jit::Module convert(bool reference = false) const;
  // Kinds, modules, qparams and what stays float.
  Summary summary() const;

  struct Impl;
  explicit QatModel(std::shared_ptr<Impl> impl);

 private:
  std::shared_ptr<Impl> impl_;
};

// Throws if the mapping gives observers instead of fake quantizers to a quantized match.
QatModel prepare_qat(const torch::jit::Module& model, const GraphQuantizeOptions& options);

}  // namespace tq::graph
