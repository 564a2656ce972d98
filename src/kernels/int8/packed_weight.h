#pragma once
// What PackedWeight holds in the LibTorch backend: the engine's packed-params object.
#include <ATen/core/ivalue.h>

#include "tq/core/check.h"
#include "tq/kernels/int8.h"

namespace tq::kernels::int8 {

struct PackedWeight::Handle {
  c10::IValue value;
};

inline PackedWeight wrap_packed(c10::IValue value) {
  return PackedWeight(std::make_shared<const PackedWeight::Handle>(PackedWeight::Handle{std::move(value)}));
}

}  // namespace tq::kernels::int8
