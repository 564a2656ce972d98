# The two commands a new user runs: `make demo` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: deps configure build demo test test-libtorch1 deps-torch2 deps-torchvision build-torch2 test-torch2 bench-minilm vit-demo test-avx2 check-aarch64 test-sanitize fuzz bench accuracy golden clean

deps:
	@bash scripts/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS) > /dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build deps-torch2
	@$(BUILD_DIR)/apps/demo/tq_demo --data /usr/share/datasets/fashion-mnist --out $(BUILD_DIR)/demo
	@/usr/bin/python3 tools/graph_demo.py --tq $(BUILD_DIR)/apps/cli/tq --data /usr/share/datasets/fashion-mnist \
	  --out $(BUILD_DIR)/demo --ort-python $(TORCH2_VENV)/bin/python

# Every test on both LibTorch versions: Debian's 1.13 (the minimum; the full build in $(BUILD_DIR))
# and PyTorch 2.x's (the library, the tool and the tests in $(TORCH2_BUILD_DIR)). Each run ends
# with its counts and the tests that did not run, with their reasons.
test:
	@t0=$$(date +%s); rc=0; $(MAKE) --no-print-directory test-libtorch1 || rc=$$?; \
	  echo "== LibTorch 1.13, build and test: $$(( $$(date +%s) - t0 )) s"; exit $$rc
	@t0=$$(date +%s); rc=0; $(MAKE) --no-print-directory test-torch2 || rc=$$?; \
	  echo "== LibTorch 2.x, install, build and test: $$(( $$(date +%s) - t0 )) s"; exit $$rc

test-libtorch1: build
	@bash scripts/run_ctest.sh "LibTorch 1.13" $(BUILD_DIR) -j $(JOBS)

# LibTorch 2.x: the CPU build of the pinned pip torch, in a virtual environment of its own, whose
# Python is also the live PyTorch 2.x reference of the tests.
TORCH2_VENV ?= $(CURDIR)/.venv-torch2
TORCH2_BUILD_DIR ?= build-torch2
deps-torch2: deps
	@bash scripts/install_deps.sh torch2 $(TORCH2_VENV)

# torch 2.14.1 + torchvision 0.29.1 + torchao 0.18.0: eager torchvision models for PyTorch 2.x's own
# graph quantizer (torchao's PT2E), which tq's graph mode is compared with (tests/check_pt2e_parity.py).
TORCHVISION_VENV ?= $(CURDIR)/.venv-torchvision
deps-torchvision: deps
	@bash scripts/install_deps.sh torchvision $(TORCHVISION_VENV)

