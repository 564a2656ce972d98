#pragma once
// Reads what Python's torch.save wrote (the zip format of PyTorch >= 1.6) with LibTorch's
// unpickler, including what that unpickler cannot take as it is: the OrderedDict a state_dict is,
// with its _metadata attribute; nn.Parameter values; torch.<dtype> values (packed parameters).
#include <ATen/core/ivalue.h>

#include <string>

namespace tq::serialize::detail {

struct TorchSaveContents {
  c10::IValue value;     // OrderedDicts are dicts, Parameters tensors
  c10::IValue metadata;  // the state_dict's _metadata (a dict), or None
};

// Throws tq::Error naming the file: legacy (pre-1.6) files, TorchScript archives, pickled Python
// objects other than tensors and containers.
TorchSaveContents read_torch_save(const std::string& path, const char* op);
// The same on a file's bytes; `path` names it in errors.
TorchSaveContents parse_torch_save(const std::string& bytes, const std::string& path, const char* op);

// LibTorch allocates the uncompressed size each zip record declares before it reads it, so a
// forged size in a tiny file asks for gigabytes. These read the declared sizes with libzip first
// and throw tq::Error, naming the record, if a record claims more than its compressed bytes can
// hold (deflate expands at most 1032 times; a stored record is its own size).
void check_zip_record_sizes(const std::string& bytes, const std::string& path, const char* op);
// The same on a TorchScript file; a file that is no zip archive "is not a TorchScript file".
void check_zip_file_record_sizes(const std::string& path, const char* op);

// Walks a pickle as LibTorch's unpickler would take it and throws tq::Error on what would make it
// crash or allocate without bound (lengths past the end, forged memo slots, deep nesting).
void check_pickle(const std::string& pickle, const std::string& path, const char* op);

}  // namespace tq::serialize::detail
