#pragma once
// Declares one copy of the kernels listed in tq/kernels/kernel_table.h (namespace
// tq::kernels::<copy>) and defines its table: the one translation unit of a copy that names its
// kernels says TQ_DEFINE_KERNEL_TABLE(copy); the dispatcher declares the copy's kernel_table().
#include "tq/kernels/kernel_table.h"

#define TQ_KERNEL_STRINGIFY_(x) #x
#define TQ_KERNEL_STRINGIFY(x) TQ_KERNEL_STRINGIFY_(x)
#define TQ_DECLARE_ONE_KERNEL(kernel, params) void kernel params;
#define TQ_KERNEL_TABLE_ENTRY(kernel, params) &kernel,

#define TQ_DEFINE_KERNEL_TABLE(copy)                                                                    \
  namespace tq::kernels::copy {                                                                         \
  TQ_FOR_EACH_KERNEL(TQ_DECLARE_ONE_KERNEL)                                                             \
  const KernelTable& kernel_table() {                                                                   \
    static const KernelTable table{TQ_KERNEL_STRINGIFY(copy), TQ_FOR_EACH_KERNEL(TQ_KERNEL_TABLE_ENTRY)}; \
    return table;                                                                                       \
  }                                                                                                     \
  }
