#include "idx_reader.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <memory>
#include <vector>

#include "tq/core/check.h"

namespace tq::apps {
namespace {

struct GzFile {
  gzFile f;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

void read_exact(gzFile f, void* dst, size_t n, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const int got = gzread(f, static_cast<char*>(dst) + done, static_cast<unsigned>(std::min<size_t>(n - done, 1 << 30)));
    TQ_CHECK(got > 0, "read_idx", "'", path, "' is truncated: expected ", n, " bytes of data, got ", done);
    done += static_cast<size_t>(got);
  }
}

uint32_t big_endian(const unsigned char* b) { return (uint32_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3]; }

}  // namespace

at::Tensor read_idx(const std::string& path) {
  GzFile file{gzopen(path.c_str(), "rb")};  // reads plain files too
  TQ_CHECK(file.f != nullptr, "read_idx", "cannot open '", path, "'");
  unsigned char header[4];
  read_exact(file.f, header, 4, path);
  TQ_CHECK(header[0] == 0 && header[1] == 0 && header[2] == 0x08, "read_idx", "'", path,
           "' is not an unsigned-byte IDX file (magic ", int(header[0]), " ", int(header[1]), " ", int(header[2]), ")");
  const int dims = header[3];
  TQ_CHECK(dims >= 1 && dims <= 4, "read_idx", "'", path, "' declares ", dims, " dimensions");
  // The header promises the size; the data is read in chunks (a gzipped file's length says
  // nothing), so a header promising terabytes fails at the end of the data, not at allocation.
  constexpr int64_t kMaxBytes = int64_t{1} << 34;
  std::vector<int64_t> shape(dims);
  int64_t numel = 1;
  for (int d = 0; d < dims; ++d) {
    unsigned char b[4];
    read_exact(file.f, b, 4, path);
    shape[d] = big_endian(b);
    TQ_CHECK(shape[d] > 0 && shape[d] < (1 << 24), "read_idx", "'", path, "' has dimension ", d, " of size ", shape[d]);
    TQ_CHECK(numel <= kMaxBytes / shape[d], "read_idx", "'", path, "' declares more than ", kMaxBytes, " bytes of data");
    numel *= shape[d];
  }
  std::vector<uint8_t> data;
  constexpr size_t kChunk = size_t{1} << 24;
  while (data.size() < static_cast<size_t>(numel)) {
    const size_t done = data.size(), n = std::min(kChunk, static_cast<size_t>(numel) - done);
    data.resize(done + n);
    const int got = gzread(file.f, data.data() + done, static_cast<unsigned>(n));
    TQ_CHECK(got == static_cast<int>(n) || (got > 0 && gzeof(file.f) == 0), "read_idx", "'", path,
             "' is truncated: expected ", numel, " bytes of data, got ", done + std::max(got, 0));
    data.resize(done + static_cast<size_t>(got));
  }
  return at::from_blob(data.data(), shape, at::kByte).clone();
}

Dataset load_fashion_mnist(const std::string& dir, const std::string& split) {
  TQ_CHECK(split == "train" || split == "t10k", "load_fashion_mnist", "split must be train or t10k, got ", split);
  const auto images = read_idx(dir + "/" + split + "-images-idx3-ubyte.gz");
  const auto labels = read_idx(dir + "/" + split + "-labels-idx1-ubyte.gz");
  TQ_CHECK(images.dim() == 3 && labels.dim() == 1 && images.size(0) == labels.size(0), "load_fashion_mnist",
           "images ", images.sizes(), " and labels ", labels.sizes(), " do not match");
  Dataset ds;
  ds.images = ((images.to(at::kFloat) / 255.0f - 0.2860f) / 0.3530f).unsqueeze(1).contiguous();
  ds.labels = labels.to(at::kLong);
  return ds;
}

}  // namespace tq::apps
