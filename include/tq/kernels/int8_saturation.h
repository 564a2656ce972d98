#pragma once
// Where an int8 engine's uint8 x int8 products can saturate.
//
// x86 int8 kernels without VNNI (AVX2; AVX-512 before Cascade Lake and Zen 4) multiply uint8
// activations by int8 weights with vpmaddubsw, which adds each pair of products in int16 and
// saturates at 32767. With full-range activations ([0, 255]) two products reach 2 * 255 * 128 =
// 65280 and the result is silently wrong: oneDNN's inner product (Linear) does not compensate, and
// its convolutions halve the weights (a bit lost). Reduced-range activations ([0, 127], PyTorch's
// reduce_range) never saturate: 2 * 127 * 128 = 32512. VNNI (vpdpbusd) sums in int32.
//
//   if (tq::kernels::int8::int8_isa("onednn").saturates) ...   // pick reduce_range
#include <string>
#include <vector>

namespace tq::kernels::int8 {

struct Int8Isa {
  std::string engine;      // the engine asked about
  std::string isa;         // what decided, e.g. "oneDNN avx2", "oneDNN avx512_core_vnni", "CPU without VNNI"
  bool vnni = false;       // int32 accumulation of uint8 x int8 products
  bool saturates = false;  // full-range uint8 activations can overflow
};

// onednn: oneDNN's effective ISA (dnnl_get_effective_cpu_isa, which honours ONEDNN_MAX_CPU_ISA /
// DNNL_MAX_CPU_ISA; where LibTorch does not export oneDNN, the CPU's VNNI flags and those caps);
// fbgemm and x86: always (FBGEMM's depthwise convolutions sum pairs in int16 even on VNNI CPUs); qnnpack (uint8 x uint8 in int32), and every engine off
// x86: never saturates. Decided once per engine and process, as oneDNN fixes its ISA on first use.
Int8Isa int8_isa(const std::string& engine);

// The activation range a model should be quantized with so that it never saturates on any x86
// int8 path ("reduced"), unless the caller targets VNNI CPUs; and why, in one line.
struct ActivationRangeChoice {
  bool reduce_range = true;
  std::string why;
};
ActivationRangeChoice choose_activation_range(const std::string& engine, bool target_vnni);

// Warns (one TORCH_WARN) when `layers`, int8 layers that take full-range uint8 activations, is
// not empty and the engine in use saturates on this machine, naming them; `what` says who asks
// ("convert", "load_torchscript(model.pt)"). Returns whether it warned.
bool warn_if_layers_saturate(const std::vector<std::string>& layers, const std::string& what);

}  // namespace tq::kernels::int8
