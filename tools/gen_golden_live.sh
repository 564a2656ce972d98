#!/usr/bin/env bash
# The committed pure-numerics golden files written again by another PyTorch (a LibTorch 2.x build's
# tests: PyTorch 2.x as the live reference). Files no generator here writes are copied as committed.
# usage: gen_golden_live.sh PYTHON COMMITTED_GOLDEN_DIR OUT_DIR
set -euo pipefail
python=$1
committed=$2
out=$3
tools=$(cd "$(dirname "$0")" && pwd)
rm -rf "$out"
mkdir -p "$out"
cp -r "$committed"/. "$out"/
"$python" -c 'import torch; print("golden data from PyTorch", torch.__version__)'
for generator in gen_golden gen_golden_fake_quant gen_golden_calibration gen_golden_folding; do
  "$python" -W ignore "$tools/$generator.py" --out "$out" > /dev/null
done
"$python" -W ignore "$tools/gen_histogram_reference.py" > "$out/histogram_observer_reference.json.tmp"
mv "$out/histogram_observer_reference.json.tmp" "$out/histogram_observer_reference.json"
