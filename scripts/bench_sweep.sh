#!/bin/sh
# bench_sweep.sh [BUILD]: the engine's throughput against --batch and --jobs,
# with the machine's RSA-2048 private-operation rate as the reference, all
# measured in the same run. One generated corpus (scripts/gen_corpus.py,
# RSA-2048 -> RSA-2048 rewrap, 4-64 KiB); every point is the median of RUNS
# runs, each on a fresh copy of the corpus and store. The runs go in rounds
# (round 1 of every point, then round 2, ...) so that a drift in the
# machine's speed spreads over all the points instead of biasing some.
#
# Writes OUT/sweep-batch.csv, OUT/sweep-jobs.csv, OUT/sweep-info.txt and
# the plots OUT/batch.svg, OUT/jobs.svg (scripts/plot_svg.py).
#
#   BENCH_DOCS=2000 BENCH_RUNS=3 BENCH_OUT=docs/bench scripts/bench_sweep.sh build
#
# BENCH_BATCHES (default "1 2 4 8 16 32 64 128 256 1024", at --jobs 2) and
# BENCH_JOBS (default "1 2 3 4", at the default batch) change the points.
set -eu

BUILD=${1:-build}
R=$(cd "$BUILD" && pwd)/reprotect
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${BENCH_OUT:-$HERE/../docs/bench}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
N=${BENCH_DOCS:-2000}
RUNS=${BENCH_RUNS:-3}
BATCHES=${BENCH_BATCHES:-1 2 4 8 16 32 64 128 256 1024}
JOBS=${BENCH_JOBS:-1 2 3 4}
CORES=$(nproc)
[ -x "$R" ] || { echo "bench_sweep.sh: no $R (make build)" >&2; exit 1; }
W=$(mktemp -d /tmp/reprotect-sweep.XXXXXX)
trap 'rm -rf "$W"' EXIT
export REPROTECT_STORE="$W/store" REPROTECT_PASSPHRASE=bench
cd "$W"
start=$(date +%s)

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ceiling() { openssl speed -seconds 3 -multi "$CORES" rsa2048 2>/dev/null | awk '/^rsa 2048/ { print $6 }' | tail -1; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
load0=$(cut -d ' ' -f 1-3 /proc/loadavg)
echo "machine: $CORES cores, $cpu, $(uname -r), $(openssl version | cut -d' ' -f1-2)"
echo "load at start: $load0"
echo "corpus: $N RSA-2048 documents of 4-64 KiB; $RUNS runs per point, medians"

"$R" init >/dev/null
openssl genrsa -out a.pem 2048 2>/dev/null
openssl genrsa -out b.pem 2048 2>/dev/null
"$R" key import a.pem --activate >/dev/null
python3 "$HERE/gen_corpus.py" plain --count "$N" 2>/dev/null
find plain -type f -print0 | xargs -0 -n 2000 "$R" protect >/dev/null
find plain -type f ! -name '*.age' -delete
mv plain pristine
"$R" key import b.pem >/dev/null
B=$("$R" key list --json | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["state"]=="pending"][0])')
"$R" rekey --to "$B" >/dev/null
cp -a store store.pristine

# one engine run on a fresh copy: appends "docs/s mean-batch" to FILE
engine() {
	file=$1
	shift
	rm -rf docs store
	cp -a pristine docs
	cp -a store.pristine store
	sync
	"$R" run docs --in-place --quiet --json "$@" >r.json
	python3 -c 'import json; r=json.load(open("r.json")); assert r["outcomes"]["moved"]["documents"] == '"$N"', r["outcomes"]; print("%.1f %.1f" % (r["moved_per_second"], r["batches"]["mean"]))' >>"$file"
}

