#!/bin/sh
# lint.sh [BUILD_DIR]: run clang-tidy and cppcheck over every C file of the
# project, with the checked-in configuration (.clang-tidy, tests/.clang-tidy,
# .cppcheck-suppressions, scripts/cppcheck-cmocka.cfg).
#
# BUILD_DIR (default build-lint) is configured with CMake (re-run on an
# existing dir, so new files are seen; nothing is compiled). The default
# configuration is Debug (assert() stays visible to the analyzers) with
# RP_TEST_HOOKS on (the hook code is analysed too), the bench on
# (bench/bench_fns.c) and no sanitizers (no effect on the analysis).
#
# Scope: the .c files of cli/ common/ formats/ keys/ io/ engine/, and also
# tests/, tests/fuzz/ and bench/bench_fns.c: a bug in a test or a fuzz
# harness hides bugs in the code it checks. tests/.clang-tidy relaxes a few
# checks there. The C++ bench/*.cc files are not linted: they are a thin
# Google Benchmark layer, and .clang-tidy is written for C.
#
# Exits 0 when both tools are clean, 1 on any finding, 2 when a tool or the
# configuration is missing. LINT_JOBS (default 2) sets the parallelism.
set -eu

cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-build-lint}
jobs=${LINT_JOBS:-2}
start=$(date +%s)

missing=""
for tool in clang-tidy cppcheck cmake; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		missing="$missing $tool"
	fi
done
if [ -n "$missing" ]; then
	echo "lint.sh: not installed:$missing" >&2
	echo "lint.sh: install the Debian packages clang-tidy and cppcheck" \
		"(scripts/deps.sh, make deps)" >&2
	exit 2
fi

# configure a new build dir; re-run CMake on an existing one so that new
# .c files (the CMake lists glob them) are in compile_commands.json
if [ -f "$build/CMakeCache.txt" ]; then
	set -- -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
else
	echo "lint.sh: configuring '$build'" >&2
	set -- -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
		-DRP_SANITIZE=OFF -DRP_TEST_HOOKS=ON -DRP_BENCH=ON
fi
if ! cmake -S . -B "$build" "$@" >"$build.cmake.log" 2>&1; then
	cat "$build.cmake.log" >&2
	echo "lint.sh: cannot configure '$build'" >&2
	rm -f "$build.cmake.log"
	exit 2
fi
rm -f "$build.cmake.log"
db="$build/compile_commands.json"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# every project .c file in the compilation database, once
sed -n 's/^ *"file": *"\(.*\)",\{0,1\}$/\1/p' "$db" |
	grep -E "^$root/(cli|common|formats|keys|io|engine|tests|bench)/.*\.c$" |
	sort -u >"$tmp/files"
num_files=$(wc -l <"$tmp/files")
if [ "$num_files" -eq 0 ]; then
	echo "lint.sh: no project .c file in '$db'" >&2
	exit 2
fi

status=0

# clang-tidy, one process per file, $jobs at a time; each file's output is
# kept apart and printed whole, so parallel runs do not interleave.
# (run-clang-tidy would do the same but prints every command line.)
echo "lint.sh: clang-tidy $(clang-tidy --version |
	sed -n 's/.*LLVM version \([0-9.]*\).*/\1/p') on $num_files files" \
	"(-j$jobs)" >&2
t0=$(date +%s)
# shellcheck disable=SC2016
xargs -P "$jobs" -I{} sh -c '
	log="$2/$(echo "$1" | tr / _).log"
	if ! clang-tidy -p "$3" --quiet \
		--extra-arg=-Wno-unknown-warning-option "$1" >"$log" 2>&1; then
		echo "$1" >>"$2/failed"
	fi
' sh {} "$tmp" "$build" <"$tmp/files"
if [ -s "$tmp/failed" ]; then
	status=1
	sort "$tmp/failed" | while IFS= read -r f; do
		grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' \
			"$tmp/$(echo "$f" | tr / _).log" || true
	done
	echo "lint.sh: clang-tidy: findings in $(wc -l <"$tmp/failed")" \
		"file(s)" >&2
else
	echo "lint.sh: clang-tidy: clean" >&2
fi
t1=$(date +%s)
tidy_secs=$((t1 - t0))

# cppcheck over the same database. Third-party headers are not checked:
# cppcheck does not see the system include path, and scripts/
# cppcheck-cmocka.cfg tells it which cmocka macros do not return.
echo "lint.sh: $(cppcheck --version)" >&2
cpp_ok=1
if ! cppcheck --project="$db" --std=c11 \
	--enable=warning,portability,performance \
	--library=posix --library=gnu --library=openssl \
	--library=scripts/cppcheck-cmocka.cfg \
	--suppressions-list=.cppcheck-suppressions \
	--suppress='*:/usr/*' \
	--inline-suppr --error-exitcode=1 -j "$jobs" --quiet \
	--template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
	2>"$tmp/cppcheck"; then
	cpp_ok=0
fi
if [ -s "$tmp/cppcheck" ]; then
	cpp_ok=0
	cat "$tmp/cppcheck"
fi
if [ "$cpp_ok" -eq 1 ]; then
	echo "lint.sh: cppcheck: clean" >&2
else
	status=1
	echo "lint.sh: cppcheck: findings" >&2
fi
t2=$(date +%s)

echo "lint.sh: $(if [ "$status" -eq 0 ]; then echo clean; else
	echo FAILED; fi) in $((t2 - start))s (clang-tidy ${tidy_secs}s," \
	"cppcheck $((t2 - t1))s)" >&2
exit "$status"
