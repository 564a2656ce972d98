#include "data.h"

#include <ATen/ATen.h>
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include "tq/core/check.h"
#include "tq/serialize/torch_save.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "idx_reader.h"

namespace tq::cli {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_pt(const std::string& path) { return ends_with(path, ".pt") || ends_with(path, ".pth"); }

bool is_image(const fs::path& p) {
  const auto ext = lower(p.extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

c10::IValue read_pt(const std::string& path) {
  try {
    return serialize::read_torch_save_file(path);
  } catch (const tq::Error& e) {
    throw BadInput(e.what());
  }
}

// The samples a .pt file holds, from its loaded value.
Samples samples_from_pt(const c10::IValue& v, const std::string& path) {
  Samples s;
  if (v.isTensor()) {
    s.inputs = v.toTensor();
  } else if (v.isList() || v.isTuple()) {
    std::vector<at::Tensor> parts;
    const auto elems = v.isList() ? v.toListRef().vec() : v.toTupleRef().elements().vec();
    for (const auto& e : elems) {
      if (!e.isTensor()) throw BadInput(path + ": the list holds something other than tensors");
      parts.push_back(e.toTensor());
    }
    if (parts.empty()) throw BadInput(path + ": the list of tensors is empty");
    try {
      s.inputs = at::cat(parts, 0);
    } catch (const c10::Error&) {
      throw BadInput(path + ": the tensors in the list have different shapes");
    }
  } else {
    throw BadInput(path + (v.isGenericDict() ? ": holds named inputs (a dict), which only tq quantize --calib takes"
                                              : ": holds neither a tensor nor a list of tensors"));
  }
  if (s.inputs.dim() == 0 || s.inputs.size(0) == 0) throw BadInput(path + ": no samples");
  if (s.inputs.is_floating_point()) s.inputs = s.inputs.to(at::kFloat);
  return s;
}

// NumPy's .npy format (version 1-3 header, little-endian float32 / float64 / uint8 / int64, C order).
// Debian packages no C++ reader for it; the format is a short text header and raw data.
Samples load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw BadInput(path + ": not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  const size_t header_len = major == 1 ? (static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8)
                                       : (static_cast<size_t>(static_cast<unsigned char>(bytes[8])) |
                                          static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8 |
                                          static_cast<size_t>(static_cast<unsigned char>(bytes[10])) << 16 |
                                          static_cast<size_t>(static_cast<unsigned char>(bytes[11])) << 24);
  const size_t start = major == 1 ? 10 : 12;
  if (bytes.size() < start + header_len) throw BadInput(path + ": truncated .npy header");
  const std::string header = bytes.substr(start, header_len);
  auto field = [&](const std::string& key) {
    const auto k = header.find("'" + key + "'");
    if (k == std::string::npos) throw BadInput(path + ": .npy header without '" + key + "'");
    return header.substr(header.find(':', k) + 1);
  };
  const std::string descr = field("descr");
  const auto q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
  const std::string type = descr.substr(q1 + 1, q2 - q1 - 1);
  if (field("fortran_order").find("True") < field("fortran_order").find(',')) {
    throw BadInput(path + ": Fortran-ordered arrays are not supported");
  }
  std::vector<int64_t> shape;
  const std::string sh = field("shape");
  const auto open = sh.find('('), close = sh.find(')');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    throw BadInput(path + ": .npy header with a malformed shape");
  }
  std::stringstream dims(sh.substr(open + 1, close - open - 1));
  // Each dimension no larger than the file: a header cannot promise more data than it has.
  for (std::string d; std::getline(dims, d, ',');) {
    const auto first = d.find_first_not_of(' '), last = d.find_last_not_of(' ');
    if (first == std::string::npos) continue;
    const std::string digits = d.substr(first, last - first + 1);
    if (digits.size() > 12 || digits.find_first_not_of("0123456789") != std::string::npos) {
      throw BadInput(path + ": .npy shape holds '" + digits + "', not a dimension");
    }
    shape.push_back(std::stoll(digits));
  }
  at::ScalarType st;
  if (type == "<f4") st = at::kFloat;
  else if (type == "<f8") st = at::kDouble;
  else if (type == "|u1") st = at::kByte;
  else if (type == "<i8") st = at::kLong;
  else throw BadInput(path + ": .npy dtype " + type + " (expected <f4, <f8, |u1 or <i8)");
  const size_t data_start = start + header_len;
  const size_t available = (bytes.size() - data_start) / c10::elementSize(st);
  size_t numel = 1;
  for (auto d : shape) {
    // numel * d stays below 2^64: both factors are at most the file's size in elements.
    numel = d == 0 ? 0 : (numel > available ? numel : numel * static_cast<size_t>(d));
    if (numel > available) throw BadInput(path + ": truncated .npy data (the shape needs more than the file holds)");
  }
  Samples s;
  s.inputs = at::from_blob(bytes.data() + data_start, shape, st).clone();
  if (s.inputs.dim() == 0 || s.inputs.size(0) == 0) throw BadInput(path + ": no samples");
  if (s.inputs.is_floating_point()) s.inputs = s.inputs.to(at::kFloat);
  return s;
}

Samples load_idx(const std::string& path, const DataOptions& o) {
  Samples s;
  at::Tensor raw;
  try {
    raw = apps::read_idx(path);
  } catch (const std::exception& e) {
    throw BadInput(e.what());
  }
  if (raw.dim() != 3) throw BadInput(path + ": expected an IDX file of images [N, rows, cols]");
  s.inputs = raw.to(at::kFloat).div_(255.0).unsqueeze(1);
  if (o.normalize_idx) s.inputs = (s.inputs - o.mean.at(0)) / o.std.at(0);
  if (!o.labels.empty()) {
    try {
      s.labels = apps::read_idx(o.labels).to(at::kLong);
    } catch (const std::exception& e) {
      throw BadInput(e.what());
    }
    if (s.labels.dim() != 1 || s.labels.size(0) != s.inputs.size(0)) {
      throw BadInput(o.labels + ": " + std::to_string(s.labels.numel()) + " labels for " +
                     std::to_string(s.inputs.size(0)) + " images");
    }
  }
  return s;
}

// HWC uint8 -> CHW float, resized (shorter side), center-cropped, normalized.
at::Tensor decode_image(const fs::path& p, const DataOptions& o) {
  int w = 0, h = 0, c = 0;
  const int want = static_cast<int>(o.channels);
  unsigned char* pixels = stbi_load(p.string().c_str(), &w, &h, &c, want);
  if (!pixels) throw BadInput(p.string() + ": cannot decode image (" + stbi_failure_reason() + ")");
  std::vector<unsigned char> buf(pixels, pixels + static_cast<size_t>(w) * h * want);
  stbi_image_free(pixels);
  if (o.resize > 0) {
    const double f = static_cast<double>(o.resize) / std::min(w, h);
    const int nw = std::max(1, static_cast<int>(std::lround(w * f))), nh = std::max(1, static_cast<int>(std::lround(h * f)));
    std::vector<unsigned char> out(static_cast<size_t>(nw) * nh * want);
    stbir_resize_uint8(buf.data(), w, h, 0, out.data(), nw, nh, 0, want);
    buf.swap(out);
    w = nw;
    h = nh;
  }
  auto t = at::from_blob(buf.data(), {h, w, want}, at::kByte).clone().permute({2, 0, 1}).to(at::kFloat).div_(255.0);
  if (o.center_crop > 0) {
    const int64_t cs = o.center_crop;
    if (cs > h || cs > w) throw BadInput(p.string() + ": smaller than the center crop");
    t = t.narrow(1, (h - cs) / 2, cs).narrow(2, (w - cs) / 2, cs);
  }
  for (int64_t ch = 0; ch < want; ++ch) {
    const size_t k = std::min<size_t>(static_cast<size_t>(ch), o.mean.size() - 1);
    t[ch].sub_(o.mean[k]).div_(o.std[std::min<size_t>(static_cast<size_t>(ch), o.std.size() - 1)]);
  }
  return t.contiguous();
}

Samples load_images(const std::string& dir, const DataOptions& o) {
  if (o.channels != 1 && o.channels != 3) throw std::invalid_argument("--channels must be 1 or 3");
  std::vector<std::pair<fs::path, int64_t>> files;
  std::vector<fs::path> classes;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory()) classes.push_back(e.path());
  }
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file() && is_image(e.path())) files.emplace_back(e.path(), -1);
    }
  } else {
    for (size_t k = 0; k < classes.size(); ++k) {
      for (const auto& e : fs::directory_iterator(classes[k])) {
        if (e.is_regular_file() && is_image(e.path())) files.emplace_back(e.path(), static_cast<int64_t>(k));
      }
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw BadInput(dir + ": no PNG or JPEG images");
  Samples s;
  std::vector<at::Tensor> images;
  std::vector<int64_t> labels;
  for (const auto& [path, label] : files) {
    if (o.limit > 0 && static_cast<int64_t>(images.size()) >= o.limit) break;
    try {
      images.push_back(decode_image(path, o));
    } catch (const BadInput&) {
      if (!o.skip_bad) throw;
      ++s.skipped;
      continue;
    }
    labels.push_back(label);
  }
  if (images.empty()) throw BadInput(dir + ": every image failed to decode");
  try {
    s.inputs = at::stack(images);
  } catch (const c10::Error&) {
    throw BadInput(dir + ": images of different sizes (use --resize and --center-crop)");
  }
  if (!classes.empty()) s.labels = at::tensor(labels, at::kLong);
  return s;
}

// At most `limit` samples (0: all).
Samples keep_first(Samples s, int64_t limit) {
  if (limit > 0 && s.inputs.size(0) > limit) {
    s.inputs = s.inputs.narrow(0, 0, limit);
    if (s.labels.defined()) s.labels = s.labels.narrow(0, 0, limit);
  }
  return s;
}

}  // namespace

