#pragma once
// One checking macro for user input: the message starts with the operation's name and goes on
// with the offending values, e.g. "[MinMaxObserver] quant_min (5) must be <= quant_max (3)".
// It throws c10::Error (a std::exception); never use assert() on user input.
#include <c10/util/Exception.h>

#define TQ_CHECK(cond, op, ...) TORCH_CHECK((cond), "[", op, "] ", __VA_ARGS__)
