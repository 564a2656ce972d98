// Inputs the fuzz targets (fuzz/, `make fuzz`) found crashing, running out of memory or escaping
// with an exception other than tq's: each now gives a clean error. Replayed as the targets feed
// them (fuzz/fuzz_inputs.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "data.h"
#include "fuzz_inputs.h"
#include "golden.h"
#include "tq/core/check.h"
#include "tq/graph/graph_quantizer.h"
#include "tq/serialize/state_dict.h"
#include "tq/serialize/torch_save.h"

namespace {

std::vector<std::pair<std::string, std::string>> inputs(const std::string& target) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(TQ_FUZZ_REGRESSIONS_DIR) + "/" + target)) {
    std::ifstream f(entry.path(), std::ios::binary);
    out.emplace_back(entry.path().filename().string(),
                     std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()));
  }
  EXPECT_FALSE(out.empty()) << target;
  return out;
}

const uint8_t* bytes_of(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

TEST(FuzzRegressions, StateDictLoader) {
  for (const auto& [name, bytes] : inputs("fuzz_state_dict")) {
    const std::string file = tq::fuzz::state_dict_file(bytes_of(bytes), bytes.size());
    EXPECT_THROW(tq::serialize::parse_state_dict(file, name), tq::Error) << name;
  }
  // The forged memo slot (LibTorch would size its memo table to 57 million entries) is named.
  const auto bytes = inputs("fuzz_state_dict");
  for (const auto& [name, b] : bytes) {
    if (name != "forged_memo_slot.pkl") continue;
    tq::testing::expect_error(
        [&] { tq::serialize::parse_state_dict(tq::fuzz::state_dict_file(bytes_of(b), b.size()), name); },
        "[parse_state_dict] 'forged_memo_slot.pkl' has a malformed pickle (memo slot 57159281 after 16 slots)");
  }
}

TEST(FuzzRegressions, TorchScriptLoader) {
  for (const auto& [name, bytes] : inputs("fuzz_torchscript")) {
    const std::string path = tq::fuzz::write_input(bytes_of(bytes), bytes.size(), ".pt");
    EXPECT_THROW(tq::graph::load_torchscript(path), tq::Error) << name;
  }
  // Records whose declared sizes their few stored bytes cannot hold: LibTorch would allocate over
  // 8 GiB before reading (one), or spend minutes reading (the other, an inconsistent archive).
  for (const auto& [name, bytes] : inputs("fuzz_torchscript")) {
    if (name.rfind("record_size_forged", 0) != 0) continue;
    const std::string path = tq::fuzz::write_input(bytes_of(bytes), bytes.size(), ".pt");
    tq::testing::expect_error([&] { tq::graph::load_torchscript(path); },
                              name == "record_size_forged_oom.pt" ? "stored bytes in a"
                                                                  : "is not a TorchScript file (torch.jit.save): Zip archive inconsistent");
  }
  // A string claiming 4 GiB in constants.pkl: LibTorch would reserve that much before reading it.
  for (const auto& [name, bytes] : inputs("fuzz_torchscript")) {
    if (name != "string_length_past_end.pt") continue;
    const std::string path = tq::fuzz::write_input(bytes_of(bytes), bytes.size(), ".pt");
    tq::testing::expect_error([&] { tq::graph::load_torchscript(path); }, "is truncated inside its pickle");
  }
}

TEST(FuzzRegressions, TensorSizesBeyondTheirStorageAreNamed) {
  // LibTorch's unpickler sets the shape a file declares on a 72-byte storage; reading it would
  // run past the buffer (the tool's loader took the first 64 samples of it).
  for (const auto& [name, bytes] : inputs("fuzz_cli_data")) {
    if (name != "tensor_beyond_storage.pt") continue;
    const std::string path = tq::fuzz::data_file(bytes_of(bytes), bytes.size());
    // LibTorch 2.x's unpickler checks the storage itself; 1.13's leaves it to tq's reader.
    tq::testing::expect_error([&] { tq::serialize::read_torch_save_file(path); },
                              TQ_TORCH_VERSION_AT_LEAST(2, 0)
                                  ? "require a storage of at least 9000 bytes, but storage only has 72 bytes"
                                  : "' declares a tensor of shape [250, 1, 3, 3] (strides [9, 9, 3, 1], offset 0) "
                                    "beyond its storage of 72 bytes");
  }
}

TEST(FuzzRegressions, CliDataLoaders) {
  for (const auto& [name, bytes] : inputs("fuzz_cli_data")) {
    const std::string path = tq::fuzz::data_file(bytes_of(bytes), bytes.size());
    try {
      tq::cli::load_samples(path, {});
      ADD_FAILURE() << name << " loaded";
    } catch (const tq::cli::BadInput&) {
    } catch (const tq::Error&) {
    }
  }
}

}  // namespace
