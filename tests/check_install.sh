#!/usr/bin/env bash
# Installs the built tq into a temporary prefix and builds and runs tests/consumer against it.
# usage: check_install.sh BUILD_DIR SOURCE_DIR TORCH_PREFIX
set -euo pipefail
build=$1 src=$2 torch_prefix=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > /dev/null
cmake -S "$src/tests/consumer" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix;$torch_prefix" > /dev/null
cmake --build "$work/consumer" > /dev/null
"$work/consumer/consumer"
