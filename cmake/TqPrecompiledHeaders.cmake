# LibTorch's headers cost most of every translation unit's compile time (ATen/ATen.h alone is about
# 10 s of a 17 s file), so each group of targets parses them once into a precompiled header: the
# library, the programs (the tool's header, reused by the demos and benchmarks) and the tests (their
# flags differ: -fPIC vs -fPIE, GoogleTest). Each header is about 400 MB on disk. With
# TQ_PRECOMPILE_HEADERS=OFF every file is compiled on its own includes, which checks that each
# includes what it uses.
option(TQ_PRECOMPILE_HEADERS "Precompile LibTorch's headers once per group of targets" ON)

set(TQ_TORCH_PRECOMPILED_HEADERS <ATen/ATen.h> <torch/nn/module.h> <torch/csrc/jit/api/module.h>
    <torch/csrc/jit/ir/ir.h>)

# Precompiles LibTorch's headers (and the ones given after the target) for `target`'s C++ files.
function(tq_precompile_headers target)
  if(TQ_PRECOMPILE_HEADERS)
    target_precompile_headers(${target} PRIVATE ${TQ_TORCH_PRECOMPILED_HEADERS} ${ARGN})
  endif()
endfunction()

# `target` uses the precompiled header of `origin` (same flags), or its own where `origin` is not
# built (a configuration without the tool).
function(tq_reuse_precompiled_headers target origin)
  if(TQ_PRECOMPILE_HEADERS)
    if(TARGET ${origin})
      target_precompile_headers(${target} REUSE_FROM ${origin})
    else()
      target_precompile_headers(${target} PRIVATE ${TQ_TORCH_PRECOMPILED_HEADERS})
    endif()
  endif()
endfunction()
