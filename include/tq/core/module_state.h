#pragma once
// What tq's modules tell state_dict loading beyond their parameters and buffers (PyTorch puts
// this in each module's _load_from_state_dict).
#include <string>
#include <vector>

namespace tq {

class StatefulModule {
 public:
  virtual ~StatefulModule() = default;
  // Buffers whose shape follows the data (per-channel ranges, qparams): loading may resize them.
  virtual std::vector<std::string> resizable_buffers() const { return {}; }
  // Checks a freshly loaded state (e.g. the histogram's length) and throws on an inconsistent one.
  virtual void validate_state() const {}
  // False when the module's state now lives in another one (a batch norm folded into the weights
  // before it): state_dicts leave it out, as PyTorch's fused model has an Identity there.
  virtual bool has_state() const { return true; }
};

}  // namespace tq
