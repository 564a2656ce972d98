#include "tq/nn/embedding.h"

#include <ATen/ATen.h>

#include <sstream>

#include "tq/core/check.h"

namespace tq::nn {

EmbeddingBase::EmbeddingBase(std::string name, int64_t num_embeddings, int64_t embedding_dim)
    : torch::nn::Module(std::move(name)), num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {
  TQ_CHECK(num_embeddings > 0 && embedding_dim > 0, this->name(), "num_embeddings (", num_embeddings,
           ") and embedding_dim (", embedding_dim, ") must be positive");
  weight_ = register_parameter("weight", at::randn({num_embeddings, embedding_dim}));
}

void EmbeddingBase::prepare(const QConfig& qconfig) {
  TQ_CHECK(mode_ == QuantMode::Float, name(), "already prepared (", to_string(mode_), ")");
  auto probe = qconfig.weight();
  TQ_CHECK(quantizer_qscheme(*probe) == QScheme::PerChannelAffineFloatQParams, name(),
           "embeddings need per-row float qparams (float_qparams_weight_only_qconfig), qconfig '", qconfig.name,
           "' gives ", to_string(quantizer_qscheme(*probe)));
  const auto dtype = quantizer_dtype(*probe);
  TQ_CHECK(dtype == QDType::QUInt8 || dtype == QDType::QUInt4x2, name(), "embedding rows are quint8 or quint4x2, got ",
           to_string(dtype));
  qconfig_ = qconfig;
  mode_ = QuantMode::Observed;
}

void EmbeddingBase::convert(const std::string& qualified_name) {
  const std::string& who = qualified_name.empty() ? name() : qualified_name;
  TQ_CHECK(qconfig_.has_value(), who, "convert needs a prepared embedding");
  auto obs = qconfig_->weight();
  run_quantizer(*obs, weight_.detach());
  const auto qp = quantizer_qparams(*obs);
  four_bit_ = quantizer_dtype(*obs) == QDType::QUInt4x2;
  packed_ = kernels::int8::prepack_embedding(weight_, qp, four_bit_);
  mode_ = QuantMode::Quantized;
}

void EmbeddingBase::prepare_quantized_layout(bool /*dynamic*/) {
  TQ_FAIL(name(), "saving quantized embeddings is not supported yet: save the float weights and convert again");
}

void EmbeddingBase::pretty_print(std::ostream& s) const {
  s << name() << "(" << num_embeddings_ << ", " << embedding_dim_ << ", mode=" << to_string(mode_);
  if (mode_ == QuantMode::Quantized) s << ", weight=" << (four_bit_ ? "quint4x2" : "quint8") << " rows";
  s << ")";
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& indices) {
  if (mode_ == QuantMode::Quantized) return kernels::int8::embedding(packed_, indices);
  return at::embedding(weight_, indices);
}

at::Tensor EmbeddingBagImpl::forward(const at::Tensor& indices, const at::Tensor& offsets,
                                     const at::Tensor& per_sample_weights) {
  TQ_CHECK(indices.dim() == 2 || offsets.defined(), name(), "1-D indices need offsets");
  at::Tensor idx = indices, off = offsets;
  if (indices.dim() == 2) {
    off = at::arange(0, indices.numel(), indices.size(1), indices.options().dtype(at::kLong));
    idx = indices.flatten();
  }
  const int64_t mode = static_cast<int64_t>(mode_kind_);
  if (mode_ == QuantMode::Quantized) {
    return kernels::int8::embedding_bag(packed_, idx.to(at::kLong), off.to(at::kLong), mode,
                                        per_sample_weights.defined() ? c10::optional<at::Tensor>(per_sample_weights)
                                                                     : c10::nullopt,
                                        false);
  }
  return std::get<0>(at::embedding_bag(weight_, idx, off, false, mode, false, per_sample_weights));
}

}  // namespace tq::nn
