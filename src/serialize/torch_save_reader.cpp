#include "torch_save_reader.h"

#include <ATen/core/class_type.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/mobile/type_parser.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <zip.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "tq/core/check.h"
#include "tq/core/error_message.h"
#include "tq/serialize/torch_save.h"

namespace tq::serialize::detail {
namespace {

constexpr const char* kParameterClass = "torch._utils._rebuild_parameter";
constexpr int kMaxNesting = 64;

bool is_dtype_name(const std::string& name) {
  static const std::set<std::string> names = {
      "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "float16", "half", "float32", "float", "float64",
      "double", "bfloat16", "int8", "uint8", "int16", "short", "int32", "int", "int64", "long", "bool"};
  return names.count(name) > 0;
}

// LibTorch's unpickler (1.13 to 2.x) reads collections.OrderedDict() as None, so the OrderedDict
// a state_dict is fails at its first item; it executes BUILD like REDUCE, so the _metadata
// attribute fails too; torch.<dtype> globals are unknown to it, and 1.13 lacks SETITEM / APPEND
// (one-item dicts and lists) and LONG1 shorter than 8 bytes. This copies a protocol-2 pickle
// instruction by instruction, tracking where each stack item's instructions start, and rewrites
// just those: OrderedDict() -> {}, BUILD -> TUPLE2 (the object and its attributes, taken apart
// after unpickling), torch.<dtype> -> "torch.<dtype>", SETITEM / APPEND -> MARK before the key or
// value + SETITEMS / APPENDS, LONG1 -> its 8-byte form.
class PickleRewriter {
 public:
  PickleRewriter(const std::string& in, const std::string& path, const char* op) : in_(in), path_(path), op_(op) {}

  std::string run() {
    while (pos_ < in_.size()) {
      const size_t start = pos_, out_start = out_.size();
      const char opcode = in_[pos_++];
      switch (opcode) {
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module = line(), name = line();
          if (module == "collections" && name == "OrderedDict") {
            if (pos_ < in_.size() && (in_[pos_] == 'q' || in_[pos_] == 'r')) ordered_dict_memo_.insert(memo_id());
            empty_call();
            push_item('}');
            continue;
          }
          if (module == "torch" && is_dtype_name(name)) {
            items_.push_back(out_.size());
            append_string("torch." + name);
            continue;
          }
          items_.push_back(out_start);
          break;
        }
        case 'h':
        case 'j': {  // BINGET, LONG_BINGET
          const uint32_t id = read_uint(opcode == 'h' ? 1 : 4);
          if (ordered_dict_memo_.count(id) > 0) {
            empty_call();
            push_item('}');
            continue;
          }
          items_.push_back(out_start);
          break;
        }
        case '\x8a': {  // LONG1: little-endian two's complement, sign-extended to the 8 bytes LibTorch takes
          const uint32_t n = read_uint(1);
          TQ_CHECK(n <= 8, op_, "'", path_, "' holds an integer wider than 64 bits");
          need(n);
          std::string bytes = in_.substr(pos_, n);
          pos_ += n;
          const char fill = (n > 0 && (static_cast<uint8_t>(bytes.back()) & 0x80)) ? '\xff' : '\0';
          bytes.resize(8, fill);
          items_.push_back(out_start);
          out_ += '\x8a';
          out_ += '\x08';
          out_ += bytes;
          continue;
        }
        case 'b':  // BUILD: (object, attributes) instead
          pop(2);
          items_.push_back(last_popped_first_);
          out_ += '\x86';
          continue;
        case 's':    // SETITEM: dict key value
        case 'a': {  // APPEND: list value
          const size_t n = opcode == 's' ? 2 : 1;
          TQ_CHECK(items_.size() >= n + 1, op_, "'", path_, "' has a malformed pickle (byte ", start, ")");
          const size_t first = items_[items_.size() - n];
          out_.insert(first, 1, '(');
          pop(n);
          out_ += opcode == 's' ? 'u' : 'e';
          continue;
        }
        case 'X': case 'T': case 'B': case '\x8b':  // BINUNICODE, BINSTRING, BINBYTES, LONG4
          skip(read_uint(4));
          items_.push_back(out_start);
          break;
        case 'U': case 'C':  // SHORT_BINSTRING, SHORT_BINBYTES
          skip(read_uint(1));
          items_.push_back(out_start);
          break;
        case 'K': skip(1); items_.push_back(out_start); break;  // BININT1
        case 'M': skip(2); items_.push_back(out_start); break;  // BININT2
        case 'J': skip(4); items_.push_back(out_start); break;  // BININT
        case 'G': skip(8); items_.push_back(out_start); break;  // BINFLOAT
        case 'N': case '\x88': case '\x89': case ')': case ']': case '}':  // None, True, False, empty containers
          items_.push_back(out_start);
          break;
        case '\x80': skip(1); break;  // PROTO
        case 'q':  // BINPUT
        case 'r':  // LONG_BINPUT
          check_memo_id(read_uint(opcode == 'q' ? 1 : 4));
          break;
        case '(':                     // MARK
          marks_.emplace_back(items_.size(), out_start);
          break;
        case 't': case 'l': {  // TUPLE, LIST from the last mark
          const size_t mark_start = pop_mark();
          items_.push_back(mark_start);
          break;
        }
        case 'u': case 'd':  // SETITEMS, DICT: key / value pairs from the mark (LibTorch reads past an odd one)
          TQ_CHECK(!marks_.empty() && (items_.size() - marks_.back().first) % 2 == 0, op_, "'", path_,
                   "' has a malformed pickle (byte ", start, ": a key without value)");
          if (opcode == 'd') items_.push_back(pop_mark());
          else pop_mark();
          break;
        case 'e':  // APPENDS: into the list below the mark
          pop_mark();
          break;
        case '\x85': case '\x86': case '\x87': {  // TUPLE1, TUPLE2, TUPLE3
          pop(static_cast<size_t>(opcode - '\x84'));
          items_.push_back(last_popped_first_);
          break;
        }
        case 'R':  // REDUCE: callable and arguments
          pop(2);
          items_.push_back(last_popped_first_);
          break;
        case '\x81':  // NEWOBJ: LibTorch drops the argument tuple and keeps the class for BUILD
          pop(1);
          break;
        case 'Q':  // BINPERSID
          pop(1);
          items_.push_back(last_popped_first_);
          break;
        case '.':  // STOP
          break;
        default:
          TQ_FAIL(op_, "'", path_, "' holds a pickle instruction tq cannot read (byte ", start, ", code ",
                  static_cast<int>(static_cast<uint8_t>(opcode)), "): is it a file torch.save wrote?");
      }
      out_.append(in_, start, pos_ - start);
      if (opcode == '.') return out_;
    }
    TQ_FAIL(op_, "'", path_, "' is truncated: its pickle has no end");
    return out_;
  }