ceil_vals=$(ceiling)
round=1
while [ "$round" -le "$RUNS" ]; do
	echo "round $round of $RUNS" >&2
	for b in $BATCHES; do
		engine "batch-$b" --batch "$b" --jobs 2
	done
	for j in $JOBS; do
		engine "jobs-$j" --jobs "$j"
	done
	[ "$round" -eq 2 ] && ceil_vals="$ceil_vals $(ceiling)"
	round=$((round + 1))
done
ceil_vals="$ceil_vals $(ceiling)"
ceil=$(echo "$ceil_vals" | tr ' ' '\n' | grep . | median)
load1=$(cut -d ' ' -f 1-3 /proc/loadavg)

# CSV: the point, the median docs/s, the runs, the median mean batch size
# (a batch also closes after --batch-ms, default 50 ms), the ceiling and
# the ratio to it
csv() {
	name=$1
	shift
	{
		printf '%s,docs_per_s,' "$name"
		i=1
		while [ "$i" -le "$RUNS" ]; do printf 'run%d,' "$i"; i=$((i + 1)); done
		echo "mean_batch,ceiling_sign_per_s,ratio_to_ceiling"
		for v in "$@"; do
			m=$(cut -d' ' -f1 "$name-$v" | median)
			mb=$(cut -d' ' -f2 "$name-$v" | median)
			runs=$(cut -d' ' -f1 "$name-$v" | tr '\n' ',')
			awk -v v="$v" -v m="$m" -v r="$runs" -v mb="$mb" -v c="$ceil" \
				'BEGIN { printf "%s,%.1f,%s%.1f,%.1f,%.3f\n", v, m, r, mb, c, m / c }'
		done
	} >"$OUT/sweep-$name.csv"
}
# shellcheck disable=SC2086 # the lists are split on purpose
csv batch $BATCHES
# shellcheck disable=SC2086
csv jobs $JOBS

table() { awk -F, '{ for (i = 1; i <= NF; i++) printf "%-*s ", (i == 1) ? 6 : 11, $i; print "" }' "$1"; }

echo
echo "openssl speed -multi $CORES rsa2048 (start, middle, end): $ceil_vals sign/s; median $ceil"
echo
echo "--batch B at --jobs 2 (docs/s, median of $RUNS):"
table "$OUT/sweep-batch.csv"
echo
echo "--jobs J at the default batch (docs/s, median of $RUNS):"
table "$OUT/sweep-jobs.csv"

sub="$N docs, RSA-2048 rewrap, median of $RUNS; $CORES cores, $cpu"
python3 "$HERE/plot_svg.py" --csv "$OUT/sweep-batch.csv" --x batch --y docs_per_s \
	--log2x --hline "$ceil" --hline-label "RSA-2048 private-op ceiling (openssl speed -multi $CORES): $ceil/s" \
	--title "reprotect run: docs/s against --batch (--jobs 2)" --subtitle "$sub" \
	--xlabel="--batch (licenses per signature)" --ylabel "documents/s" \
	-o "$OUT/batch.svg"
python3 "$HERE/plot_svg.py" --csv "$OUT/sweep-jobs.csv" --x jobs --y docs_per_s \
	--hline "$ceil" --hline-label "RSA-2048 private-op ceiling (openssl speed -multi $CORES): $ceil/s" \
	--title "reprotect run: docs/s against --jobs (default batch)" --subtitle "$sub" \
	--xlabel="--jobs (crypto workers)" --ylabel "documents/s" \
	-o "$OUT/jobs.svg"

secs=$(($(date +%s) - start))
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "command: BENCH_DOCS=$N BENCH_RUNS=$RUNS scripts/bench_sweep.sh BUILD"
	echo "machine: $CORES cores, $cpu, Linux $(uname -r), $(openssl version | cut -d' ' -f1-2)"
	echo "load average (1, 5, 15 min): start $load0, end $load1"
	echo "openssl speed -multi $CORES rsa2048 sign/s (start, middle, end): $ceil_vals; median $ceil"
	echo "duration: $secs s"
} >"$OUT/sweep-info.txt"
echo
cat "$OUT/sweep-info.txt"
