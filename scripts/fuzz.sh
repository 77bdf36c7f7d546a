#!/bin/sh
# fuzz.sh [NAME...]: build the libFuzzer targets with clang and run them.
#
# Configures BUILD (default build-fuzz) with clang, -O2 -g (assert() on),
# RP_SANITIZE=ON and RP_FUZZ=ON, builds fuzz_<name> for every
# tests/fuzz/fuzz_<name>.c (or for the NAMEs given), then runs each for
# FUZZ_SECONDS (default 120) on a copy of its seed corpus
# tests/fuzz/corpus/<name>, one after the other. For each
# it prints libFuzzer's final stats (-print_final_stats=1: executions,
# executions per second, new units, peak RSS) and the coverage of the last
# log line (cov: edges, ft: features, corp: corpus units), then a summary
# table. A crash or a violated invariant stops that harness; its input is
# saved as BUILD/fuzz-out/<name>/crash-* (or leak-*, timeout-*, oom-*) and
# the script goes on with the next one and exits 1 at the end.
#
# Everything a run makes stays in BUILD/fuzz-out/<name>/: corpus/ (the
# seeds plus what libFuzzer added), log.txt, and any crash input. The
# checked-in corpus is never changed: to keep new inputs, minimise them
# into it by hand (fuzz_<name> -merge=1 tests/fuzz/corpus/<name>
# BUILD/fuzz-out/<name>/corpus).
#
# Environment: FUZZ_SECONDS (per harness, default 120), BUILD (default
# build-fuzz), FUZZ_ARGS (more libFuzzer options, split on spaces, e.g.
# "-max_len=8192"), JOBS (build parallelism, default nproc).
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build-fuzz}
SECS=${FUZZ_SECONDS:-120}
JOBS=${JOBS:-$(nproc)}

for t in clang clang++ cmake; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "fuzz.sh: '$t' is not installed (apt-get install clang" \
			"libclang-rt-14-dev, or the version of your clang)" >&2
		exit 2
	fi
done

if [ $# -gt 0 ]; then
	names="$*"
else
	names=$(cd "$TOP/tests/fuzz" && for f in fuzz_*.c; do
		f=${f#fuzz_}
		echo "${f%.c}"
	done)
fi
targets=
for n in $names; do
	if [ ! -f "$TOP/tests/fuzz/fuzz_$n.c" ]; then
		echo "fuzz.sh: no harness tests/fuzz/fuzz_$n.c" >&2
		exit 2
	fi
	targets="$targets fuzz_$n"
done

echo "== configure and build $BUILD (clang, ASan + UBSan, libFuzzer)"
cmake -S "$TOP" -B "$BUILD" -DCMAKE_C_COMPILER=clang \
	-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
	-DRP_SANITIZE=ON -DRP_FUZZ=ON -DRP_BENCH=OFF >/dev/null
# shellcheck disable=SC2086 # one word per target
cmake --build "$BUILD" -j "$JOBS" --target $targets >/dev/null

# the stat of libFuzzer's final stats named $2 in log $1
stat() {
	sed -n "s/^stat::$2: *//p" "$1" | tail -n 1
}

# field $2 (cov, ft, corp) of the last status line of log $1
field() {
	grep -E '^#[0-9]+' "$1" | tail -n 1 |
		sed -n "s/.* $2: \([^ ]*\).*/\1/p"
}

summary="$BUILD/fuzz-out/summary.txt"
mkdir -p "$BUILD/fuzz-out"
printf '%-12s %12s %9s %7s %7s %11s %s\n' harness executions exec/s \
	cov ft corp result >"$summary"
failed=0
for n in $names; do
	out="$BUILD/fuzz-out/$n"
	rm -rf "$out"
	mkdir -p "$out/corpus"
	cp "$TOP/tests/fuzz/corpus/$n"/* "$out/corpus/"
	echo
	echo "== fuzz_$n: ${SECS} s on" \
		"$(find "$out/corpus" -type f | wc -l) seeds"
	rc=0
	# shellcheck disable=SC2086 # FUZZ_ARGS is split on purpose
	"$BUILD/tests/fuzz/fuzz_$n" "$out/corpus" -max_total_time="$SECS" \
		-print_final_stats=1 -artifact_prefix="$out/" -timeout=30 \
		-rss_limit_mb=2560 ${FUZZ_ARGS:-} >"$out/log.txt" 2>&1 || rc=$?
	grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==[0-9]+==ERROR|SUMMARY)' \
		"$out/log.txt" || true
	result=ok
	if [ "$rc" -ne 0 ]; then
		failed=1
		result="FAILED($rc):"
		for f in "$out"/crash-* "$out"/leak-* "$out"/timeout-* \
			"$out"/oom-*; do
			[ -e "$f" ] && result="$result $(basename "$f")"
		done
		echo "fuzz.sh: fuzz_$n failed (exit $rc); see $out/log.txt" >&2
	fi
	printf '%-12s %12s %9s %7s %7s %11s %s\n' "$n" \
		"$(stat "$out/log.txt" number_of_executed_units)" \
		"$(stat "$out/log.txt" average_exec_per_sec)" \
		"$(field "$out/log.txt" cov)" "$(field "$out/log.txt" ft)" \
		"$(field "$out/log.txt" corp)" "$result" >>"$summary"
done

echo
echo "== summary (${SECS} s each; cov = edges covered, ft = features," \
	"corp = corpus units/size)"
cat "$summary"
exit "$failed"
