#pragma once
// Quantizable modules: drop-in replacements for torch::nn modules that change mode in place.
//
// Why: a LibTorch parent's forward() calls its own typed members (conv1->forward(x)), so
// replacing a registered child the Python way (setattr) changes nothing that runs. tq's modules
// instead stay the same object and switch what they compute:
//   Float -> Observed (prepare: observers record activations)
//         -> QAT (prepare_qat: weights and activations fake-quantized while training)
//         -> Quantized (convert: int8 weights, int8 execution through tq::kernels::int8)
//         -> DynamicQuantized (quantize_dynamic: int8 weights, activations quantized on the fly)
// Parameters keep torch::nn's names (weight, bias), so float checkpoints load unchanged.
#include <torch/nn/module.h>

#include <functional>
#include <string>

#include "tq/core/module_state.h"
#include "tq/nn/qconfig.h"

namespace tq::nn {

enum class QuantMode { Float, Observed, QAT, Quantized, DynamicQuantized, Reference };
std::string to_string(QuantMode mode);

class Quantizable : public StatefulModule {
 public:
  QuantMode mode() const { return mode_; }
  // Float -> Observed. Throws if the qconfig does not fit the module.
  virtual void prepare(const QConfig& qconfig) = 0;
  // Float -> QAT; modules without a QAT form stay float (returns false).
  virtual bool prepare_qat(const QConfig& qconfig) { return false; }
  // Observed / QAT -> Quantized. Throws, naming the module, if it was never calibrated.
  virtual void convert(const std::string& qualified_name) = 0;
  // Observed / QAT -> Reference (convert with is_reference): float computation on quantized-then-
  // dequantized weights, outputs quantized and dequantized with the observed qparams (simulated
  // quantization, what PyTorch's reference modules express). Modules without one stay as they are.
  virtual bool convert_reference(const std::string& qualified_name) { return false; }
  // Float -> DynamicQuantized in two steps, so that quantize_dynamic changes nothing unless every
  // module converts: plan_dynamic computes all that can fail (the int8 weights) without touching
  // the module and returns the step that installs them; modules without a dynamic form return
  // an empty function and stay float.
  using InstallStep = std::function<void()>;
  virtual InstallStep plan_dynamic(const QConfig& qconfig) { return {}; }
  // For load_state_dict of a saved converted model: switch to Quantized (or DynamicQuantized)
  // with int8 buffers shaped as the module's weights, ready to receive the saved values.
  virtual void prepare_quantized_layout(bool dynamic) = 0;
  // False for modules that take no part in quantization right now (a batch norm folded away).
  virtual bool participates() const { return true; }
  // Observed / QAT -> Float: removes what prepare / prepare_qat attached, so that a prepare that
  // fails half-way leaves the model as it was.
  virtual void unprepare() {}
  // Forgets the qconfig kept for convert (PyTorch's remove_qconfig after convert).
  virtual void remove_qconfig() {}
  // Makes the module quantize its own float input and dequantize its output once converted, as if
  // wrapped in QuantStub / DeQuantStub (PyTorch's add_quant_dequant); false if it cannot.
  virtual bool add_quant_dequant() { return false; }

 protected:
  QuantMode mode_ = QuantMode::Float;
};

}  // namespace tq::nn
