// The int8 backends by name: a process-wide default and a per-thread choice.
#include <c10/util/StringUtil.h>

#include <map>
#include <mutex>

#include "tq/core/check.h"
#include "tq/kernels/int8_backend.h"

namespace tq::kernels::int8 {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<const Int8Backend>> backends;
  std::shared_ptr<const Int8Backend> fallback;

  Registry() {
    for (auto b : {make_libtorch_quantized_backend(), make_reference_backend()}) backends[b->name()] = b;
    fallback = backends.at("libtorch-quantized");
  }

  std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& [name, b] : backends) out.push_back(name);
    return out;
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

thread_local std::shared_ptr<const Int8Backend> scoped;

}  // namespace

const PackedWeight::Handle& PackedWeight::handle() const {
  TQ_CHECK(handle_ != nullptr, "int8", "the weight was never packed (convert the module first)");
  return *handle_;
}

const Int8Backend& backend() {
  if (scoped) return *scoped;
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return *r.fallback;
}

std::vector<std::string> available_backends() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.names();
}

std::shared_ptr<const Int8Backend> find_backend(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.backends.find(name);
  TQ_CHECK(it != r.backends.end(), "int8", "no int8 backend '", name, "'; available: ", c10::Join(", ", r.names()));
  return it->second;
}

void set_backend(const std::string& name) {
  auto b = find_backend(name);
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.fallback = std::move(b);
}

void register_backend(std::shared_ptr<const Int8Backend> backend) {
  TQ_CHECK(backend != nullptr, "int8", "register_backend needs a backend");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto name = backend->name();
  if (r.fallback && r.fallback->name() == name) r.fallback = backend;
  r.backends[name] = std::move(backend);
}

ScopedInt8Backend::ScopedInt8Backend(const std::string& name) : previous_(scoped) { scoped = find_backend(name); }
ScopedInt8Backend::~ScopedInt8Backend() { scoped = std::move(previous_); }

}  // namespace tq::kernels::int8
