#pragma once
// What a PackedWeight holds in the libtorch-quantized backend: the engine's packed-params object
// (also what an int8 TorchScript graph keeps as a module attribute).
#include <ATen/core/ivalue.h>

#include "tq/kernels/int8_backend.h"

namespace tq::kernels::int8 {

inline constexpr const char* kLibTorchQuantized = "libtorch-quantized";

struct LibTorchPacked : PackedWeight::Handle {
  c10::IValue value;
  bool four_bit = false;  // embeddings: which lookup op reads it
};

inline PackedWeight wrap_packed(c10::IValue value, bool four_bit = false) {
  auto h = std::make_shared<LibTorchPacked>();
  h->backend = kLibTorchQuantized;
  h->value = std::move(value);
  h->four_bit = four_bit;
  return PackedWeight(std::move(h));
}

// A convolution's: the geometry it was packed with goes along (graph mode repacks with it).
struct ConvPacked : LibTorchPacked {
  ConvGeometry geometry;
};

// The engine's object; throws when another backend packed `w`.
const LibTorchPacked& libtorch_packed(const PackedWeight& w, const char* op);

}  // namespace tq::kernels::int8
