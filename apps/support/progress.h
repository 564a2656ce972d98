#pragma once
// A one-line progress bar on stderr: "label [=====>    ] 12/32".
#include <cstdint>
#include <string>

namespace tq::apps {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  void update(int64_t done);
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
};

}  // namespace tq::apps
