#!/usr/bin/env bash
# Cross-compiles tq's portable kernels (every CPU kernel's baseline copy, the scalar references,
# the kernel dispatch and the int8 ISA detection) for aarch64, so that x86-only code in them fails
# CI. LibTorch's headers are architecture-independent; only they are taken from the host.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX_AARCH64:-aarch64-linux-gnu-g++}
TORCH_INCLUDE=${TORCH_INCLUDE:-/usr/include}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/include"
for d in ATen c10 caffe2 torch; do ln -s "$TORCH_INCLUDE/$d" "$work/include/$d"; done
sources=(src/kernels/cpu/*.cpp src/kernels/reference/*.cpp src/kernels/cpu_capability.cpp src/kernels/tensor_kernels.cpp
         src/kernels/int8/saturation.cpp)
for f in "${sources[@]}"; do
  "$CXX" -std=c++17 -O2 -fopenmp -Wall -Werror=return-type -DTQ_CPU_CAPABILITY=default -Iinclude \
    -isystem "$work/include" -c "$f" -o "$work/$(basename "$f").o"
done
file "$work"/*.o | grep -c 'ARM aarch64' | xargs -I{} echo "aarch64: {} of ${#sources[@]} kernel translation units compiled"
