#pragma once
// An ONNX model as plain structs, and its protobuf form. The protobuf side lives in its own
// translation unit, compiled without LibTorch's include folders: a pip LibTorch ships protobuf
// headers of another version than the library ONNX's messages are built with, and a translation
// unit sees only one google/protobuf.
#include <cstdint>
#include <string>
#include <vector>

namespace tq::onnx::detail {

// ONNX TensorProto::DataType codes.
enum class ElemType : int { kFloat = 1, kUint8 = 2, kInt8 = 3, kInt32 = 6, kInt64 = 7, kUint4 = 21 };

struct Attribute {
  enum class Kind { kInt, kInts, kFloat, kString };
  std::string name;
  Kind kind = Kind::kInt;
  int64_t i = 0;
  std::vector<int64_t> ints;
  float f = 0;
  std::string s;
};

struct NodeDef {
  std::string op_type, name;
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;
  const Attribute* attribute(const std::string& name) const;
};

struct TensorDef {
  std::string name;
  ElemType type = ElemType::kFloat;
  std::vector<int64_t> dims;
  std::string raw;  // little-endian values, as ONNX's raw_data (4-bit: two per byte, the first in the low half)
};

struct ValueDef {
  std::string name;
  ElemType type = ElemType::kFloat;
  bool has_shape = false;
  std::vector<std::string> dims;  // a number, or a symbolic name ("batch")
};

struct ModelDef {
  int64_t ir_version = 8;
  int64_t opset = 17;
  std::string producer = "tq", producer_version, graph_name = "main";
  std::vector<ValueDef> inputs, outputs;
  std::vector<NodeDef> nodes;
  std::vector<TensorDef> initializers;
  const TensorDef* initializer(const std::string& name) const;
};

// The ModelProto bytes; with `check`, ONNX's checker runs first (opsets it knows). Throws
// std::runtime_error with the checker's message.
std::string serialize(const ModelDef& model, bool check);
// One TensorProto's bytes (ONNX's test-data files).
std::string serialize_tensor(const TensorDef& tensor);
// Throws std::runtime_error if the bytes are not a ModelProto.
ModelDef parse(const std::string& bytes);
// The newest opset the linked ONNX library's checker knows.
int64_t checker_max_opset();

}  // namespace tq::onnx::detail
