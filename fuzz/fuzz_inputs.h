#pragma once
// How the fuzz targets turn an input into what the loaders read; the regression test
// (tests/test_fuzz_regressions.cpp) replays saved inputs the same way.
#include <caffe2/serialize/inline_container.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tq::fuzz {

// The loaders read paths: one temporary file per process (libFuzzer runs inputs one after
// another), with the extension that selects the format.
inline std::string write_input(const uint8_t* data, size_t size, const std::string& extension) {
  const auto path = std::filesystem::temp_directory_path() / ("tq_fuzz_" + std::to_string(::getpid()) + extension);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  return path.string();
}

// State dicts: inputs starting with "PK" are whole files; others are the pickle alone (data.pkl),
// zipped here with tensor records data/0 .. data/15 of 256 bytes, so mutations reach the pickle
// reader instead of stopping at the archive's structure.
inline std::string state_dict_file(const uint8_t* data, size_t size) {
  if (size >= 2 && data[0] == 'P' && data[1] == 'K') return std::string(reinterpret_cast<const char*>(data), size);
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) {
    out.append(static_cast<const char*>(buf), n);
    return n;
  });
  writer.writeRecord("data.pkl", data, size);
  static const std::vector<char> storage(256, 1);
  for (int i = 0; i < 16; ++i) writer.writeRecord("data/" + std::to_string(i), storage.data(), storage.size());
  writer.writeEndOfFile();
  return out;
}

// The tool's data files: the first byte picks the format, the rest is the file.
inline std::string data_file(const uint8_t* data, size_t size) {
  static const char* extensions[] = {".pt", ".npy", ".idx", ".gz"};
  return write_input(data + 1, size - 1, extensions[data[0] % 4]);
}

}  // namespace tq::fuzz
