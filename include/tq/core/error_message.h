#pragma once
// One line for a user from any exception LibTorch or tq throws: no backtrace, and for
// TorchScript interpreter errors the line that says what failed (their last).
#include <exception>
#include <string>

namespace tq {

std::string error_message(const std::exception& e);

}  // namespace tq
