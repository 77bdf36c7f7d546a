#!/bin/sh
# fuzz_ci.sh [NAME...]: the bounded fuzzing step of CI. Builds the
# libFuzzer targets in their own build directory and runs every harness
# (or the NAMEs given) for FUZZ_SECONDS (default 20) each, one after the
# other, on a copy of its checked-in corpus: scripts/fuzz.sh with CI's
# defaults. Prints each harness's executions and coverage, and exits 1 if
# any harness crashed, leaked, hung or broke an invariant, after printing
# the report of each failure (the stack, and the failing input in base64,
# so a CI log alone reproduces it: base64 -d >IN; fuzz_NAME IN).
#
# Environment: FUZZ_SECONDS (per harness, default 20), BUILD (default
# build-fuzz-ci, kept apart from `make fuzz`'s build-fuzz), JOBS, FUZZ_ARGS
# as for fuzz.sh. Needs clang and its runtime (scripts/deps.sh installs
# clang and libclang-rt-14-dev). On the 2-core development machine the
# whole step takes the build (49 s from scratch) plus FUZZ_SECONDS per
# harness: 289 s for the twelve harnesses at 20 s; see docs/TESTING.md.
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build-fuzz-ci}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
export BUILD FUZZ_SECONDS

start=$(date +%s)
rc=0
"$TOP/scripts/fuzz.sh" "$@" || rc=$?
if [ "$rc" -ne 0 ]; then
	for log in "$BUILD"/fuzz-out/*/log.txt; do
		[ -e "$log" ] || continue
		dir=$(dirname "$log")
		found=
		for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* \
			"$dir"/oom-*; do
			[ -e "$f" ] && found="$found $f"
		done
		[ -n "$found" ] || continue
		echo
		echo "== $(basename "$dir"): failure report"
		sed -n '/ERROR\|invariant violated/,$p' "$log" | head -n 80
		for f in $found; do
			echo "-- $(basename "$f") (base64):"
			head -c 4096 "$f" | base64
		done
	done
fi
echo "fuzz_ci.sh: $(($(date +%s) - start)) s in all (build and runs)"
exit "$rc"
