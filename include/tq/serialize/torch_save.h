#pragma once
// Any file Python's torch.save wrote (zip format): tensors, lists, tuples and dicts of them,
// state_dicts (OrderedDict with _metadata). LibTorch's torch::pickle_load stops at OrderedDicts,
// nn.Parameters and torch dtypes, and trusts the tensor sizes a file declares; this reads them
// and checks every tensor against its data. Errors (tq::Error) name the file.
#include <ATen/core/ivalue.h>

#include <string>

namespace tq::serialize {

c10::IValue read_torch_save_file(const std::string& path);

}  // namespace tq::serialize