build-torch2: deps-torch2 deps-torchvision
	@cmake -S . -B $(TORCH2_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_PREFIX_PATH="$$($(TORCH2_VENV)/bin/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" \
	  -DTQ_BUILD_BENCHMARKS=OFF -DTQ_BUILD_DEMOS=OFF -DTQ_TORCH2_PYTHON=$(TORCH2_VENV)/bin/python \
	  -DTQ_TORCHVISION_PYTHON=$(TORCHVISION_VENV)/bin/python \
	  -DTQ_PEER_CLI=$(CURDIR)/$(BUILD_DIR)/apps/cli/tq $(CMAKE_ARGS) > /dev/null
	@cmake --build $(TORCH2_BUILD_DIR) -j $(JOBS)

test-torch2: build-torch2
	@bash scripts/run_ctest.sh "LibTorch 2.x" $(TORCH2_BUILD_DIR) -j $(JOBS)

# all-MiniLM-L6-v2's latency table (docs/PERFORMANCE.md). On the 2.x build, where the encoder is
# traced (the SentenceEncoder.TraceMiniLM test fixture); its benchmark alone is added to that build.
bench-minilm: build-torch2
	@cmake -S . -B $(TORCH2_BUILD_DIR) -DTQ_BUILD_BENCHMARKS=ON > /dev/null
	@cmake --build $(TORCH2_BUILD_DIR) --target tq_minilm_bench
	@cd $(TORCH2_BUILD_DIR) && ctest -R '^SentenceEncoder.TraceMiniLM' > /dev/null
	@$(TORCH2_BUILD_DIR)/bench/tq_minilm_bench --dir $(TORCH2_BUILD_DIR)/tests/output/minilm \
	  --json $(TORCH2_BUILD_DIR)/bench/minilm.json

# A small torchvision ViT trained on Fashion-MNIST (first run: about 13 minutes of training on 2
# cores, then cached), quantized by the 2.x build's tool: accuracy on the 10,000 test images and
# speed against fp32 at batch 1 and 64 (docs/ACCURACY.md, docs/PERFORMANCE.md).
vit-demo: build-torch2
	@/usr/bin/python3 tools/vit_demo.py --tq $(TORCH2_BUILD_DIR)/apps/cli/tq --data /usr/share/datasets/fashion-mnist \
	  --out $(TORCH2_BUILD_DIR)/vit_demo

# The suite again on the AVX2 path, whatever the machine: oneDNN capped at AVX2 (no VNNI: its int8
# kernels then saturate full-range activations, as on AMD Zen 3 or Intel before Cascade Lake),
# ATen's and tq's kernels on their AVX2 copies, OpenBLAS on its Haswell kernels. PyTorch writes the
# float-kernel golden data again under the same caps (GoldenHere.*). Left out: the install test, and
# the tool's commands on the torchvision models (plumbing; the graph-mode tests run those models here).
AVX2_ENV = ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 TQ_CPU_CAPABILITY=avx2 \
  OPENBLAS_CORETYPE=Haswell
test-avx2: build
	@env $(AVX2_ENV) bash scripts/run_ctest.sh "LibTorch 1.13, AVX2 path" $(BUILD_DIR) -j $(JOBS) -E '^Package\.|^Cli\.CommandsOnTorchvisionModels$$'

# The portable kernels compile for aarch64 (a cross-compiler from Debian; nothing runs).
check-aarch64:
	@bash scripts/install_deps.sh cross
	@bash scripts/check_aarch64.sh

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer (-O0: compiles in half the time; its own build
# directory). Left out: the install test (it builds an unsanitized consumer against tq), and the tool's
# commands on the torchvision models (the graph-mode tests run those models through the library here;
# the tool's own code runs in Cli.ExitCodesMessagesAndOutputs).
SANITIZE_DIR ?= build-sanitize
test-sanitize: deps
	@cmake -S . -B $(SANITIZE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O0" \
	  -DTQ_SANITIZE=address,undefined -DTQ_BUILD_BENCHMARKS=OFF -DTQ_BUILD_DEMOS=OFF > /dev/null
	@cmake --build $(SANITIZE_DIR) -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:check_initialization_order=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 bash scripts/run_ctest.sh "LibTorch 1.13, sanitizers" \
	  $(SANITIZE_DIR) -j $(JOBS) -E '^Package\.|^Cli\.CommandsOnTorchvisionModels$$'

# libFuzzer on the state-dict loader, the TorchScript loader and the tool's data loaders (clang,
# ASan + UBSan), FUZZ_RUNS executions each from the committed seed corpus (fuzz/corpus); new
# inputs go to $(FUZZ_DIR)/corpus, crashes to $(FUZZ_DIR)/findings. Figures: docs/FUZZING.md.
FUZZ_DIR ?= build-fuzz
FUZZ_RUNS ?= 1000000
fuzz:
	@bash scripts/install_deps.sh fuzz
	@CXX=clang++ cmake -S fuzz -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS)
	@bash scripts/run_fuzz.sh $(FUZZ_DIR) $(FUZZ_RUNS) fuzz_state_dict fuzz_torchscript fuzz_cli_data

bench: build
	@$(BUILD_DIR)/bench/tq_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
	  --benchmark_enable_random_interleaving=true --benchmark_min_time=0.5
	@/usr/bin/python3 bench/histogram_observer_bench.py --tq $(BUILD_DIR)/bench/tq_histogram_bench

# The post-training accuracy table (docs/ACCURACY.md): needs `make demo`'s trained CNN and ResNet-18.
accuracy: build
	@/usr/bin/python3 bench/ptq_accuracy.py --tq $(BUILD_DIR)/apps/cli/tq --data /usr/share/datasets/fashion-mnist \
	  --out $(BUILD_DIR)/bench/ptq_accuracy.json --demo-dir $(BUILD_DIR)/demo --adaround-samples 256 \
	  --cnn-bench $(BUILD_DIR)/bench/tq_cnn_ptq_accuracy

# Re-creates the committed golden files from PyTorch (Debian's python3-torch): pure numerics,
# the same on every CPU. Values that depend on float kernels (the eager, graph-mode, QAT, AdaRound
# and interop parities) are written at test time by the GoldenHere.* tests (tests/CMakeLists.txt).
golden:
	@/usr/bin/python3 tools/gen_golden.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_fake_quant.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_folding.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_calibration.py --out tests/golden

clean:
	@rm -rf $(BUILD_DIR) $(TORCH2_BUILD_DIR)
