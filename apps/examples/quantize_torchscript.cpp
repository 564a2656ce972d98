// Graph-mode quantization of a TorchScript file, start to end (the README's example).
// Usage: quantize_torchscript MODEL.pt OUT.pt
#include <torch/csrc/jit/api/module.h>

#include <ATen/ATen.h>

#include <iostream>

#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8.h"

int main(int argc, char** argv) try {
  if (argc != 3) {
    std::cerr << "usage: quantize_torchscript MODEL.pt OUT.pt\n";
    return 1;
  }
  tq::kernels::int8::set_engine("onednn");
  auto model = tq::graph::load_torchscript(argv[1]);  // torch.jit.save'd in Python, scripted or traced
  // FX's default qconfig mapping for x86: activations on [0, 127], right on every x86 CPU
  // ("onednn" takes [0, 255]: more precise on VNNI CPUs, saturating without VNNI).
  auto options = tq::graph::GraphQuantizeOptions::for_backend("x86");
  options.mapping.set_module_name_none("fc");                             // keep the classifier float
  auto observed = tq::graph::prepare(model, options);                     // the user's model is untouched
  for (int i = 0; i < 8; ++i) observed.calibrate(at::randn({4, 3, 224, 224}));  // use real data here
  torch::jit::Module int8 = observed.convert();
  tq::graph::save_torchscript(int8, argv[2]);  // plain LibTorch / torch.jit.load run it
  std::cout << observed.summary().to_string();
  return 0;
} catch (const c10::Error& e) {
  std::cerr << "quantize_torchscript: " << e.what_without_backtrace() << "\n";
  return 2;
}
