#include "tq/serialize/state_dict.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "tq/core/atomic_file.h"
#include "tq/core/check.h"
#include "tq/core/module_state.h"
#include "torch_save_reader.h"

namespace tq::serialize {
namespace {

// Calls fn(prefix, module) for the module itself and every submodule that is a StatefulModule.
// (named_modules() with include_self needs the root in a shared_ptr; a module on the stack is fine here.)
template <class Fn>
void for_each_stateful(const torch::nn::Module& module, Fn fn) {
  if (const auto* self = dynamic_cast<const StatefulModule*>(&module)) fn(std::string(), *self);
  for (const auto& item : module.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    if (const auto* m = dynamic_cast<const StatefulModule*>(item.value().get())) fn(item.key() + ".", *m);
  }
}

// Prefixes ("bn.") of modules whose state lives elsewhere (has_state() false).
std::vector<std::string> stateless_prefixes(const torch::nn::Module& module) {
  std::vector<std::string> prefixes;
  for_each_stateful(module, [&](const std::string& prefix, const StatefulModule& m) {
    if (!m.has_state()) prefixes.push_back(prefix);
  });
  return prefixes;
}

bool under_any(const std::string& key, const std::vector<std::string>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& p) { return key.compare(0, p.size(), p) == 0; });
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Which entries of the module may change shape on load, by full key.
std::set<std::string> resizable_keys(const torch::nn::Module& module) {
  std::set<std::string> keys;
  for_each_stateful(module, [&](const std::string& prefix, const StatefulModule& m) {
    for (const auto& b : m.resizable_buffers()) keys.insert(prefix + b);
  });
  return keys;
}

}  // namespace

StateDict state_dict(const torch::nn::Module& module) {
  const auto skip = stateless_prefixes(module);
  StateDict out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (!under_any(p.key(), skip)) out.emplace_back(p.key(), p.value());
  }
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    if (!under_any(b.key(), skip)) out.emplace_back(b.key(), b.value());
  }
  return out;
}

void load_state_dict(torch::nn::Module& module, const StateDict& state, bool strict) {
  const char* op = "load_state_dict";
  std::map<std::string, at::Tensor> given;
  for (const auto& [k, v] : state) {
    TQ_CHECK(v.defined(), op, "entry '", k, "' holds no tensor");
    given[k] = v;
  }
  StateDict own = state_dict(module);
  const auto resizable = resizable_keys(module);
  // Check everything first: a failed load leaves the module as it was.
  std::vector<std::string> missing, unexpected;
  std::set<std::string> own_keys;
  for (const auto& [k, t] : own) {
    own_keys.insert(k);
    auto it = given.find(k);
    if (it == given.end()) {
      missing.push_back(k);
      continue;
    }
    const at::Tensor& v = it->second;
    TQ_CHECK(v.sizes() == t.sizes() || resizable.count(k) > 0, op, "size mismatch for '", k,
             "': the file has shape ", v.sizes(), ", the module has shape ", t.sizes());
    TQ_CHECK(!v.is_quantized(), op, "'", k, "' is a quantized tensor: PyTorch's converted layout goes through "
             "from_pytorch_quantized_layout (read_state_dict_file does it)");
    TQ_CHECK(!(at::isFloatingType(t.scalar_type()) && !at::isFloatingType(v.scalar_type()) &&
               v.scalar_type() != at::kBool),
             op, "type mismatch for '", k, "': the file has ", v.scalar_type(), ", the module has ", t.scalar_type());
  }
  // Files from before a batch norm was folded carry its (now unused) state: ignored.
  const auto skip = stateless_prefixes(module);
  for (const auto& [k, v] : given) {
    if (own_keys.count(k) == 0 && !under_any(k, skip)) unexpected.push_back(k);
  }
  if (strict) {
    TQ_CHECK(missing.empty(), op, "missing key(s) in state_dict: ", c10::Join(", ", missing));
    TQ_CHECK(unexpected.empty(), op, "unexpected key(s) in state_dict: ", c10::Join(", ", unexpected));
  }
  at::NoGradGuard no_grad;
  // The modules validate their new state (qparams, packing) last; if one refuses it, every
  // tensor gets its old shape and values back, and the modules their old state.
  std::vector<std::pair<at::Tensor, at::Tensor>> previous;
  for (auto& [k, t] : own) {
    auto it = given.find(k);
    if (it == given.end()) continue;
    previous.emplace_back(t, t.clone());
    if (t.sizes() != it->second.sizes()) t.resize_(it->second.sizes());
    t.copy_(it->second);
  }
  try {
    for_each_stateful(module, [](const std::string&, const StatefulModule& m) { m.validate_state(); });
  } catch (...) {
    for (auto& [t, old] : previous) {
      if (t.sizes() != old.sizes()) t.resize_(old.sizes());
      t.copy_(old);
    }
    for_each_stateful(module, [](const std::string&, const StatefulModule& m) { m.validate_state(); });
    throw;
  }
}

