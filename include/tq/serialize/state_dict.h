#pragma once
// state_dicts of tq modules (PyTorch's names and shapes) and the file format both sides read:
// the zip archive torch.save writes. In Python:
//   torch.save(dict(observer.state_dict()), "obs.pt")      # a plain dict: LibTorch's unpickler
//   observer.load_state_dict(torch.load("obs.pt"))         #  does not restore OrderedDict
// PyTorch 1.13 reads a versionless dict as a pre-1.7 per-channel state (min_vals/max_vals); there,
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

// torch.save-compatible file I/O. Writing goes to a temporary file renamed into place, so an
// existing file is never left half-written.
void save_state_dict_file(const StateDict& state, const std::string& path);
void save_state_dict_file(const torch::nn::Module& module, const std::string& path);
StateDict read_state_dict_file(const std::string& path);
void load_state_dict_file(torch::nn::Module& module, const std::string& path, bool strict = true);

}  // namespace tq::serialize
