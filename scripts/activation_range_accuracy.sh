#!/usr/bin/env bash
# The graph demo's ResNet-18 (cached by `make demo`) quantized with both activation ranges by the
# tq tool, each evaluated on the 10,000 Fashion-MNIST test images on the machine's own int8 path
# and on the AVX2 path (oneDNN capped at AVX2: no VNNI, as on AMD Zen 3 or Intel before Cascade
# Lake). Prints a markdown table (docs/ACCURACY.md).
#
#   scripts/activation_range_accuracy.sh [BUILD_DIR] [DATA_DIR]
set -euo pipefail
build=${1:-build}
data=${2:-/usr/share/datasets/fashion-mnist}
tq=$build/apps/cli/tq
model=$build/demo/resnet18_fashion.pt
[ -f "$model" ] || { echo "no $model: run make demo first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
norm=(--normalize-idx --mean 0.2860 --std 0.3530)
calib=(--calib "$data/train-images-idx3-ubyte.gz" --limit 1024 "${norm[@]}")
"$tq" quantize "$model" -o "$out/reduced.pt" "${calib[@]}" > /dev/null
"$tq" quantize "$model" -o "$out/full.pt" "${calib[@]}" --full-range > /dev/null
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); features: $(grep -o 'avx512_vnni\|avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo
echo "| activations | int8 path | accuracy | fp32 accuracy | top-1 agreement | SQNR dB vs fp32 |"
echo "|---|---|---:|---:|---:|---:|"
for range in reduced full; do
  for path in native avx2; do
    env_cap=()
    [ "$path" = avx2 ] && env_cap=(env ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2)
    "${env_cap[@]}" "$tq" compare "$model" "$out/$range.pt" --data "$data/t10k-images-idx3-ubyte.gz" \
      --labels "$data/t10k-labels-idx1-ubyte.gz" --batch-size 256 --report "$out/$range-$path.json" "${norm[@]}" \
      > /dev/null 2> "$out/$range-$path.err"
    isa=$([ "$path" = avx2 ] && echo "oneDNN capped at AVX2 (no VNNI)" || echo "this CPU's")
    warned=$(grep -c "saturate" "$out/$range-$path.err" || true)
    /usr/bin/python3 - "$out/$range-$path.json" "$range" "$isa" "$warned" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
rng = "[0, 127] (default)" if sys.argv[2] == "reduced" else "[0, 255] (--full-range)"
note = " (warned)" if sys.argv[4] != "0" else ""
print(f"| {rng} | {sys.argv[3]}{note} | {100 * j['quantized_accuracy']:.2f}% | {100 * j['float_accuracy']:.2f}% | "
      f"{100 * j['top1_agreement']:.2f}% | {j['output_sqnr_db']:.1f} |")
PY
  done
done
