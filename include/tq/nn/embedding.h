#pragma once
// Quantizable Embedding and EmbeddingBag: float until convert_weights_only, then rows stored in
// 8 bits (quint8) or 4 bits (quint4x2) with per-row float scale and zero point, looked up by the
// engine's embedding kernels. Qconfig: float_qparams_weight_only_qconfig(_4bit).
#include <torch/nn/pimpl.h>

#include <optional>

#include "tq/kernels/int8.h"
#include "tq/nn/quantizable.h"

namespace tq::nn {

class EmbeddingBase : public torch::nn::Module, public Quantizable {
 public:
  // Embeddings quantize their weights only: prepare records the qconfig, convert quantizes.
  void prepare(const QConfig& qconfig) override;
  void convert(const std::string& qualified_name) override;
  void prepare_quantized_layout(bool dynamic) override;
  const at::Tensor& weight() const { return weight_; }
  bool four_bit() const { return four_bit_; }
  void pretty_print(std::ostream& stream) const override;

 protected:
  EmbeddingBase(std::string name, int64_t num_embeddings, int64_t embedding_dim);
  int64_t num_embeddings_, embedding_dim_;
  at::Tensor weight_;
  std::optional<QConfig> qconfig_;
  bool four_bit_ = false;
  kernels::int8::PackedWeight packed_;
};

class EmbeddingImpl : public EmbeddingBase {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim)
      : EmbeddingBase("Embedding", num_embeddings, embedding_dim) {}
  at::Tensor forward(const at::Tensor& indices);
};
TORCH_MODULE(Embedding);

enum class EmbeddingBagMode { Sum = 0, Mean = 1, Max = 2 };

class EmbeddingBagImpl : public EmbeddingBase {
 public:
  EmbeddingBagImpl(int64_t num_embeddings, int64_t embedding_dim, EmbeddingBagMode mode = EmbeddingBagMode::Mean)
      : EmbeddingBase("EmbeddingBag", num_embeddings, embedding_dim), mode_kind_(mode) {}
  // indices 1-D with offsets (bag starts), or 2-D (one bag per row) without.
  at::Tensor forward(const at::Tensor& indices, const at::Tensor& offsets = {},
                     const at::Tensor& per_sample_weights = {});

 private:
  EmbeddingBagMode mode_kind_;
};
TORCH_MODULE(EmbeddingBag);

}  // namespace tq::nn
