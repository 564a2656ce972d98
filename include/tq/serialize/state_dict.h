#pragma once
// state_dicts of tq modules (PyTorch's names and shapes) and the file format both sides read:
// the zip archive torch.save writes. In Python:
//   torch.save(observer.state_dict(), "obs.pt")            # tq reads it as it is
//   observer.load_state_dict(torch.load("obs.pt"))         # a file tq wrote: a plain dict
// tq writes plain dicts (no _metadata), which PyTorch reads as versionless states; PyTorch 1.13
// takes a versionless per-channel observer state for a pre-1.7 one (min_vals/max_vals): there,
// wrap it: sd = OrderedDict(torch.load(f)); sd._metadata = {"": {"version": 3}}.
// In C++:
//   tq::serialize::load_state_dict_file(*observer, "obs.pt");
//   tq::serialize::save_state_dict_file(*observer, "obs.pt");
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}

namespace tq::serialize {

// Ordered (name, tensor) pairs: parameters then buffers of each module, children by name prefix.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

StateDict state_dict(const torch::nn::Module& module);

// Copies values into the module's parameters and buffers. Everything is checked before anything
// is written: with strict, a missing or unexpected key is an error; a shape mismatch is an error
// unless the module declares that buffer resizable (per-channel ranges). Errors name the key.
void load_state_dict(torch::nn::Module& module, const StateDict& state, bool strict = true);

// Converted (int8) modules. PyTorch's keep the weight as one quantized tensor ('weight'; Linear:
// '_packed_params._packed_params' = (weight, bias)) and the output qparams as 0-dim tensors; tq's
// keep plain tensors: weight_int8, weight_scale, weight_zero_point and [1]-shaped scale and
// zero_point. read_state_dict_file gives tq's layout for either. to_pytorch_quantized_layout gives
// the state PyTorch's converted modules load (its versionless layout: weight, bias, scale,
// zero_point; dynamic modules get scale 1 and zero point 0, as PyTorch saves them; a missing bias
// is an undefined tensor, which files hold as None).
StateDict to_pytorch_quantized_layout(const StateDict& state);
StateDict from_pytorch_quantized_layout(const StateDict& state);

// torch.save-compatible file I/O. Writing goes to a temporary file renamed into place, so an
// existing file is never left half-written.
void save_state_dict_file(const StateDict& state, const std::string& path);
void save_state_dict_file(const torch::nn::Module& module, const std::string& path);
// What save_state_dict_file writes, as bytes in memory (parse_state_dict reads them back).
std::string state_dict_bytes(const StateDict& state);
// Reads what torch.save(model.state_dict()) writes in Python (an OrderedDict with _metadata;
// Parameters; PyTorch's converted modules, see above) as well as tq's files; names legacy
// (pre-1.6) files and TorchScript archives in the error.
StateDict read_state_dict_file(const std::string& path);
// The same from a file's bytes in memory; `name` stands for the file in errors.
StateDict parse_state_dict(const std::string& bytes, const std::string& name = "<memory>");
void load_state_dict_file(torch::nn::Module& module, const std::string& path, bool strict = true);

}  // namespace tq::serialize
