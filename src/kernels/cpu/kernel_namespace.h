#pragma once
// Kernel sources are compiled once per instruction set (see CMakeLists.txt); each copy lives in
// its own namespace, tq::kernels::cpu_<capability>, and the dispatcher picks one at run time.
#define TQ_CAT_(a, b) a##b
#define TQ_CAT(a, b) TQ_CAT_(a, b)
#define TQ_KERNEL_NS TQ_CAT(cpu_, TQ_CPU_CAPABILITY)
