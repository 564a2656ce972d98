#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace tq::apps {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), tty_(isatty(fileno(stderr)) != 0) {}

void ProgressBar::update(int64_t done) {
  // Without a terminal (CI logs), print only the ends instead of carriage-return redraws.
  if (!tty_) return;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / total_);
  std::fprintf(stderr, "\r%-28s [", label_.c_str());
  for (int i = 0; i < kWidth; ++i) std::fputc(i < filled ? '=' : (i == filled ? '>' : ' '), stderr);
  std::fprintf(stderr, "] %lld/%lld", static_cast<long long>(done), static_cast<long long>(total_));
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (tty_) {
    update(total_);
    std::fputc('\n', stderr);
  } else {
    std::fprintf(stderr, "%-28s done (%lld)\n", label_.c_str(), static_cast<long long>(total_));
  }
}

}  // namespace tq::apps
