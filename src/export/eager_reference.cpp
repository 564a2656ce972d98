#include "eager_reference.h"

#include <torch/csrc/jit/ir/ir.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <string>
#include <vector>

#include "tq/core/check.h"
#include "tq/kernels/int8_graph.h"
#include "tq/nn/modules.h"

namespace tq::onnx::detail {
namespace {

using torch::jit::Graph;
using torch::jit::Value;
namespace int8g = kernels::int8::graph;

constexpr const char* kOp = "onnx export";

template <size_t D>
std::vector<int64_t> to_vector(const torch::ExpandingArray<D>& a) {
  return std::vector<int64_t>(a->begin(), a->end());
}

// Writes the children one after the other, tracking whether the running value is int8 (then
// held dequantized, with its qparams) or float.
class EagerWriter {
 public:
  explicit EagerWriter(Graph& g) : g_(g) {}

  Value* child(Value* x, const std::string& name, torch::nn::Module& m) {
    name_ = name;
    if (auto* q = m.as<nn::QuantStub>()) {
      converted(*q);
      return requantize(x, q->output_scale(), q->output_zero_point());
    }
    if (m.as<nn::DeQuantStub>()) {
      int8_ = false;
      return x;
    }
    if (auto* conv = m.as<nn::Conv2d>()) {
      const auto& o = conv->options();
      return weighted(*conv, insert("aten::conv2d", {x, weight(*conv), bias(*conv), conv->stride(), conv->padding(),
                                                     conv->dilation(), o.groups()}));
    }
    if (auto* lin = m.as<nn::Linear>()) return weighted(*lin, insert("aten::linear", {x, weight(*lin), bias(*lin)}));
    if (auto* relu = m.as<nn::ReLU>()) return relu->folded() ? x : keep_qparams(insert("aten::relu", {x}));
    if (m.as<torch::nn::ReLU>()) return keep_qparams(insert("aten::relu", {x}));
    if (auto* bn = m.as<nn::BatchNorm2d>()) {
      TQ_CHECK(bn->folded(), kOp, "child '", name_, "' (BatchNorm2d) is not folded into its convolution: fuse it "
               "(tq::quant::fuse_modules) before converting");
      return x;
    }
    if (auto* pool = m.as<torch::nn::MaxPool2d>()) {
      const auto& o = pool->options;
      return keep_qparams(insert("aten::max_pool2d", {x, to_vector(o.kernel_size()), to_vector(o.stride()),
                                                      to_vector(o.padding()), to_vector(o.dilation()), o.ceil_mode()}));
    }
    if (auto* pool = m.as<torch::nn::AdaptiveAvgPool2d>()) {
      std::vector<int64_t> size;
      for (const auto& s : *pool->options.output_size()) {
        TQ_CHECK(s.has_value(), kOp, "child '", name_, "' (AdaptiveAvgPool2d): an output size of None is not exported");
        size.push_back(*s);
      }
      return keep_qparams(insert("aten::adaptive_avg_pool2d", {x, size}));
    }
    if (auto* flatten = m.as<torch::nn::Flatten>()) {
      return keep_qparams(insert("aten::flatten", {x, flatten->options.start_dim(), flatten->options.end_dim()}));
    }
    TQ_FAIL(kOp, "child '", name_, "' (", m.name(), ") has no ONNX form in tq's eager export (it takes QuantStub, "
            "DeQuantStub, Conv2d, Linear, ReLU, folded BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d and Flatten); "
            "export the model through graph mode");
  }

 private:
  Value* insert(const char* op, std::vector<torch::jit::NamedValue> args) {
    return g_.insert(c10::Symbol::fromQualString(op), args);
  }
  void converted(const nn::Quantizable& m) const {
    TQ_CHECK(m.mode() == nn::QuantMode::Quantized, kOp, "child '", name_, "' is ", nn::to_string(m.mode()),
             ", not converted to int8 (tq::quant::convert)");
  }
  Value* requantize(Value* x, double scale, int64_t zero_point) {
    int8_ = true;
    scale_ = scale;
    zero_point_ = zero_point;
    return int8g::dequantize(g_, int8g::quantize(g_, x, scale, zero_point));
  }
  // An op whose int8 form keeps its input's qparams (ReLU, pooling, flatten), as graph mode's
  // reference form writes it: quantized again with them. On float values it stays float.
  Value* keep_qparams(Value* y) { return int8_ ? requantize(y, scale_, zero_point_) : y; }

  Value* weight(const nn::WeightedModule& m) {
    converted(m);
    TQ_CHECK(int8_, kOp, "child '", name_, "' reads a float value: the int8 part must start with a QuantStub");
    return int8g::dequantize(g_, g_.insertConstant(m.quantized_weight().detach()));
  }
  Value* bias(const nn::WeightedModule& m) {
    // Detached: a graph constant may not require grad.
    return g_.insertConstant(m.bias().defined() ? c10::IValue(m.bias().detach()) : c10::IValue());
  }
  Value* weighted(const nn::WeightedModule& m, Value* y) {
    if (m.fused_relu()) y = insert("aten::relu", {y});
    return requantize(y, m.output_scale(), m.output_zero_point());
  }

  Graph& g_;
  std::string name_;
  bool int8_ = false;
  double scale_ = 1;
  int64_t zero_point_ = 0;
};

}  // namespace

torch::jit::Module eager_reference(const torch::nn::Sequential& model) {
  torch::jit::Module reference("TqEagerReference");
  reference.define("def forward(self, x):\n    return x\n");
  auto g = reference.get_method("forward").graph();
  g->eraseOutput(0);
  Value* x = g->inputs()[1];
  EagerWriter writer(*g);
  for (const auto& item : model->named_children()) x = writer.child(x, item.key(), *item.value());
  g->registerOutput(x);
  return reference;
}

}  // namespace tq::onnx::detail
