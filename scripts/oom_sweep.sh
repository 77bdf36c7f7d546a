#!/bin/sh
# oom_sweep.sh: run a reprotect command again and again with memory
# failing at a different point each time, and say how each run ended.
#
#   scripts/oom_sweep.sh MODE FIRST STEP LAST BINARY ARGS...
#
# MODE
#   vmem  FIRST..LAST are `ulimit -v` limits in MB (the release build: the
#         sanitizers reserve terabytes of address space)
#   vmemk the same in KB, to look closely at a window
#   nth   the Nth allocation of the process fails, only that one
#   from  every allocation from the Nth on fails
# nth and from preload failmalloc.so (tests/failmalloc.c; built beside the
# unit tests of a release build, or give its path in OOM_SHIM).
#
# Each run has a fresh folder, its current folder. OOM_SETUP, if set, is
# shell run there first (copy a store and a corpus in, export
# REPROTECT_STORE); OOM_CHECK, if set, is shell run there after the
# command with RC set to its exit code: whatever it prints is a problem
# (a document damaged, a temporary file left). ARGS may name files the
# setup made, relative to the run's folder.
#
# One line per run on standard output, tab-separated: N, exit code (128+
# signal for a crash), what OOM_CHECK printed, the crash's stack (from the
# core file, through gdb: needs /proc/sys/kernel/core_pattern to write
# "core" in the current folder), and the head of standard error. A run's
# folder is kept (under OOM_DIR, default a new temporary folder) when it
# crashed or OOM_CHECK found something. OOM_JOBS (default 2) runs at once.
#
# Example: the engine over a store and corpus made once in /tmp/fx:
#   OOM_SETUP='cp -a /tmp/fx/store /tmp/fx/docs .; export REPROTECT_STORE=$PWD/store' \
#   OOM_CHECK='[ $RC -lt 128 ] || echo crash' \
#   scripts/oom_sweep.sh vmem 30 1 120 build/reprotect run docs --in-place --quiet
set -eu

if [ $# -lt 5 ]; then
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
mode=$1
first=$2
step=$3
last=$4
shift 4
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
case $mode in
vmem | vmemk | nth | from) ;;
*)
	echo "oom_sweep.sh: MODE is vmem, vmemk, nth or from" >&2
	exit 2
	;;
esac
shim=${OOM_SHIM:-$(dirname "$bin")/tests/failmalloc.so}
if [ "${mode#vmem}" = "$mode" ] && [ ! -f "$shim" ]; then
	echo "oom_sweep.sh: no failmalloc.so at '$shim' (OOM_SHIM)" >&2
	exit 2
fi
shim=$(cd "$(dirname "$shim")" && pwd)/$(basename "$shim")
dir=${OOM_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/oom-sweep.XXXXXX")}
mkdir -p "$dir"
echo "oom_sweep.sh: runs in $dir" >&2

# one N: the run, then its line
one() {
	n=$1
	shift
	w=$dir/run.$n
	rm -rf "$w"
	mkdir -p "$w"
	cd "$w" || return 1
	(
		if [ -n "${OOM_SETUP:-}" ]; then
			eval "$OOM_SETUP"
		fi
		# shellcheck disable=SC3045 # dash and bash have -c and -v
		ulimit -c unlimited 2>/dev/null || true
		# shellcheck disable=SC3045
		case $mode in
		vmem) ulimit -v $((n * 1024)) && exec "$bin" "$@" ;;
		vmemk) ulimit -v "$n" && exec "$bin" "$@" ;;
		nth) RP_FAILMALLOC_NTH=$n LD_PRELOAD=$shim exec "$bin" "$@" ;;
		from) RP_FAILMALLOC_FROM=$n LD_PRELOAD=$shim exec "$bin" "$@" ;;
		esac
	) >out.txt 2>err.txt </dev/null && RC=0 || RC=$?
	stack=""
	if [ -f core ]; then
		stack=$(gdb -q -batch -ex "bt 16" "$bin" core 2>/dev/null |
			grep -E '^#[0-9]+ ' |
			sed -E 's/^#[0-9]+ +(0x[0-9a-f]+ in )?//; s/ \(.*\) at / at /; s/ \(.*//' |
			grep -vE '^(__pthread_kill|__GI_raise|raise|__GI_abort|abort)' |
			head -8 | tr '\n' ';')
		gdb -q -batch -ex "thread apply all bt 30" "$bin" core \
			>stack.txt 2>&1 || true
		rm -f core
	fi
	found=""
	if [ -n "${OOM_CHECK:-}" ]; then
		found=$(eval "$OOM_CHECK" 2>&1 | tr '\n\t' '  ') || true
	fi
	msg=$(head -c 240 err.txt | tr '\n\t' '  ')
	printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$RC" "$found" "$stack" "$msg"
	cd "$dir" || return 1
	if [ "$RC" -lt 128 ] && [ -z "$found" ]; then
		rm -rf "$w"
	fi
}

# with OOM_JOBS > 1, this script runs itself once per N through xargs
if [ -n "${OOM_SWEEP_ONE:-}" ]; then
	one "$OOM_SWEEP_ONE" "$@"
	exit 0
fi
export OOM_DIR="$dir" OOM_SHIM="$shim"
seq "$first" "$step" "$last" |
	xargs -P "${OOM_JOBS:-2}" -I{} env OOM_SWEEP_ONE={} \
		sh "$0" "$mode" "$first" "$step" "$last" "$bin" "$@"