Samples load_samples(const std::string& path, const DataOptions& o) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw BadInput("no such file or directory: " + path);
  Samples s;
  if (fs::is_directory(path, ec)) {
    s = load_images(path, o);
  } else if (is_pt(path)) {
    s = samples_from_pt(read_pt(path), path);
  } else if (ends_with(path, ".npy")) {
    s = load_npy(path);
  } else if (path.find("idx") != std::string::npos || ends_with(path, ".gz")) {
    s = load_idx(path, o);
  } else {
    throw BadInput(path + ": unknown data format (expected .pt, .npy, an IDX file, or a directory of images)");
  }
  return keep_first(std::move(s), o.limit);
}

std::vector<at::Tensor> batches(const at::Tensor& inputs, int64_t batch_size, int64_t max_batches) {
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < inputs.size(0); i += batch_size) {
    if (max_batches > 0 && static_cast<int64_t>(out.size()) >= max_batches) break;
    out.push_back(inputs.narrow(0, i, std::min(batch_size, inputs.size(0) - i)));
  }
  return out;
}

CalibrationData load_calibration_data(const std::string& path, const DataOptions& options) {
  CalibrationData data;
  std::error_code ec;
  if (!is_pt(path) || !fs::is_regular_file(path, ec)) {
    data.samples = load_samples(path, options);
    return data;
  }
  const c10::IValue v = read_pt(path);  // read once: a dict of named inputs or samples of one input
  if (!v.isGenericDict()) {
    data.samples = keep_first(samples_from_pt(v, path), options.limit);
    return data;
  }
  for (const auto& item : v.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor()) {
      throw BadInput(path + ": the dict must map argument names to tensors");
    }
    data.named_inputs[item.key().toStringRef()] = item.value().toTensor();
  }
  if (data.named_inputs.empty()) throw BadInput(path + ": the dict of named inputs is empty");
  return data;
}

