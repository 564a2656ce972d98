# The two commands a new user runs: `make demo` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: deps configure build demo test bench accuracy golden clean

deps:
	@bash scripts/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS) > /dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	@$(BUILD_DIR)/apps/demo/tq_demo --data /usr/share/datasets/fashion-mnist --out $(BUILD_DIR)/demo
	@/usr/bin/python3 tools/graph_demo.py --tq $(BUILD_DIR)/apps/cli/tq --data /usr/share/datasets/fashion-mnist \
	  --out $(BUILD_DIR)/demo

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

bench: build
	@$(BUILD_DIR)/bench/tq_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
	  --benchmark_enable_random_interleaving=true --benchmark_min_time=0.5
	@/usr/bin/python3 bench/histogram_observer_bench.py --tq $(BUILD_DIR)/bench/tq_histogram_bench

# The post-training accuracy table (docs/ACCURACY.md): needs `make demo`'s trained CNN and ResNet-18.
accuracy: build
	@/usr/bin/python3 bench/ptq_accuracy.py --tq $(BUILD_DIR)/apps/cli/tq --data /usr/share/datasets/fashion-mnist \
	  --out $(BUILD_DIR)/bench/ptq_accuracy.json --demo-dir $(BUILD_DIR)/demo --adaround-samples 256 \
	  --cnn-bench $(BUILD_DIR)/bench/tq_cnn_ptq_accuracy

# Re-creates the golden files from PyTorch (Debian's python3-torch).
golden:
	@/usr/bin/python3 tools/gen_golden.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_fake_quant.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_eager.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_folding.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_adaround_layer.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_calibration.py --out tests/golden
	@/usr/bin/python3 tools/gen_golden_graph_seed.py --out tests/golden/graph
	@/usr/bin/python3 tools/gen_golden_graph_fx.py --out tests/golden/graph
	@/usr/bin/python3 tools/gen_golden_graph_fx.py --out tests/golden/graph --activation minmax
	@PYTHONHASHSEED=0 /usr/bin/python3 tools/gen_golden_graph_dynamic.py --out tests/golden/graph

clean:
	@rm -rf $(BUILD_DIR)
