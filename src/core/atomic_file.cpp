#include "tq/core/atomic_file.h"

#include <filesystem>

#include "tq/core/check.h"
#include "tq/core/error_message.h"

namespace tq {

namespace fs = std::filesystem;

void write_atomically(const std::string& path, const char* op, const std::function<void(const std::string& tmp)>& write) {
  std::error_code ec;
  TQ_CHECK(!path.empty(), op, "no output path given");
  TQ_CHECK(!fs::is_directory(path, ec), op, path, " is a directory");
  const auto target = fs::is_symlink(path, ec) ? fs::weakly_canonical(path, ec) : fs::path(path);
  const auto parent = target.parent_path();
  TQ_CHECK(parent.empty() || fs::is_directory(parent, ec), op, "no such directory: ", parent.string());
  const std::string tmp = target.string() + ".tmp-tq";
  try {
    write(tmp);
  } catch (const std::exception& e) {
    fs::remove(tmp, ec);
    TQ_FAIL(op, "cannot write ", path, ": ", error_message(e));
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(tmp, ec);
    TQ_FAIL(op, "cannot write ", path, ": ", why);
  }
}

}  // namespace tq
