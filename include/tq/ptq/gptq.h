#pragma once
// GPTQ (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers"): a Linear layer's 4- or 8-bit group-wise weights chosen column by
// column against its calibration inputs. Each column is rounded, and its rounding error, weighted
// by the inverse Hessian, is spread over the columns not yet quantized; later blocks of columns
// take the updates once per block (lazy batch updates). H = 2/n * sum x x^T over the layer's n
// calibration inputs (tokens), damped by `damp` times its mean diagonal; an input that is always 0
// gets its weights set to 0.
//
// Group qparams (tq/numerics/groupwise_weight.h, GPTQ's quantizer) are chosen when quantization
// reaches a group's first column, from the group's weights as updated so far. Blocks are 128
// columns when 128 and the group size divide one another, else one group; a group larger than a
// block starts at a block's start. (The authors' code takes a group's qparams from the weights as
// they were at the start of its block: the same for groups of 128 or more, and slightly staler for
// smaller groups.) tools/gptq_reference.py is tq's algorithm in PyTorch, written from the paper;
// tests/test_gptq.cpp compares the integers.
#include <ATen/core/Tensor.h>

#include <string>

#include "tq/core/options.h"
#include "tq/numerics/groupwise_weight.h"

namespace tq::ptq {

struct GptqOptions {
  TQ_OPTION(GptqOptions, int64_t, bits) = 4;
  TQ_OPTION(GptqOptions, int64_t, group_size) = 128;
  TQ_OPTION(GptqOptions, double, damp) = 0.01;  // fraction of H's mean diagonal added to it
  // Columns in decreasing order of H's diagonal (the authors' --act-order), with static groups:
  // each group's qparams from the weights before any update (AutoGPTQ's static_groups), so the
  // groups stay contiguous.
  TQ_OPTION(GptqOptions, bool, act_order) = false;
};

// H of one layer, accumulated batch by batch in float32 as GPTQ accumulates it.
class GptqHessian {
 public:
  // x: float [..., in_features], every row one token.
  void add(const at::Tensor& x);
  const at::Tensor& hessian() const { return hessian_; }
  int64_t tokens() const { return tokens_; }

 private:
  at::Tensor hessian_;
  int64_t tokens_ = 0;
};

// The group-wise weight GPTQ chooses for `weight` (float [out, in]) given its Hessian. Throws,
// naming `layer`, on a group size that does not fit, on fewer calibration tokens than input
// features (H would be singular: GPTQ would fit the calibration set, not the layer), or when H is
// not positive definite even after damping.
GroupwiseWeight gptq_quantize(const at::Tensor& weight, const GptqHessian& hessian, const GptqOptions& options,
                              const std::string& layer);

}  // namespace tq::ptq
