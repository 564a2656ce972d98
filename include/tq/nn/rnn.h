#pragma once
// Quantizable recurrent modules: LSTM and GRU (multi-layer, unidirectional) and LSTMCell,
// GRUCell, RNNCell. They have float and dynamic forms: quantize_dynamic gives int8 weights
// (per tensor), and every gate matrix product then runs through the int8 dynamic linear kernel,
// as PyTorch's quantized dynamic LSTM / GRU do; the gate nonlinearities stay float.
// Parameter names follow torch::nn (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0; cells:
// weight_ih, weight_hh, bias_ih, bias_hh).
#include <torch/nn/pimpl.h>

#include <tuple>
#include <vector>

#include "tq/kernels/int8.h"
#include "tq/nn/quantizable.h"

namespace tq::nn {

enum class RnnKind { LSTM, GRU, RNNTanh };

// One layer's (or one cell's) parameters and, once quantized, its packed int8 weights.
struct RnnWeights {
  at::Tensor w_ih, w_hh, b_ih, b_hh;
  kernels::int8::PackedWeight packed_ih, packed_hh;
};

class RnnBase : public torch::nn::Module, public Quantizable {
 public:
  void prepare(const QConfig& qconfig) override;
  void convert(const std::string& qualified_name) override;
  InstallStep plan_dynamic(const QConfig& qconfig) override;
  void prepare_quantized_layout(bool dynamic) override;
  void pretty_print(std::ostream& stream) const override;

 protected:
  RnnBase(std::string name, RnnKind kind, int64_t input_size, int64_t hidden_size, int64_t layers, bool cell);
  // The input projection W_ih x + b_ih, for one step or a whole sequence at once (ATen
  // projects a layer's whole input sequence in one product; dynamically quantized, that also
  // means one activation range for the sequence).
  at::Tensor input_gates(const RnnWeights& w, const at::Tensor& x) const;
  // One time step from precomputed input gates: returns the new h (and c for LSTM).
  std::pair<at::Tensor, at::Tensor> step(const RnnWeights& w, const at::Tensor& gates_ih, const at::Tensor& h,
                                         const at::Tensor& c) const;
  RnnKind kind_;
  int64_t input_size_, hidden_size_, layers_;
  std::vector<RnnWeights> weights_;
};

class LSTMImpl : public RnnBase {
 public:
  LSTMImpl(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool batch_first = false);
  // x: (T, N, input) or (N, T, input) with batch_first; returns (output, (h_n, c_n)).
  std::tuple<at::Tensor, std::tuple<at::Tensor, at::Tensor>> forward(const at::Tensor& x);

 private:
  bool batch_first_;
};
TORCH_MODULE(LSTM);

class GRUImpl : public RnnBase {
 public:
  GRUImpl(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool batch_first = false);
  std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& x);  // (output, h_n)

 private:
  bool batch_first_;
};
TORCH_MODULE(GRU);

class LSTMCellImpl : public RnnBase {
 public:
  LSTMCellImpl(int64_t input_size, int64_t hidden_size) : RnnBase("LSTMCell", RnnKind::LSTM, input_size, hidden_size, 1, true) {}
  std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& x, const at::Tensor& h, const at::Tensor& c);
};
TORCH_MODULE(LSTMCell);

class GRUCellImpl : public RnnBase {
 public:
  GRUCellImpl(int64_t input_size, int64_t hidden_size) : RnnBase("GRUCell", RnnKind::GRU, input_size, hidden_size, 1, true) {}
  at::Tensor forward(const at::Tensor& x, const at::Tensor& h);
};
TORCH_MODULE(GRUCell);

class RNNCellImpl : public RnnBase {
 public:
  RNNCellImpl(int64_t input_size, int64_t hidden_size)
      : RnnBase("RNNCell", RnnKind::RNNTanh, input_size, hidden_size, 1, true) {}
  at::Tensor forward(const at::Tensor& x, const at::Tensor& h);
};
TORCH_MODULE(RNNCell);

}  // namespace tq::nn