 private:
  void need(size_t n) const { TQ_CHECK(n <= in_.size() - pos_, op_, "'", path_, "' is truncated inside its pickle"); }
  void skip(size_t n) {
    need(n);
    pos_ += n;
  }
  uint32_t read_uint(size_t n) {
    need(n);
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint32_t(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += n;
    return v;
  }
  std::string line() {
    const size_t end = in_.find('\n', pos_);
    TQ_CHECK(end != std::string::npos, op_, "'", path_, "' is truncated inside its pickle");
    std::string s = in_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  void pop(size_t n) {
    TQ_CHECK(items_.size() >= n && (marks_.empty() || items_.size() - n >= marks_.back().first), op_, "'", path_,
             "' has a malformed pickle (byte ", pos_ - 1, ")");
    last_popped_first_ = items_[items_.size() - n];
    items_.resize(items_.size() - n);
  }
  size_t pop_mark() {
    TQ_CHECK(!marks_.empty(), op_, "'", path_, "' has a malformed pickle (byte ", pos_ - 1, ")");
    const auto [count, offset] = marks_.back();
    marks_.pop_back();
    items_.resize(count);
    return offset;
  }
  void push_item(char opcode) {
    items_.push_back(out_.size());
    out_ += opcode;
  }
  // The memo slot the OrderedDict class goes to (BINPUT / LONG_BINPUT): dropped with it.
  uint32_t memo_id() {
    const bool long_form = in_[pos_++] == 'r';
    return check_memo_id(read_uint(long_form ? 4 : 1));
  }
  // Python numbers memo slots 0, 1, 2, ...; LibTorch sizes its memo table by the largest id, so
  // one forged id would allocate gigabytes.
  uint32_t check_memo_id(uint32_t id) {
    TQ_CHECK(id <= memo_puts_, op_, "'", path_, "' has a malformed pickle (memo slot ", id, " after ", memo_puts_,
             " slots)");
    ++memo_puts_;
    return id;
  }
  // OrderedDict is only ever called without arguments in what torch.save writes.
  void empty_call() {
    TQ_CHECK(in_.size() - pos_ >= 2 && in_[pos_] == ')' && in_[pos_ + 1] == 'R', op_, "'", path_,
             "' builds an OrderedDict from arguments, which tq cannot read");
    pos_ += 2;
  }
  void append_string(const std::string& s) {
    out_ += 'X';
    const uint32_t n = static_cast<uint32_t>(s.size());
    for (int i = 0; i < 4; ++i) out_ += static_cast<char>((n >> (8 * i)) & 0xff);
    out_ += s;
  }

  const std::string& in_;
  const std::string& path_;
  const char* op_;
  size_t pos_ = 0;
  std::string out_;
  std::vector<size_t> items_;                         // where each stack item's instructions start in out_
  std::vector<std::pair<size_t, size_t>> marks_;      // (items below the mark, the mark's offset in out_)
  size_t last_popped_first_ = 0;
  uint32_t memo_puts_ = 0;
  std::set<uint32_t> ordered_dict_memo_;
};

// After unpickling: nn.Parameter (an object of a stand-in class holding the tensor) becomes its
// tensor, through dicts, lists and tuples; and every tensor's storage must fit in the record its
// bytes came from (LibTorch's unpickler trusts the size the pickle declares).
class ValueCheck {
 public:
  ValueCheck(const std::map<const void*, size_t>& record_bytes, const char* op, const std::string& path)
      : record_bytes_(record_bytes), op_(op), path_(path) {}

  c10::IValue operator()(const c10::IValue& v, int depth = 0) const {
    TQ_CHECK(depth < kMaxNesting, op_, "'", path_, "' nests containers deeper than ", kMaxNesting, " levels");
    if (v.isObject()) return (*this)(v.toObject()->getSlot(0), depth + 1);
    if (v.isTensor()) {
      check_storage(v.toTensor());
      return v;
    }
    if (v.isGenericDict()) {
      auto dict = v.toGenericDict();
      for (auto it = dict.begin(); it != dict.end(); ++it) it->setValue((*this)(it->value(), depth + 1));
      return dict;
    }
    if (v.isList()) {
      auto list = v.toList();
      for (size_t i = 0; i < list.size(); ++i) list.set(i, (*this)(list.get(i), depth + 1));
      return list;
    }
    if (v.isTuple()) {
      std::vector<c10::IValue> elements;
      for (const auto& e : v.toTupleRef().elements()) elements.push_back((*this)(e, depth + 1));
      return c10::ivalue::Tuple::create(std::move(elements));
    }
    return v;
  }

 private:
  void check_storage(const at::Tensor& t) const {
    if (!t.defined() || !t.has_storage()) return;
    // LibTorch sets the sizes and strides a file declares without checking them against the
    // storage (rebuildTensor): the farthest element must lie inside it.
    if (t.numel() > 0) {
      int64_t last = t.storage_offset();
      bool overflow = last < 0;
      for (int64_t d = 0; d < t.dim() && !overflow; ++d) {
        int64_t step = 0;
        overflow = t.stride(d) < 0 || __builtin_mul_overflow(t.size(d) - 1, t.stride(d), &step) ||
                   __builtin_add_overflow(last, step, &last);
      }
      int64_t bytes = 0;
      overflow = overflow || __builtin_mul_overflow(last + 1, static_cast<int64_t>(t.element_size()), &bytes);
      TQ_CHECK(!overflow && bytes <= static_cast<int64_t>(t.storage().nbytes()), op_, "'", path_,
               "' declares a tensor of shape ", t.sizes(), " (strides ", t.strides(), ", offset ", t.storage_offset(),
               ") beyond its storage of ", t.storage().nbytes(), " bytes");
    }
    // A per-channel quantized tensor's scales and zero points: their own storages, one value per
    // channel of the axis (LibTorch checks that when it creates the tensor, not after setting
    // the declared sizes).
    if (t.is_quantized() && (t.qscheme() == at::kPerChannelAffine || t.qscheme() == at::kPerChannelAffineFloatQParams)) {
      const int64_t axis = t.q_per_channel_axis();
      const auto scales = t.q_per_channel_scales(), zero_points = t.q_per_channel_zero_points();
      TQ_CHECK(axis >= 0 && axis < t.dim() && scales.dim() == 1 && zero_points.dim() == 1 &&
                   scales.numel() == t.size(axis) && zero_points.numel() == t.size(axis),
               op_, "'", path_, "' declares a per-channel quantized tensor of shape ", t.sizes(), " along axis ",
               axis, " with ", scales.numel(), " scales and ", zero_points.numel(), " zero points");
      check_storage(scales);
      check_storage(zero_points);
    }
    if (t.storage().nbytes() == 0) return;
    const auto it = record_bytes_.find(t.storage().data());
    TQ_CHECK(it != record_bytes_.end() && t.storage().nbytes() <= it->second, op_, "'", path_,
             "' declares a tensor storage of ", t.storage().nbytes(), " bytes, its data record holds ",
             it == record_bytes_.end() ? 0 : it->second);
  }

  const std::map<const void*, size_t>& record_bytes_;
  const char* op_;
  const std::string& path_;
};

// Runs f: LibTorch's failures (c10::Error, or std::exception from its containers) become one
// tq::Error naming the file.
template <class F>
void as_file_error(const char* op, const std::string& path, F&& f) {
  try {
    f();
  } catch (const tq::Error&) {
    throw;
  } catch (const std::exception& e) {
    TQ_FAIL(op, "'", path, "' is not a readable torch.save file: ", error_message(e));
  }
}

std::string read_bytes(const std::string& path, const char* op) {
  std::ifstream f(path, std::ios::binary);
  TQ_CHECK(f.good(), op, "cannot open '", path, "'");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  TQ_CHECK(!f.bad(), op, "reading '", path, "' failed");
  TQ_CHECK(!bytes.empty(), op, "'", path, "' is empty");
  return bytes;
}

}  // namespace

void check_pickle(const std::string& pickle, const std::string& path, const char* op) {
  PickleRewriter(pickle, path, op).run();
}

TorchSaveContents read_torch_save(const std::string& path, const char* op) {
  return parse_torch_save(read_bytes(path, op), path, op);
}

namespace {

void check_declared_sizes(zip_t* archive, uint64_t archive_bytes, const std::string& path, const char* op) {
  constexpr uint64_t kDeflateMaxRatio = 1032;
  const zip_int64_t entries = zip_get_num_entries(archive, 0);
  for (zip_int64_t i = 0; i < entries; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive, static_cast<zip_uint64_t>(i), 0, &st) != 0) continue;
    if (!(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE)) continue;
    const bool stored = (st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method == ZIP_CM_STORE;
    const uint64_t limit = stored ? st.comp_size : std::max<uint64_t>(st.comp_size, 1) * kDeflateMaxRatio;
    TQ_CHECK(st.comp_size <= archive_bytes && st.size <= limit, op, "'", path, "': record '",
             st.name != nullptr ? st.name : "?", "' claims ", st.size, " bytes from ", st.comp_size,
             " stored bytes in a ", archive_bytes, "-byte file (a damaged or forged archive)");
  }
}

std::string zip_error_text(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string text = zip_error_strerror(&error);
  zip_error_fini(&error);
  return text;
}

}  // namespace

void check_zip_record_sizes(const std::string& bytes, const std::string& path, const char* op) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  TQ_CHECK(source != nullptr, op, "'", path, "': cannot read it as a zip archive: ", zip_error_strerror(&error));
  zip_t* archive = zip_open_from_source(source, ZIP_RDONLY, &error);
  if (archive == nullptr) {
    zip_source_free(source);
    const std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    TQ_FAIL(op, "'", path, "' is not a torch.save file (damaged zip archive: ", text, ")");
  }
  zip_error_fini(&error);
  std::unique_ptr<zip_t, int (*)(zip_t*)> owned(archive, zip_close);
  check_declared_sizes(archive, bytes.size(), path, op);
}

