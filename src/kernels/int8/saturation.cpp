#include "tq/kernels/int8_saturation.h"

#include <c10/util/Exception.h>
#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <mutex>

#include "tq/kernels/int8.h"

namespace tq::kernels::int8 {
namespace {

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
constexpr bool kX86 = true;
bool cpu_has_vnni() { return __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni"); }
#else
constexpr bool kX86 = false;
bool cpu_has_vnni() { return false; }
#endif

// dnnl_cpu_isa_t bits (oneDNN 2.x and 3.x): 0x40 avx512_core_vnni (and every AVX-512 ISA above
// it: bf16, fp16, amx), 0x400 avx2_vnni (and avx2_vnni_2).
constexpr unsigned kVnniBits = 0x40 | 0x400;

std::string onednn_isa_name(unsigned isa) {
  static const std::map<unsigned, const char*> names = {
      {0x1, "sse41"},         {0x3, "avx"},          {0x7, "avx2"},
      {0x407, "avx2_vnni"},   {0xc07, "avx2_vnni_2"}, {0x27, "avx512_core"},
      {0x67, "avx512_core_vnni"}, {0xe7, "avx512_core_bf16"}, {0x1ef, "avx512_core_fp16"},
      {0x3e7, "avx512_core_amx"}, {0xfef, "avx512_core_amx_fp16"}};
  auto it = names.find(isa);
  if (it != names.end()) return it->second;
  char buf[32];
  std::snprintf(buf, sizeof buf, "isa 0x%x", isa);
  return buf;
}

// The cap a user set for oneDNN (ONEDNN_MAX_CPU_ISA, or oneDNN 2.x's DNNL_MAX_CPU_ISA), upper case.
std::string onednn_isa_cap() {
  for (const char* var : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}) {
    if (const char* v = std::getenv(var); v && *v) {
      std::string s(v);
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
      return s;
    }
  }
  return "";
}

Int8Isa decide(const std::string& engine) {
  Int8Isa r;
  r.engine = engine;
  if (engine == "qnnpack") {
    r.isa = "qnnpack (uint8 x uint8 products summed in int32)";
    return r;
  }
  if (!kX86) {
    r.isa = "not x86 (no int16 pair sums)";
    return r;
  }
  if (engine == "onednn") {
    using EffectiveIsa = int (*)();
    if (auto* f = reinterpret_cast<EffectiveIsa>(dlsym(RTLD_DEFAULT, "dnnl_get_effective_cpu_isa"))) {
      const auto isa = static_cast<unsigned>(f());
      r.vnni = (isa & kVnniBits) != 0;
      r.isa = "oneDNN " + onednn_isa_name(isa);
    } else {
      // oneDNN linked in without its symbols: the CPU's flags, within the user's cap.
      const std::string cap = onednn_isa_cap();
      const bool cap_allows_vnni = cap.empty() || cap == "ALL" || cap.find("VNNI") != std::string::npos ||
                                   cap.find("BF16") != std::string::npos || cap.find("AMX") != std::string::npos ||
                                   cap.find("FP16") != std::string::npos || cap.find("AVX10") != std::string::npos;
      r.vnni = cpu_has_vnni() && cap_allows_vnni;
      r.isa = std::string("CPU ") + (cpu_has_vnni() ? "with" : "without") + " VNNI" +
              (cap.empty() ? "" : ", oneDNN capped at " + cap);
    }
    r.saturates = !r.vnni;
  } else {
    // fbgemm, and x86 (which runs many of its convolutions on FBGEMM): FBGEMM's depthwise
    // convolutions sum uint8 x int8 pairs in int16 whatever the CPU. Measured on an AVX-512 VNNI
    // CPU: a 3x3 depthwise convolution of full-range activations 45 output steps off, and
    // mobilenet_v2 quantized with full-range activations 5 dB further from fp32 than on onednn.
    r.vnni = cpu_has_vnni();
    r.isa = std::string("FBGEMM, whose depthwise convolutions sum pairs in int16 on every CPU (CPU ") +
            (r.vnni ? "with" : "without") + " VNNI)";
    r.saturates = true;
  }
  return r;
}

}  // namespace

Int8Isa int8_isa(const std::string& engine) {
  static std::mutex mu;
  static std::map<std::string, Int8Isa> decided;
  std::lock_guard<std::mutex> lock(mu);
  auto it = decided.find(engine);
  if (it == decided.end()) it = decided.emplace(engine, decide(engine)).first;
  return it->second;
}

ActivationRangeChoice choose_activation_range(const std::string& engine, bool target_vnni) {
  if (engine == "qnnpack") return {false, "full range [0, 255]: qnnpack sums uint8 products in int32 on every CPU"};
  if (target_vnni) {
    const auto here = int8_isa(engine);
    return {false, std::string("full range [0, 255]: targeting CPUs with VNNI") +
                       (here.saturates ? " (engine " + engine + " saturates it here: " + here.isa + ")" : "")};
  }
  return {true,
          "reduced range [0, 127]: never saturates on x86 int8 kernels without VNNI, wherever the model runs (full "
          "range targets VNNI CPUs only)"};
}

bool warn_if_layers_saturate(const std::vector<std::string>& layers, const std::string& what) {
  if (layers.empty()) return false;
  const auto isa = int8_isa(current_engine());
  if (!isa.saturates) return false;
  std::string names;
  for (size_t i = 0; i < layers.size() && i < 8; ++i) names += (i ? ", " : "") + layers[i];
  if (layers.size() > 8) names += ", ... (" + std::to_string(layers.size()) + " in all)";
  TORCH_WARN(what, ": ", layers.size(), " int8 layer(s) take full-range activations [0, 255], which saturate in this "
             "machine's int8 kernels (", isa.isa, isa.vnni ? "" : ", no VNNI", ") and may give wrong results: ", names,
             ". Quantize with reduce_range (the \"x86\" qconfig, or the tq tool's default), which never saturates");
  return true;
}

}  // namespace tq::kernels::int8
