#include "tq/core/error_message.h"

#include <c10/util/Exception.h>

#include <sstream>
#include <vector>

namespace tq {

std::string error_message(const std::exception& e) {
  const auto* ce = dynamic_cast<const c10::Error*>(&e);
  const std::string msg = ce ? ce->what_without_backtrace() : e.what();
  std::vector<std::string> lines;
  std::istringstream in(msg);
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
  }
  if (lines.empty()) return msg;
  if (lines[0].rfind("The following operation failed in the TorchScript interpreter", 0) == 0) return lines.back();
  return lines[0];
}

}  // namespace tq
