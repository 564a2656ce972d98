#pragma once
// A configuration that does not fit the model it is applied to (a qconfig mapping that names a
// module the model does not have): the caller's mistake rather than the model's, which a tool
// reports as a usage error. A tq::Error, so code that catches those catches it too.
#include "tq/core/check.h"

namespace tq {

class ConfigError : public Error {
 public:
  using Error::Error;
};

}  // namespace tq

#define TQ_CHECK_CONFIG(cond, op, ...)                                   \
  do {                                                                   \
    if (C10_UNLIKELY(!(cond))) {                                         \
      throw ::tq::ConfigError(::c10::str("[", op, "] ", __VA_ARGS__));   \
    }                                                                    \
  } while (false)