void check_zip_file_record_sizes(const std::string& path, const char* op) {
  int code = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY, &code);
  TQ_CHECK(archive != nullptr, op, path, " is not a TorchScript file (torch.jit.save): ", zip_error_text(code));
  std::unique_ptr<zip_t, int (*)(zip_t*)> owned(archive, zip_close);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  check_declared_sizes(archive, ec ? 0 : static_cast<uint64_t>(size), path, op);
}

TorchSaveContents parse_torch_save(const std::string& bytes, const std::string& path, const char* op) {
  TQ_CHECK(!bytes.empty(), op, "'", path, "' is empty");
  // torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) writes pickles
  // back to back, starting with protocol 2's header and a magic number.
  TQ_CHECK(!(bytes.size() >= 2 && bytes[0] == '\x80' && bytes[1] == '\x02'), op, "'", path,
           "' is in torch.save's legacy format (PyTorch < 1.6 or _use_new_zipfile_serialization=False): "
           "re-save it with torch.save in PyTorch >= 1.6");
  TQ_CHECK(bytes.rfind("PK\x03\x04", 0) == 0, op, "'", path, "' is not a torch.save file (no zip archive)");

  check_zip_record_sizes(bytes, path, op);
  std::istringstream stream(bytes);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  std::string pickle;
  as_file_error(op, path, [&] {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(&stream);
    TQ_CHECK(!archive->hasRecord("constants.pkl"), op, "'", path,
             "' is a TorchScript module (torch.jit.save), not a torch.save file: give it to graph mode "
             "(tq::graph) or the tq command");
    TQ_CHECK(archive->hasRecord("data.pkl"), op, "'", path, "' is a zip archive without data.pkl: not a torch.save file");
    auto [data, size] = archive->getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(data.get()), size);
  });

  const std::string rewritten = PickleRewriter(pickle, path, op).run();
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  auto parameter_class = c10::ClassType::create(c10::QualifiedName(kParameterClass), cu);
  parameter_class->addAttribute("data", c10::TensorType::get());
  auto resolve = [&](const c10::QualifiedName& name) -> c10::StrongTypePtr {
    const std::string qualified = name.qualifiedName();
    // Container type tags that LibTorch's own pickler writes ("Dict[str, Tensor]").
    if (qualified.find('[') != std::string::npos) return c10::StrongTypePtr(cu, c10::parseType(qualified));
    TQ_CHECK(qualified == kParameterClass || qualified == "torch._utils._rebuild_parameter_with_state", op, "'",
             path, "' holds a pickled Python object of type '", qualified,
             "': tq reads tensors and containers of them (save model.state_dict(), not the model)");
    return c10::StrongTypePtr(cu, parameter_class);
  };
  auto load_parameter = [&](const c10::StrongTypePtr& type, const c10::IValue& args) {
    TQ_CHECK(args.isTuple() && !args.toTupleRef().elements().empty() && args.toTupleRef().elements()[0].isTensor(), op,
             "'", path, "' holds an nn.Parameter without a tensor");
    auto obj = c10::ivalue::Object::create(type, 1);
    obj->setSlot(0, args.toTupleRef().elements()[0]);
    return obj;
  };
  size_t offset = 0;
  auto reader = [&](char* buffer, size_t n) {
    const size_t k = std::min(n, rewritten.size() - offset);
    std::memcpy(buffer, rewritten.data() + offset, k);
    offset += k;
    return k;
  };
  std::map<const void*, size_t> record_bytes;
  auto read_record = [&](const std::string& name) {
    const std::string record = "data/" + name;
    TQ_CHECK(archive->hasRecord(record), op, "'", path, "' lacks the tensor data '", record, "'");
    auto [data, size] = archive->getRecord(record);
    record_bytes[data.get()] = size;
    return std::move(data);
  };

  c10::IValue value;
  as_file_error(op, path, [&] {
    torch::jit::Unpickler unpickler(reader, resolve, load_parameter, read_record, at::Device(at::kCPU));
    value = unpickler.parse_ivalue();
  });
  TorchSaveContents out;
  // An object with attributes (an OrderedDict with _metadata) arrives as (object, attributes).
  if (value.isTuple() && value.toTupleRef().elements().size() == 2 && value.toTupleRef().elements()[1].isGenericDict()) {
    const auto attributes = value.toTupleRef().elements()[1].toGenericDict();
    const auto metadata = attributes.find(std::string("_metadata"));
    if (metadata != attributes.end()) out.metadata = metadata->value();
    value = value.toTupleRef().elements()[0];
  }
  out.value = ValueCheck(record_bytes, op, path)(value);
  return out;
}

}  // namespace tq::serialize::detail

namespace tq::serialize {

c10::IValue read_torch_save_file(const std::string& path) {
  return detail::read_torch_save(path, "read_torch_save_file").value;
}

}  // namespace tq::serialize
