#pragma once
// One checking macro for user input: the message starts with the operation's name and goes on
// with the offending values, e.g. "[MinMaxObserver] quant_min (5) must be <= quant_max (3)".
// It throws tq::Error; never use assert() on user input.
#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <string>
#include <utility>

namespace tq {

// What tq throws on bad input: a c10::Error, so code that catches LibTorch's errors catches tq's,
// whose what() is the message alone, one line, without the C++ backtrace LibTorch appends.
class Error : public c10::Error {
 public:
  explicit Error(std::string message) : c10::Error(std::move(message), {}) {}
  const char* what() const noexcept override { return msg().c_str(); }
};

}  // namespace tq

#define TQ_CHECK(cond, op, ...)                                         \
  do {                                                                  \
    if (C10_UNLIKELY(!(cond))) {                                        \
      throw ::tq::Error(::c10::str("[", op, "] ", __VA_ARGS__));        \
    }                                                                   \
  } while (false)

// Where no condition is left to test (a switch's default, a rethrow with context): throws the
// same one-line "[op] message" error.
#define TQ_FAIL(op, ...) throw ::tq::Error(::c10::str("[", op, "] ", __VA_ARGS__))