namespace {
// torch::jit::pickle_save tags typed dicts with torch.jit._pickle.restore_type_tag, a global that
// PyTorch 2.x's torch.load refuses by default (weights_only=True). States are pickled untagged:
// plain dicts, which torch.load of every version reads.
std::vector<char> pickle_untagged(const c10::IValue& value) {
  std::vector<char> pickle_data;
  torch::jit::Pickler pickler(
      [&](const char* buf, size_t n) { pickle_data.insert(pickle_data.end(), buf, buf + n); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::vector<char> bytes;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    const char* b = static_cast<const char*>(data);
    bytes.insert(bytes.end(), b, b + n);
    return n;
  });
  torch::jit::writeArchiveAndTensors("data", pickle_data.data(), pickle_data.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  return bytes;
}
}  // namespace

namespace {
std::vector<char> pickle_state_dict(const StateDict& state) {
  // An undefined tensor is written as None (PyTorch's converted modules without bias save that).
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  for (const auto& [k, v] : state) dict.insert(k, v.defined() ? c10::IValue(v.detach().cpu()) : c10::IValue());
  return pickle_untagged(c10::IValue(dict));
}
}  // namespace

std::string state_dict_bytes(const StateDict& state) {
  const auto bytes = pickle_state_dict(state);
  return std::string(bytes.begin(), bytes.end());
}

void save_state_dict_file(const StateDict& state, const std::string& path) {
  const std::vector<char> bytes = pickle_state_dict(state);
  write_atomically(path, "save_state_dict_file", [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    TQ_CHECK(f.good(), "save_state_dict_file", "cannot open '", tmp, "' for writing");
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    TQ_CHECK(f.good(), "save_state_dict_file", "writing '", tmp, "' failed");
  });
}

void save_state_dict_file(const torch::nn::Module& module, const std::string& path) {
  save_state_dict_file(state_dict(module), path);
}

namespace {
StateDict to_state_dict(const detail::TorchSaveContents& contents, const std::string& path, const char* op) {
  const c10::IValue& value = contents.value;
  TQ_CHECK(value.isGenericDict(), op, "'", path, "' holds a ", value.tagKind(),
           ", not a state_dict (a dict of tensors: save model.state_dict())");
  const std::string packed_suffix = "._packed_params._packed_params", dtype_suffix = "._packed_params.dtype";
  StateDict out;
  for (const auto& entry : value.toGenericDict()) {
    TQ_CHECK(entry.key().isString(), op, "'", path, "' has a key that is a ", entry.key().tagKind(), ", not a string");
    const std::string key = entry.key().toStringRef();
    const c10::IValue& v = entry.value();
    // PyTorch's quantized Linear: (weight, bias) and the weight's dtype in its packed parameters.
    if (ends_with(key, packed_suffix)) {
      const std::string prefix = key.substr(0, key.size() - packed_suffix.size());
      TQ_CHECK(v.isTuple() && v.toTupleRef().elements().size() == 2 && v.toTupleRef().elements()[0].isTensor(), op,
               "entry '", key, "' in '", path, "' is a ", v.tagKind(), ", not the (weight, bias) of a quantized Linear");
      const auto& wb = v.toTupleRef().elements();
      out.emplace_back(prefix + ".weight", wb[0].toTensor());
      if (!wb[1].isNone()) {
        TQ_CHECK(wb[1].isTensor(), op, "entry '", key, "' in '", path, "' has a ", wb[1].tagKind(), " for its bias");
        out.emplace_back(prefix + ".bias", wb[1].toTensor());
      }
      continue;
    }
    if (ends_with(key, dtype_suffix)) {
      TQ_CHECK(v.isString() && v.toStringRef() == "torch.qint8", op, "entry '", key, "' in '", path, "' is ",
               v.isString() ? v.toStringRef() : v.tagKind(), ": tq reads int8 packed weights (torch.qint8)");
      continue;
    }
    if (v.isNone()) continue;  // a converted module's missing bias
    TQ_CHECK(v.isTensor(), op, "entry '", key, "' in '", path, "' is a ", v.tagKind(), ", not a tensor");
    out.emplace_back(key, v.toTensor());
  }
  return from_pytorch_quantized_layout(out);
}
}  // namespace

StateDict read_state_dict_file(const std::string& path) {
  const char* op = "read_state_dict_file";
  return to_state_dict(detail::read_torch_save(path, op), path, op);
}

StateDict parse_state_dict(const std::string& bytes, const std::string& name) {
  const char* op = "parse_state_dict";
  return to_state_dict(detail::parse_torch_save(bytes, name, op), name, op);
}

void load_state_dict_file(torch::nn::Module& module, const std::string& path, bool strict) {
  load_state_dict(module, read_state_dict_file(path), strict);
}

}  // namespace tq::serialize