std::vector<std::vector<c10::IValue>> named_input_batches(const CalibrationData& data, const std::string& path,
                                                          const std::vector<std::string>& argument_names,
                                                          int64_t batch_size, int64_t max_batches) {
  auto by_name = data.named_inputs;
  std::vector<at::Tensor> inputs;
  for (const auto& name : argument_names) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) throw BadInput(path + ": the model's forward takes '" + name + "', which the file does not hold");
    const auto& t = it->second;
    if (t.dim() == 0 || t.size(0) == 0) throw BadInput(path + ": '" + name + "' holds no samples");
    if (!inputs.empty() && t.size(0) != inputs.front().size(0)) {
      throw BadInput(path + ": '" + name + "' holds " + std::to_string(t.size(0)) + " samples, '" + argument_names.front() +
                     "' " + std::to_string(inputs.front().size(0)));
    }
    inputs.push_back(t.is_floating_point() ? t.to(at::kFloat) : t);
    by_name.erase(it);
  }
  if (!by_name.empty()) throw BadInput(path + ": '" + by_name.begin()->first + "' is no argument of the model's forward");
  std::vector<std::vector<c10::IValue>> out;
  const int64_t n = inputs.front().size(0);
  for (int64_t i = 0; i < n; i += batch_size) {
    if (max_batches > 0 && static_cast<int64_t>(out.size()) >= max_batches) break;
    std::vector<c10::IValue> args;
    for (const auto& t : inputs) args.emplace_back(t.narrow(0, i, std::min(batch_size, n - i)).contiguous());
    out.push_back(std::move(args));
  }
  return out;
}

}  // namespace tq::cli
