#!/bin/sh
# bench_ab.sh OLD NEW: two reprotect binaries on the same corpus, run in
# turn (OLD, NEW, OLD, NEW, ...) so that both meet the same machine noise;
# the RSA-2048 private-operation rate measured right before and after.
# Prints, per binary, the median docs/s, the median CPU time per
# document (user and system, from /usr/bin/time), which noise hardly moves,
# and the KiB the run wrote per document (its file system outputs,
# getrusage's ru_oublock, 512-byte units).
#
#   AB_DOCS=3000 AB_RUNS=5 AB_ARGS="--io uring" scripts/bench_ab.sh OLD NEW
#
# AB_ARGS_A and AB_ARGS_B (default AB_ARGS) give each side its own run
# options, to compare two ways of one binary:
#
#   AB_ARGS_A=--copy scripts/bench_ab.sh build/reprotect build/reprotect
#
# AB_ALG (default rsa2048; rsa3072, rsa4096, x25519) is the key type of
# both the old and the new key.
set -eu

[ $# -eq 2 ] || { echo "usage: $0 OLD NEW" >&2; exit 2; }
A=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
B=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
N=${AB_DOCS:-3000}
RUNS=${AB_RUNS:-5}
ARGS=${AB_ARGS:-}
ARGS_A=${AB_ARGS_A:-$ARGS}
ARGS_B=${AB_ARGS_B:-$ARGS}
ALG=${AB_ALG:-rsa2048}
CORES=$(nproc)
W=$(mktemp -d /tmp/reprotect-ab.XXXXXX)
trap 'rm -rf "$W"' EXIT
export REPROTECT_STORE="$W/store" REPROTECT_PASSPHRASE=bench
cd "$W"

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
speed() { openssl speed -seconds 3 -multi "$CORES" rsa2048 2>/dev/null | awk '/^rsa 2048/ { print $6 }' | tail -1; }

"$B" init >/dev/null
"$B" key create --alg "$ALG" --activate >/dev/null
python3 "$HERE/gen_corpus.py" docs --count "$N" 2>/dev/null
find docs -type f -name '*.bin' -print0 | xargs -0 -n 2000 "$B" protect >/dev/null
find docs -type f -name '*.bin' -delete
"$B" rekey --alg "$ALG" >/dev/null
cp -a docs pristine
cp -a store store.pristine

echo "machine: $CORES cores, $(uname -r); $N documents of 4-64 KiB, $ALG; $RUNS runs each; args: run --in-place --quiet, A: '$ARGS_A', B: '$ARGS_B'"
echo "openssl speed -multi $CORES rsa2048 before: $(speed) sign/s"
for i in $(seq "$RUNS"); do
	for which in A B; do
		eval "bin=\$$which args=\$ARGS_$which"
		rm -rf docs store
		cp -a pristine docs
		cp -a store.pristine store
		sync
		# shellcheck disable=SC2086
		/usr/bin/time -f "%e %U %S %O" -o t "$bin" run docs --in-place --quiet $args >/dev/null
		read -r e u s o <t
		echo "$e $u $s $o" >>"runs.$which"
	done
done
echo "openssl speed -multi $CORES rsa2048 after: $(speed) sign/s"
for which in A B; do
	eval "bin=\$$which"
	rate=$(awk -v n="$N" '{ print n / $1 }' "runs.$which" | median)
	user=$(awk -v n="$N" '{ print $2 / n * 1e6 }' "runs.$which" | median)
	sys=$(awk -v n="$N" '{ print $3 / n * 1e6 }' "runs.$which" | median)
	kib=$(awk -v n="$N" '{ print $4 * 512 / 1024 / n }' "runs.$which" | median)
	printf '%s %s: %.0f docs/s, %.0f us user + %.0f us system per document, %.1f KiB written per document\n' \
		"$which" "$bin" "$rate" "$user" "$sys" "$kib"
done
