#!/usr/bin/env bash
# Installs the Debian 12 packages tq needs. As root it runs apt-get; otherwise it prints the
# exact command and fails, so a user never gets a half-configured build.
set -euo pipefail
PACKAGES=(
  cmake g++ make ninja-build pkg-config
  libtorch-dev            # LibTorch 1.13 (CPU): ATen, autograd, the quantized engines
  libopenblas0-pthread    # fast BLAS for honest fp32 baselines (the default reference BLAS is ~40x slower)
  googletest libgtest-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev zlib1g-dev
  libstb-dev              # PNG / JPEG decoding for the tq tool's image folders
  libzip-dev              # zip record sizes checked before LibTorch allocates them
  libgloo-dev             # Gloo headers: tq/distributed runs on LibTorch's c10d Gloo backend
  dataset-fashion-mnist   # real data for the demo
  python3-torch           # the executable reference: golden data and the Python side of benchmarks
  python3-torchvision     # real architectures for graph mode (rebuilt from a seed; no downloads)
)
# `make fuzz` also needs clang and its libFuzzer / sanitizer runtimes.
if [ "${1:-}" = "fuzz" ]; then
  PACKAGES+=(clang libclang-rt-14-dev)
fi
# `make check-aarch64` cross-compiles the portable kernels.
if [ "${1:-}" = "cross" ]; then
  PACKAGES+=(g++-aarch64-linux-gnu)
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "tq: missing packages: ${missing[*]}" >&2
  echo "tq: run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "tq: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd
