// Reading TorchScript files (its own file: the fuzz target builds it alone).
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <filesystem>

#include "tq/core/check.h"
#include "tq/core/error_message.h"
#include "tq/core/torch_version.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/kernels/int8_saturation.h"
#include "../serialize/torch_save_reader.h"

namespace tq::graph {

torch::jit::Module load_torchscript(const std::string& path) {
  std::error_code ec;
  namespace fs = std::filesystem;
  TQ_CHECK(fs::exists(path, ec), "load_torchscript", "no such file: ", path);
  TQ_CHECK(fs::is_regular_file(path, ec), "load_torchscript", "not a regular file: ", path);
  torch::jit::Module m;
  std::string written_by;  // the LibTorch version that wrote the file, where tq wrote it
  try {
    // LibTorch's loader trusts what the archive holds: every record must decompress, and the
    // pickles (data, constants, debug info) must keep to their own lengths and memo slots.
    serialize::detail::check_zip_file_record_sizes(path, "load_torchscript");
    caffe2::serialize::PyTorchStreamReader archive(path);
    const std::string version_record = std::string("extra/") + kLibTorchVersionFile;
    if (archive.hasRecord(version_record)) {
      auto [data, size] = archive.getRecord(version_record);
      written_by.assign(static_cast<const char*>(data.get()), std::min<size_t>(size, 32));
    }
    for (const auto& record : archive.getAllRecords()) {
      auto [data, size] = archive.getRecord(record);
      if (record.size() < 3 || record.compare(record.size() - 3, 3, "pkl") != 0) continue;
      serialize::detail::check_pickle(std::string(static_cast<const char*>(data.get()), size), path + ":" + record,
                                      "load_torchscript");
    }
    m = torch::jit::load(path);
  } catch (const tq::Error&) {
    throw;
  } catch (const std::exception& e) {
    TQ_CHECK(written_by.empty() || written_by == libtorch_version(), "load_torchscript", path,
             " was written by tq on LibTorch ", written_by, " and does not load in this tq, built on LibTorch ",
             libtorch_version(), ": ", error_message(e));
    TQ_FAIL("load_torchscript", path, " is not a TorchScript file (torch.jit.save): ", error_message(e));
  }
  TQ_CHECK(m.find_method("forward").has_value(), "load_torchscript", path, " has no forward method");
  if (m.hasattr(kFullRangeLayersAttribute)) {
    const auto attr = m.attr(kFullRangeLayersAttribute);
    if (attr.isList()) {
      std::vector<std::string> layers;
      for (const auto& l : attr.toListRef()) {
        if (l.isString()) layers.push_back(l.toStringRef());
      }
      kernels::int8::warn_if_layers_saturate(layers, "load_torchscript(" + path + ")");
    }
  }
  return m;
}

}  // namespace tq::graph
