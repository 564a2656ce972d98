#pragma once
// Chainable options in the LibTorch manner (torch::nn::LinearOptions(5, 2).bias(false)), for
// options structs that share fields through a CRTP base: each setter returns the most derived type.
#define TQ_OPTION(Self, T, name)                                   \
 public:                                                           \
  Self& name(const T& new_##name) {                                \
    name##_ = new_##name;                                          \
    return static_cast<Self&>(*this);                              \
  }                                                                \
  const T& name() const noexcept { return name##_; }               \
                                                                   \
 protected:                                                        \
  T name##_
