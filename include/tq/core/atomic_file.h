#pragma once
// Files the user owns are never left half-written: `write` fills a temporary file beside the
// target (beside a symlink's target, so the link stays a link), which is renamed over the target
// once complete and removed if anything fails.
#include <functional>
#include <string>

namespace tq {

// Throws tq::Error naming `op` and `path` when the directory is missing, `path` is a directory,
// or writing or renaming fails; the target is then as it was.
void write_atomically(const std::string& path, const char* op, const std::function<void(const std::string& tmp)>& write);

}  // namespace tq
