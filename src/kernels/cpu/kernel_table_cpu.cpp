// The table of this instruction set's copy of the CPU kernels (compiled once per copy).
#include "../kernel_copy.h"
#include "kernel_namespace.h"

TQ_DEFINE_KERNEL_TABLE(TQ_KERNEL_NS)
