#pragma once
// The eager workflow of torch/ao/quantization/quantize.py for models built from tq::nn modules.
// Everything works in place on the model it is given (its modules change mode, see
// tq/nn/quantizable.h); to keep a float copy, build or load a second model.
//
//   auto model = std::make_shared<Net>();             // tq::nn modules inside
//   tq::quant::fuse_modules(*model, {{"conv1", "bn1", "relu1"}});
//   auto summary = tq::quant::prepare(*model, tq::quant::QConfigMapping().set_global(
//       tq::quant::get_default_qconfig("onednn")));
//   for (auto& batch : calibration) model->forward(batch);
//   tq::quant::convert(*model);                        // int8 from here on
#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tq/quant/qconfig_mapping.h"

namespace tq::quant {

struct Summary {
  std::vector<std::string> changed;     // qualified names of modules that changed mode
  std::vector<std::string> left_float;  // modules with a qconfig but no quantized form
  std::string to_string() const;
};

// Each module's qconfig by qualified name (PyTorch's propagate_qconfig_), after the mapping's rules.
std::map<std::string, std::optional<nn::QConfig>> propagate_qconfig(torch::nn::Module& model,
                                                                    const QConfigMapping& mapping);

// Assigns qconfigs (propagate_qconfig) and attaches observers. Warns when no module got one.
// allow_list: module type names ("Linear", "Conv2d", ...) that may be prepared; empty = all.
Summary prepare(torch::nn::Module& model, const QConfigMapping& mapping,
                const std::vector<std::string>& allow_list = {});
// Modules (with a qconfig) quantize their own input and dequantize their output once converted,
// for models without stubs (PyTorch's add_quant_dequant). Call before prepare.
Summary add_quant_dequant(torch::nn::Module& model, const QConfigMapping& mapping);
// Drops the qconfigs modules keep for convert (PyTorch's remove_qconfig).
void remove_qconfig(torch::nn::Module& model);
// The same with fake quantizers for quantization-aware training (the model should be in train mode).
Summary prepare_qat(torch::nn::Module& model, const QConfigMapping& mapping);
// Observed / QAT modules become int8. Throws if nothing was prepared, or naming a module that was
// prepared but never calibrated.
Summary convert(torch::nn::Module& model, bool is_reference = false);
// prepare, run_fn(model) to calibrate, convert.
Summary quantize(torch::nn::Module& model, const QConfigMapping& mapping,
                 const std::function<void(torch::nn::Module&)>& run_fn);
// Linear modules (or those the mapping names) get int8 weights; activations stay float.
Summary quantize_dynamic(torch::nn::Module& model, const QConfigMapping& mapping =
                                                         QConfigMapping().set_global(default_dynamic_qconfig()));

// Fuses groups given by qualified names: Conv2d+BatchNorm2d(+ReLU), Conv2d+ReLU, Linear+ReLU.
// The batch norm is folded into the convolution (eval statistics) and the ReLU into the module
// before it; the folded modules then pass their input through.
// With is_qat, a batch norm stays live inside the convolution (PyTorch's ConvBn2d / ConvBnReLU2d)
// and is folded at convert; freeze_bn_stats(model) then switches them to running statistics.
void fuse_modules(torch::nn::Module& model, const std::vector<std::vector<std::string>>& groups,
                  bool is_qat = false);
void freeze_bn_stats(torch::nn::Module& model, bool freeze = true);

// Observers and fake quantizers by qualified name (PyTorch's get_observer_dict).
std::map<std::string, std::shared_ptr<torch::nn::Module>> get_observer_dict(torch::nn::Module& model);

// A converted model's state as PyTorch's converted eager model has it (weight as a quantized
// tensor, Linear's bias beside it, folded batch norms absent): in Python,
// int8_model.load_state_dict(torch.load(path)) takes it.
void save_quantized_state_dict(torch::nn::Module& model, const std::string& path);
// Reads a converted state, tq's or PyTorch's (torch.save(int8_model.state_dict())), into a float
// model built and fused as the quantized one was: modules named in the file switch to their
// quantized layout. The file is checked against the model first; a mismatch changes nothing.
void load_quantized_state_dict(torch::nn::Module& model, const std::string& path);

// Copying variants: the user's model stays untouched. C++ has no generic deep copy of a module
// tree, so `make_model` builds a fresh instance of the same architecture; the float state is copied
// into it (state_dict), then it is prepared / quantized and returned.
using ModelFactory = std::function<std::shared_ptr<torch::nn::Module>()>;
std::shared_ptr<torch::nn::Module> prepare_copy(const torch::nn::Module& model, const ModelFactory& make_model,
                                                const QConfigMapping& mapping);
std::shared_ptr<torch::nn::Module> prepare_qat_copy(const torch::nn::Module& model, const ModelFactory& make_model,
                                                    const QConfigMapping& mapping);
std::shared_ptr<torch::nn::Module> quantize_dynamic_copy(const torch::nn::Module& model,
                                                         const ModelFactory& make_model,
                                                         const QConfigMapping& mapping =
                                                             QConfigMapping().set_global(default_dynamic_qconfig()));

// Bytes of parameters and buffers (what the model takes in memory, excluding engine packing).
int64_t model_size_bytes(const torch::nn::Module& model);

}  // namespace tq::quant
