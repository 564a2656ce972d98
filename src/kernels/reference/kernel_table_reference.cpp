// The table of the scalar reference kernels.
#include "../kernel_copy.h"

TQ_DEFINE_KERNEL_TABLE(reference)
