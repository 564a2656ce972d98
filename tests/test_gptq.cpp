// GPTQ on one layer against tools/gptq_reference.py (written from the paper; golden data written
// on this machine by tools/gen_golden_gptq.py): the Hessian, the integers and the group qparams,
// and what GPTQ is for: a smaller error on the layer's output than rounding to nearest.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "tq/numerics/groupwise_weight.h"
#include "tq/ptq/gptq.h"

namespace {

using tq::testing::machine_golden;
using tq::testing::to_tensor;

tq::ptq::GptqHessian hessian_of(const at::Tensor& inputs, int64_t batch) {
  tq::ptq::GptqHessian h;
  for (const auto& x : inputs.split(batch)) h.add(x);
  return h;
}

TEST(Gptq, HessianEqualsTheReferences) {
  const auto& g = machine_golden("gptq.json");
  const auto h = hessian_of(to_tensor(g["inputs"]), g["batch"].get<int64_t>());
  EXPECT_EQ(h.tokens(), g["tokens"].get<int64_t>());
  const auto want = to_tensor(g["hessian"]);
  // Products summed by two BLAS builds: a relative 1e-5 of the largest entry.
  EXPECT_TRUE(tq::testing::tensors_close(h.hessian(), want, 1e-5, 1e-5 * want.abs().max().item<double>()));
}

TEST(Gptq, IntegersEqualTheReferences) {
  const auto& g = machine_golden("gptq.json");
  const auto weight = to_tensor(g["weight"]);
  const auto h = hessian_of(to_tensor(g["inputs"]), g["batch"].get<int64_t>());
  for (const auto& c : g["cases"]) {
    const auto bits = c["bits"].get<int64_t>(), group = c["group_size"].get<int64_t>();
    const bool act_order = c["act_order"].get<bool>();
    const auto w = tq::ptq::gptq_quantize(
        weight, h, tq::ptq::GptqOptions().bits(bits).group_size(group).act_order(act_order), "fc");
    const auto q = tq::unpack_groupwise(w.packed, bits, w.in_features).to(at::kLong);
    const auto want = to_tensor(c["q"]).to(at::kLong);
    // Two LAPACKs' Cholesky factors differ in their last bits, which may flip a rounding and, through
    // the error feedback, a few more: the bound is 99.9% equal.
    const double equal = at::eq(q, want).to(at::kDouble).mean().item<double>();
    EXPECT_GE(equal, 0.999) << bits << " bits, group " << group << ", act order " << act_order;
    EXPECT_LE((q - want).abs().max().item<int64_t>(), 1) << bits << " bits, group " << group;
    EXPECT_TRUE(tq::testing::tensors_close(w.scales, to_tensor(c["scales"]), 1e-4, 0)) << bits << "/" << group;
    const double zero_points_equal =
        at::eq(w.zero_points, to_tensor(c["zero_points"])).to(at::kDouble).mean().item<double>();
    EXPECT_GE(zero_points_equal, 0.99) << bits << " bits, group " << group;
    std::cout << bits << "-bit, group " << group << (act_order ? ", act order" : "") << ": " << 100 * equal
              << "% of the integers equal the reference's\n";
  }
}

TEST(Gptq, BeatsRoundToNearestOnTheLayersOutput) {
  const auto& g = machine_golden("gptq.json");
  const auto weight = to_tensor(g["weight"]);
  const auto x = to_tensor(g["inputs"]);
  const auto h = hessian_of(x, g["batch"].get<int64_t>());
  auto output_error = [&](const tq::GroupwiseWeight& w) {
    return (x.matmul((weight - tq::dequantize_groupwise(w)).t())).pow(2).sum().item<double>();
  };
  for (int64_t bits : {4, 8}) {
    const double gptq = output_error(tq::ptq::gptq_quantize(weight, h, tq::ptq::GptqOptions().bits(bits), "fc"));
    const double nearest = output_error(tq::quantize_weight_groupwise(weight, bits, 128));
    const double act_order =
        output_error(tq::ptq::gptq_quantize(weight, h, tq::ptq::GptqOptions().bits(bits).act_order(true), "fc"));
    EXPECT_LT(act_order, 0.5 * nearest) << bits << " bits, act order";
    // The reference measured a third of round-to-nearest's squared error at both widths.
    EXPECT_LT(gptq, 0.5 * nearest) << bits << " bits";
  }
}

TEST(Gptq, BadInputIsRefusedNamingTheLayer) {
  const auto& g = machine_golden("gptq.json");
  const auto weight = to_tensor(g["weight"]);
  const auto x = to_tensor(g["inputs"]);
  const auto few = hessian_of(x.narrow(0, 0, 100), 100);
  tq::testing::expect_error([&] { tq::ptq::gptq_quantize(weight, few, {}, "encoder.0.fc"); },
                            "[gptq] 'encoder.0.fc': 100 calibration tokens for 384 input features; GPTQ needs at "
                            "least as many tokens as input features");
  const auto h = hessian_of(x, 100);
  tq::testing::expect_error([&] { tq::ptq::gptq_quantize(weight, h, tq::ptq::GptqOptions().group_size(256), "fc"); },
                            "[gptq] 'fc': the group size 256 does not divide the 384 input features");
  tq::testing::expect_error([&] { tq::ptq::gptq_quantize(weight.narrow(1, 0, 256), h, {}, "fc"); },
                            "[gptq] 'fc': no calibration inputs of 256 features were seen");
}

}  // namespace
