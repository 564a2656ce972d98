#include "tq/serialize/state_dict.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "tq/core/atomic_file.h"
#include "tq/core/check.h"
#include "tq/core/module_state.h"

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
  StateDict out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
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
    TQ_CHECK(!(at::isFloatingType(t.scalar_type()) && !at::isFloatingType(v.scalar_type()) &&
               v.scalar_type() != at::kBool),
             op, "type mismatch for '", k, "': the file has ", v.scalar_type(), ", the module has ", t.scalar_type());
  }
  for (const auto& [k, v] : given) {
    if (own_keys.count(k) == 0) unexpected.push_back(k);
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

void save_state_dict_file(const StateDict& state, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [k, v] : state) dict.insert(k, v.detach().cpu());
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(dict));
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

StateDict read_state_dict_file(const std::string& path) {
  const char* op = "read_state_dict_file";
  std::ifstream f(path, std::ios::binary);
  TQ_CHECK(f.good(), op, "cannot open '", path, "'");
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  TQ_CHECK(!bytes.empty(), op, "'", path, "' is empty");
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(bytes);
  } catch (const std::exception& e) {
    TQ_CHECK(false, op, "'", path, "' is not a readable torch.save file: ", e.what());
  }
  TQ_CHECK(value.isGenericDict(), op, "'", path, "' holds a ", value.tagKind(),
           ", not a dict of tensors (save dict(module.state_dict()) in Python)");
  StateDict out;
  for (const auto& entry : value.toGenericDict()) {
    TQ_CHECK(entry.key().isString(), op, "'", path, "' has a non-string key");
    const std::string key = entry.key().toStringRef();
    TQ_CHECK(entry.value().isTensor(), op, "entry '", key, "' in '", path, "' is a ", entry.value().tagKind(),
             ", not a tensor");
    out.emplace_back(key, entry.value().toTensor());
  }
  return out;
}

void load_state_dict_file(torch::nn::Module& module, const std::string& path, bool strict) {
  load_state_dict(module, read_state_dict_file(path), strict);
}

}  // namespace tq::serialize
