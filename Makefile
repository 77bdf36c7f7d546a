# Thin wrapper over CMake. The real build is CMakeLists.txt.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build build-asan test test-release test-asan demo bench bench-e2e fuzz clean format

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRP_SANITIZE=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# Every test, in the release build and in the ASan+UBSan build.
test: test-release test-asan

demo: build
	scripts/demo.sh $(BUILD)/reprotect

bench: build
	scripts/bench.sh $(BUILD)

# the end-to-end engine benchmark (BENCH_DOCS, BENCH_RUNS, BENCH_BIG_MB)
bench-e2e: build
	scripts/bench_e2e.sh $(BUILD)/reprotect

# every libFuzzer target for FUZZ_SECONDS (default 120) each, clang build
fuzz: deps
	scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cc')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
