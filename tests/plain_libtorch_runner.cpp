// Links LibTorch only (not tq): proves that an int8 model written by tq's graph mode is plain
// TorchScript. Usage: plain_libtorch_runner MODEL.pt INPUT.pt EXPECTED.pt ENGINE
// Exit 0 when the output equals the expected one bit for bit.
#include <torch/script.h>

#include <fstream>
#include <iostream>
#include <iterator>

namespace {
at::Tensor load_tensor(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(bytes).toTensor();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: plain_libtorch_runner MODEL.pt INPUT.pt EXPECTED.pt ENGINE\n";
    return 2;
  }
  const std::string engine = argv[4];
  at::globalContext().setQEngine(engine == "qnnpack" ? at::QEngine::QNNPACK : at::QEngine::ONEDNN);
  auto model = torch::jit::load(argv[1]);
  torch::NoGradGuard no_grad;
  const auto out = model.forward({load_tensor(argv[2])}).toTensor();
  const auto expected = load_tensor(argv[3]);
  if (!out.sizes().equals(expected.sizes()) || !at::equal(out, expected)) {
    std::cerr << "output differs from tq's: max abs difference "
              << (out.sizes().equals(expected.sizes()) ? (out - expected).abs().max().item<double>() : -1.0) << "\n";
    return 1;
  }
  std::cout << "plain LibTorch ran " << argv[1] << ": output equal to tq's\n";
  return 0;
}
