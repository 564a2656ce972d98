// The int8 backends by name: a process-wide default and a per-thread choice.
#include <c10/util/StringUtil.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>

#include "tq/core/check.h"
#include "tq/kernels/int8_backend.h"

namespace tq::kernels::int8 {
namespace {

struct Registry {
  std::mutex mutex;  // guards the maps; the default is read without it
  std::map<std::string, std::shared_ptr<const Int8Backend>> backends;
  std::map<std::string, std::string> unavailable;  // backends tq ships that this LibTorch cannot run: why
  // Every backend ever registered stays alive, so a reference from backend() never dangles when
  // register_backend replaces one.
  std::vector<std::shared_ptr<const Int8Backend>> kept;
  std::atomic<const Int8Backend*> fallback{nullptr};
  std::string no_default;  // why fallback is null

  Registry() {
    for (auto b : {make_libtorch_quantized_backend(), make_reference_backend()}) add(b);
    if (auto why = onednn_backend_unavailable_reason(); why.empty()) {
      add(make_onednn_backend());
    } else {
      unavailable["onednn"] = why;
    }
    // The process default: TQ_INT8_BACKEND when set (as ATEN_CPU_CAPABILITY picks ATen's kernels),
    // else libtorch-quantized. With a name that is not here there is no default: every int8 call
    // that needs it fails, saying why, until set_backend() chooses one.
    std::string name = "libtorch-quantized";
    if (const char* env = std::getenv("TQ_INT8_BACKEND"); env && *env) name = env;
    if (auto it = backends.find(name); it != backends.end()) {
      fallback.store(it->second.get());
    } else {
      const auto why = unavailable.find(name);
      no_default = "TQ_INT8_BACKEND names the int8 backend '" + name + "', which " +
                   (why != unavailable.end() ? "is not available: " + why->second
                                             : "does not exist; available: " + c10::Join(", ", names()));
    }
  }

  void add(std::shared_ptr<const Int8Backend> b) {
    kept.push_back(b);
    backends[b->name()] = std::move(b);
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

// Called by every eager int8 op: no lock.
const Int8Backend& backend() {
  if (scoped) return *scoped;
  auto& r = registry();
  const auto* b = r.fallback.load(std::memory_order_acquire);
  TQ_CHECK(b != nullptr, "int8", r.no_default);
  return *b;
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
  const auto why = r.unavailable.find(name);
  TQ_CHECK(it != r.backends.end() || why == r.unavailable.end(), "int8", "the int8 backend '", name,
           "' is not available: ", why->second);
  TQ_CHECK(it != r.backends.end(), "int8", "no int8 backend '", name, "'; available: ", c10::Join(", ", r.names()));
  return it->second;
}

void set_backend(const std::string& name) {
  registry().fallback.store(find_backend(name).get(), std::memory_order_release);
}

void register_backend(std::shared_ptr<const Int8Backend> backend) {
  TQ_CHECK(backend != nullptr, "int8", "register_backend needs a backend");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto name = backend->name();
  r.unavailable.erase(name);
  if (const auto* b = r.fallback.load(); b && b->name() == name) {
    r.fallback.store(backend.get(), std::memory_order_release);
  }
  r.add(std::move(backend));
}

ScopedInt8Backend::ScopedInt8Backend(const std::string& name) : previous_(scoped) { scoped = find_backend(name); }
ScopedInt8Backend::~ScopedInt8Backend() { scoped = std::move(previous_); }

}  // namespace tq::kernels::int8
