// Nothing of its own: libtq_torch_ops is tq's library as one shared object for Python's
// torch.ops.load_library. tq's TorchScript operators (src/kernels/int8/torchscript_operators.cpp)
// register with LibTorch's dispatcher when the object is loaded.
