# Thin wrapper over CMake. The real build is CMakeLists.txt.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan

LINT_BUILD ?= build-lint

.PHONY: all deps build build-asan test test-release test-asan test-valgrind test-fuzz lint demo bench bench-e2e bench-sweep fuzz clean format

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

# The cmocka unit tests of the release build under valgrind memcheck, JOBS
# at a time; tests/valgrind.supp holds the few third-party suppressions.
# A test that exits 77 (no SoftHSM token, no io_uring) is skipped. Each
# test's output is in $(BUILD)/tests/NAME.valgrind.log.
VALGRIND_FLAGS ?= -q --error-exitcode=1 --leak-check=full \
	--errors-for-leak-kinds=definite \
	--suppressions=$(CURDIR)/tests/valgrind.supp

test-valgrind: build
	@cd $(BUILD)/tests && \
	find . -maxdepth 1 -type f -perm -u+x -name 'test_*' | sort | \
	xargs -P $(JOBS) -I{} sh -c 't=$${1#./}; \
		valgrind $(VALGRIND_FLAGS) "./$$t" >"$$t.valgrind.log" 2>&1; \
		rc=$$?; \
		if [ $$rc -eq 0 ]; then echo "valgrind ok:   $$t"; \
		elif [ $$rc -eq 77 ]; then echo "valgrind skip: $$t"; \
		else echo "valgrind FAIL: $$t (exit $$rc)"; \
			cat "$$t.valgrind.log"; exit 1; fi' sh {}

# every libFuzzer harness for FUZZ_SECONDS (default 20) each: a clang
# ASan+UBSan build in build-fuzz-ci; any crash or broken invariant fails
test-fuzz: deps
	scripts/fuzz_ci.sh

# clang-tidy and cppcheck with the checked-in configuration
lint: deps
	scripts/lint.sh $(LINT_BUILD)

# Every test, in the release build and in the ASan+UBSan build; the unit
# tests under valgrind; every fuzzer for a short time; the linters.
test: test-release test-asan test-valgrind test-fuzz lint

demo: build
	scripts/demo.sh $(BUILD)/reprotect

bench: build
	scripts/bench.sh $(BUILD)

# the end-to-end engine benchmark (BENCH_DOCS, BENCH_RUNS, BENCH_BIG_MB)
bench-e2e: build
	scripts/bench_e2e.sh $(BUILD)/reprotect

# docs/s against --batch and --jobs: docs/bench/*.csv and *.svg (BENCH_DOCS, BENCH_RUNS)
bench-sweep: build
	scripts/bench_sweep.sh $(BUILD)

# every libFuzzer target for FUZZ_SECONDS (default 120) each, clang build
fuzz: deps
	scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cc')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(LINT_BUILD) build-fuzz-ci
