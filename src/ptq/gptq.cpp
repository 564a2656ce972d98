#include "tq/ptq/gptq.h"

#include <ATen/ATen.h>

#include <cmath>

#include "tq/core/check.h"
#include "tq/core/error_message.h"

namespace tq::ptq {
namespace {

constexpr int64_t kBlock = 128;

int64_t block_size_for(int64_t group_size, int64_t columns) {
  if (group_size >= columns) return kBlock;
  return kBlock % group_size == 0 || group_size % kBlock == 0 ? kBlock : group_size;
}

// The upper Cholesky factor of H^-1 (damped, dead inputs made harmless), as the paper uses it.
at::Tensor inverse_hessian_factor(const at::Tensor& h, const std::string& layer) {
  try {
    const auto lower = at::linalg_cholesky(h);
    return at::linalg_cholesky(at::cholesky_inverse(lower), /*upper=*/true);
  } catch (const std::exception& e) {
    TQ_FAIL("gptq", "'", layer, "': the damped Hessian is not positive definite (", error_message(e), ")");
  }
}

}  // namespace

void GptqHessian::add(const at::Tensor& x) {
  TQ_CHECK(x.defined() && x.is_floating_point() && x.dim() >= 1, "gptq", "calibration inputs must be float");
  const auto rows = x.reshape({-1, x.size(-1)}).to(at::kFloat);
  if (!hessian_.defined()) hessian_ = at::zeros({rows.size(1), rows.size(1)});
  TQ_CHECK(rows.size(1) == hessian_.size(0), "gptq", "an input has ", rows.size(1), " features, the earlier ones ",
           hessian_.size(0));
  const int64_t m = rows.size(0);
  if (m == 0) return;
  hessian_.mul_(static_cast<float>(static_cast<double>(tokens_) / static_cast<double>(tokens_ + m)));
  tokens_ += m;
  const auto scaled = rows * static_cast<float>(std::sqrt(2.0 / static_cast<double>(tokens_)));
  hessian_.add_(scaled.t().matmul(scaled));
}

GroupwiseWeight gptq_quantize(const at::Tensor& weight, const GptqHessian& hessian, const GptqOptions& o,
                              const std::string& layer) {
  TQ_CHECK(weight.defined() && weight.dim() == 2, "gptq", "'", layer, "': the weight must be 2-D");
  const int64_t rows = weight.size(0), columns = weight.size(1);
  check_groupwise_shape(columns, o.bits(), o.group_size(), "gptq", layer);
  TQ_CHECK(hessian.hessian().defined() && hessian.hessian().size(0) == columns, "gptq", "'", layer,
           "': no calibration inputs of ", columns, " features were seen");
  TQ_CHECK(hessian.tokens() >= columns, "gptq", "'", layer, "': ", hessian.tokens(), " calibration tokens for ",
           columns, " input features; GPTQ needs at least as many tokens as input features");
  const float maxq = static_cast<float>((1 << o.bits()) - 1);
  auto w = weight.to(at::kFloat).clone();
  auto h = hessian.hessian().clone();
  const auto dead = h.diagonal() == 0;
  h.diagonal().masked_fill_(dead, 1.0f);
  w.masked_fill_(dead.unsqueeze(0), 0.0f);
  h.diagonal().add_(static_cast<float>(o.damp()) * h.diagonal().mean());

  const int64_t group = o.group_size(), groups = columns / group;
  auto q = at::zeros({rows, columns}, at::kFloat);
  auto scales = at::zeros({rows, groups});
  auto zero_points = at::zeros({rows, groups});
  // Act order: columns in decreasing order of H's diagonal (inputs with the most energy first),
  // with static groups: every group's qparams from the weights as given, so groups stay
  // contiguous in the packed layout whatever the order.
  at::Tensor order;
  if (o.act_order()) {
    groupwise_qparams(w, o.bits(), group, scales, zero_points);
    order = std::get<1>(at::sort(h.diagonal(), /*stable=*/true, /*dim=*/0, /*descending=*/true));
    w = w.index_select(1, order);
    h = h.index_select(0, order).index_select(1, order);
  }
  const auto hinv = inverse_hessian_factor(h, layer);
  const auto* original = o.act_order() ? order.data_ptr<int64_t>() : nullptr;
  const int64_t block = o.act_order() ? kBlock : block_size_for(group, columns);
  for (int64_t i1 = 0; i1 < columns; i1 += block) {
    const int64_t i2 = std::min(i1 + block, columns), count = i2 - i1;
    auto w1 = w.narrow(1, i1, count).clone();
    auto err1 = at::zeros_like(w1);
    const auto hinv1 = hinv.narrow(0, i1, count).narrow(1, i1, count);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t col = i1 + i, g = (original ? original[col] : col) / group;
      if (!original && col % group == 0) {
        // The group's weights as updated so far: inside this block, or this block and later ones.
        const auto current = col + group <= i2 ? w1.narrow(1, i, group)
                                               : at::cat({w1.narrow(1, i, count - i), w.narrow(1, i2, col + group - i2)}, 1);
        at::Tensor s, z;
        groupwise_qparams(current.contiguous(), o.bits(), group, s, z);
        scales.select(1, g).copy_(s.select(1, 0));
        zero_points.select(1, g).copy_(z.select(1, 0));
      }
      const auto s = scales.select(1, g), z = zero_points.select(1, g);
      const auto wc = w1.select(1, i);
      const auto qc = at::clamp(at::round(wc / s) + z, 0.0f, maxq);
      q.select(1, col).copy_(qc);
      const auto err = (wc - s * (qc - z)) / hinv1[i][i];
      w1.narrow(1, i, count - i).sub_(err.unsqueeze(1).matmul(hinv1.select(0, i).narrow(0, i, count - i).unsqueeze(0)));
      err1.select(1, i).copy_(err);
    }
    if (i2 < columns) w.narrow(1, i2, columns - i2).sub_(err1.matmul(hinv.narrow(0, i1, count).narrow(1, i2, columns - i2)));
  }
  if (o.act_order()) q = q.index_select(1, at::argsort(order));
  return make_groupwise_weight(q.to(at::kByte), scales, zero_points, o.bits(), group);
}

}  // namespace tq::ptq
