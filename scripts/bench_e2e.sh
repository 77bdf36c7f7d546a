#!/bin/sh
# bench_e2e.sh REPROTECT: the end-to-end engine benchmark. Everything is
# measured in the same run, against references measured in the same run:
# the machine's RSA-2048 private-operation rate (openssl speed -multi),
# the stock age tool, and a plain copy. Prints medians of RUNS runs.
#
#   BENCH_DOCS=2000 BENCH_RUNS=3 BENCH_BIG_MB=256 scripts/bench_e2e.sh build/reprotect
set -eu

R=${1:-build/reprotect}
R=$(cd "$(dirname "$R")" && pwd)/$(basename "$R")
HERE=$(cd "$(dirname "$0")" && pwd)
N=${BENCH_DOCS:-2000}
RUNS=${BENCH_RUNS:-3}
BIG_MB=${BENCH_BIG_MB:-256}
AGE_DOCS=${BENCH_AGE_DOCS:-200}
CORES=$(nproc)
W=$(mktemp -d /tmp/reprotect-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
export REPROTECT_STORE="$W/store" REPROTECT_PASSPHRASE=bench
cd "$W"

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }

echo "machine: $CORES cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -r), $(openssl version | cut -d' ' -f1-2)"
echo "corpus: $N RSA-2048 documents of 4-64 KiB; $RUNS runs each, medians"

"$R" init >/dev/null
openssl genrsa -out a.pem 2048 2>/dev/null
openssl genrsa -out b.pem 2048 2>/dev/null
"$R" key import a.pem --activate >/dev/null
python3 "$HERE/gen_corpus.py" plain --count "$N" 2>/dev/null
find plain -type f | xargs -n 2000 "$R" protect >/dev/null
mkdir docs
(cd plain && find . -name '*.age' | cpio -pdm --quiet ../docs 2>/dev/null) ||
	(cd plain && find . -name '*.age' -exec cp --parents {} ../docs/ \;)
rm -rf plain
"$R" key import b.pem >/dev/null
B=$("$R" key list --json | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["state"]=="pending"][0])')
"$R" rekey --to "$B" >/dev/null
cp -a docs pristine
cp -a store store.pristine

# ceiling: RSA-2048 private operations per second on all cores
ceil=$(openssl speed -seconds 3 -multi "$CORES" rsa2048 2>/dev/null | awk '/^rsa 2048/ { print $6 }' | tail -1)
echo "openssl speed -multi $CORES rsa2048: $ceil sign/s (the private-op ceiling)"

# one engine run on a fresh copy; prints docs/s
engine() {
	rm -rf docs store
	cp -a pristine docs
	cp -a store.pristine store
	sync
	"$R" run docs --in-place --quiet --json "$@" >r.json
	python3 -c 'import json; r=json.load(open("r.json")); assert r["outcomes"]["moved"]["documents"] == '"$N"', r["outcomes"]; print("%.1f" % r["moved_per_second"])'
}

bench() {
	label=$1
	shift
	vals=""
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		vals="$vals $(engine "$@")"
		i=$((i + 1))
	done
	m=$(echo "$vals" | tr ' ' '\n' | grep . | median)
	echo "$m"
	printf '%-44s %10s docs/s  (runs:%s)\n' "$label" "$m" "$vals" >&2
}

echo
echo "engine, rewrap, RSA-2048 -> RSA-2048:"
d_batch=$(bench "default batch (64), io uring, durability batch")
d_batch1=$(bench "--batch 1" --batch 1)
d_sync=$(bench "--io sync" --io sync)
d_each=$(bench "--durability each" --durability each)
d_none=$(bench "--durability none" --durability none)

# the stock age tool: decrypt with the old key, encrypt to the new, 2 at once
ssh-keygen -y -f b.pem >b.pub 2>/dev/null
find pristine -type f | head -n "$AGE_DOCS" >age-list
t0=$(now)
xargs -P 2 -n 1 sh -c 'age -d -i a.pem "$0" | age -R b.pub -o "$0.new"' <age-list
t1=$(now)
age_rate=$(awk -v n="$AGE_DOCS" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { printf "%.1f", n / s }')
printf '%-44s %10s docs/s  (%s documents)\n' "stock age loop (-d then -R, 2 in parallel)" "$age_rate" "$AGE_DOCS" >&2

echo
echo "ratios:"
echo "  engine (default batch) / RSA private-op ceiling: $(ratio "$d_batch" "$ceil")"
echo "  default batch / --batch 1:                        $(ratio "$d_batch" "$d_batch1")"
echo "  io uring / io sync:                               $(ratio "$d_batch" "$d_sync")"
echo "  engine / stock age loop:                          $(ratio "$d_batch" "$age_rate")"

# large documents: rewrap and reencrypt against a plain copy
if [ "$BIG_MB" -gt 0 ]; then
	rm -rf docs store big
	cp -a store.pristine store
	"$R" rekey --alg rsa2048 >/dev/null 2>&1 || true
	rm -rf store
	cp -a store.pristine store
	mkdir big
	head -c $((BIG_MB * 1024 * 1024)) /dev/urandom >big/doc
	"$R" key list >/dev/null
	# protect under A: make A active again in a scratch store
	rm -rf store
	"$R" init >/dev/null
	"$R" key import a.pem --activate >/dev/null
	"$R" protect big/doc >/dev/null
	rm big/doc
	"$R" key import b.pem >/dev/null
	"$R" rekey --to "$B" >/dev/null
	cp -a store store.big
	cp big/doc.age big.pristine
	t0=$(now); cp big.pristine big.copy; sync; t1=$(now)
	copy=$(awk -v m="$BIG_MB" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { printf "%.0f", m * 1.048576 / s }')
	rm -f big.copy
	for mode in rewrap reencrypt; do
		rm -rf store
		cp -a store.big store
		cp big.pristine big/doc.age
		sync
		/usr/bin/time -f '%M' -o rss "$R" run big --in-place --quiet --json --mode "$mode" >r.json
		mbs=$(python3 -c 'import json; r=json.load(open("r.json")); print("%.0f" % r["moved_mb_per_second"])')
		printf '%-44s %10s MB/s  (peak RSS %s KiB)\n' "$BIG_MB MiB document, $mode" "$mbs" "$(cat rss)" >&2
		echo "  $BIG_MB MiB $mode / plain copy ($copy MB/s):   $(ratio "$mbs" "$copy")"
	done
fi

# peak memory on the small-document run
rm -rf docs store
cp -a pristine docs
cp -a store.pristine store
/usr/bin/time -f '%M' -o rss "$R" run docs --in-place --quiet >/dev/null
echo "  peak RSS, $N documents:                      $(cat rss) KiB"
