#!/bin/sh
# bench_e2e.sh REPROTECT: the end-to-end engine benchmark. Everything is
# measured in the same run, against references measured in the same run:
# the machine's RSA-2048 private-operation rate (openssl speed -multi),
# the stock age tool, and a plain copy. Prints medians of RUNS runs.
#
#   BENCH_DOCS=2000 BENCH_RUNS=3 BENCH_BIG_MB=256 scripts/bench_e2e.sh build/reprotect
#
# The last section runs the engine with both keys on a SoftHSM2 token
# (skipped if SoftHSM2 is not installed or BENCH_P11_DOCS=0): the first
# BENCH_P11_DOCS (default 1000) documents of the same corpus, against the
# token's own raw RSA-2048 decrypt rate over as many sessions as the engine
# has workers (BUILD/bench/p11_rate, built with RP_BENCH=ON), measured
# after each engine run. BENCH_P11_MODULE overrides the module path.
set -eu

R=${1:-build/reprotect}
R=$(cd "$(dirname "$R")" && pwd)/$(basename "$R")
HERE=$(cd "$(dirname "$0")" && pwd)
N=${BENCH_DOCS:-2000}
RUNS=${BENCH_RUNS:-3}
BIG_MB=${BENCH_BIG_MB:-256}
AGE_DOCS=${BENCH_AGE_DOCS:-200}
P11_DOCS=${BENCH_P11_DOCS:-1000}
P11_MOD=${BENCH_P11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
P11_RATE=$(dirname "$R")/bench/p11_rate
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
find plain -type f -print0 | xargs -0 -n 2000 "$R" protect >/dev/null
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

# the fixed cost of a run (the store opened: the passphrase's scrypt, key
# loads), timed on an empty folder and taken off the per-document CPU
mkdir empty
fixed=""
for i in 1 2 3; do
	/usr/bin/time -f "%U %S" -o t "$R" run empty --in-place --quiet >/dev/null
	fixed="$fixed $(awk '{ print ($1 + $2) * 1e6 }' t)"
done
fixed=$(echo "$fixed" | tr ' ' '\n' | grep . | median)

# one engine run on a fresh copy; prints docs/s, and appends the run's CPU
# time per document, the fixed cost taken off (us: user+system user system)
# to cpu.LABEL
engine() {
	rm -rf docs store
	cp -a pristine docs
	cp -a store.pristine store
	sync
	/usr/bin/time -f "%U %S" -o t "$R" run docs --in-place --quiet --json "$@" >r.json
	awk -v n="$N" -v f="$fixed" '{ u = $1 * 1e6; s = $2 * 1e6; printf "%.0f %.0f %.0f\n", (u + s - f) / n, u / n, s / n }' t >>"cpu.$tag"
	python3 -c 'import json; r=json.load(open("r.json")); assert r["outcomes"]["moved"]["documents"] == '"$N"', r["outcomes"]; print("%.1f" % r["moved_per_second"])'
}

bench() {
	label=$1
	tag=$2
	shift 2
	vals=""
	i=0
	: >"cpu.$tag"
	while [ "$i" -lt "$RUNS" ]; do
		vals="$vals $(engine "$@")"
		i=$((i + 1))
	done
	m=$(echo "$vals" | tr ' ' '\n' | grep . | median)
	echo "$m"
	printf '%-44s %10s docs/s  (runs:%s)  CPU/doc %s us (user %s, system %s)\n' "$label" "$m" "$vals" \
		"$(cut -d' ' -f1 "cpu.$tag" | median)" "$(cut -d' ' -f2 "cpu.$tag" | median)" "$(cut -d' ' -f3 "cpu.$tag" | median)" >&2
}
cpu() { cut -d' ' -f"$2" "cpu.$1" | median; }

# the reference: the bare in-place I/O sequence (bench/inplace_ref), no
# cryptography, on a fresh copy; prints its CPU per document (user+system)
# and leaves "files/s user system" in ref.IO
REF=$(dirname "$R")/bench/inplace_ref
reference() {
	rm -rf docs
	cp -a pristine docs
	sync
	"$REF" --io "$1" docs | awk '{ print $10, $12, $16 }' | tr -d , >"ref.$1"
	awk '{ printf "%.0f", $2 + $3 }' "ref.$1"
}

echo
echo "engine, rewrap, RSA-2048 -> RSA-2048:"
d_batch=$(bench "default batch (64), io uring, durability batch" uring)
d_batch1=$(bench "--batch 1" b1 --batch 1)
d_sync=$(bench "--io sync" sync --io sync)
d_each=$(bench "--durability each" each --durability each)
d_none=$(bench "--durability none" none --durability none)
d_copy=$(bench "--copy (the copying path)" copy --copy)

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
echo "  in place / --copy:                                $(ratio "$d_batch" "$d_copy")"

# CPU per document: the engine's, the RSA-2048 private operation's (one
# per document, one per batch for its signature: CORES / the -multi rate),
# and the reference program's bare in-place I/O sequence
priv=$(awk -v c="$ceil" -v k="$CORES" 'BEGIN { printf "%.0f", k / c * 1e6 * (1 + 1 / 64) }')
if [ -x "$REF" ]; then
	ref_u=$(reference uring)
	ref_s=$(reference sync)
else
	ref_u=0 ref_s=0
	echo "  (no $REF: configure with -DRP_BENCH=ON and build)"
fi
echo
echo "CPU per document (us, user + system, the run's fixed cost of $(awk -v f="$fixed" 'BEGIN { printf "%.0f", f / 1000 }') ms taken off):"
echo "  engine in place, io uring:        $(cpu uring 1)  (user $(cpu uring 2), system $(cpu uring 3))"
echo "  engine in place, io sync:         $(cpu sync 1)  (user $(cpu sync 2), system $(cpu sync 3))"
echo "  engine --copy:                    $(cpu copy 1)  (user $(cpu copy 2), system $(cpu copy 3))"
echo "  RSA-2048 private operations:      $priv  (one per document + 1/64 for the batch signature, from openssl speed)"
echo "  engine outside them, io uring:    $(awk -v a="$(cpu uring 1)" -v b="$priv" 'BEGIN { printf "%.0f", a - b }')"
echo "  reference in place, io uring:     $ref_u  ($(cat ref.uring 2>/dev/null | awk '{ print $1 }') files/s)"
echo "  reference in place, io sync:      $ref_s  ($(cat ref.sync 2>/dev/null | awk '{ print $1 }') files/s)"
echo "  system time, uring / sync: engine $(ratio "$(cpu uring 3)" "$(cpu sync 3)"), reference $(ratio "$(awk '{ print $3 }' ref.uring 2>/dev/null || echo 0)" "$(awk '{ print $3 }' ref.sync 2>/dev/null || echo 1)")"
ceil2=$(openssl speed -seconds 3 -multi "$CORES" rsa2048 2>/dev/null | awk '/^rsa 2048/ { print $6 }' | tail -1)
echo "openssl speed -multi $CORES rsa2048 after: $ceil2 sign/s"

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

# scale-out: the same corpus in 1, 2 and 4 shards run at once on this
# machine (each with --jobs CORES/N, at least 1), their reports merged
# (report merge: moved over the wall time, first start to last end); then
# a keystore quota: --key-ops QUOTA alone and shared by 2 shards
QUOTA=${BENCH_QUOTA:-500}
shards() {
	n=$1
	shift
	rm -rf docs store
	cp -a pristine docs
	cp -a store.pristine store
	sync
	j=$((CORES / n))
	[ "$j" -ge 1 ] || j=1
	i=0
	t0=$(now)
	while [ "$i" -lt "$n" ]; do
		"$R" run docs --in-place --quiet --jobs "$j" --shard "$i/$n" \
			--report "s$i.json" "$@" >/dev/null &
		i=$((i + 1))
	done
	wait
	t1=$(now)
	set --
	i=0
	while [ "$i" -lt "$n" ]; do
		set -- "$@" "s$i.json"
		i=$((i + 1))
	done
	"$R" report merge "$@" --report merged.json >/dev/null
	python3 - merged.json "$N" "$(elapsed "$t0" "$t1")" "$@" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
n, wall = int(sys.argv[2]), float(sys.argv[3])
s = [json.load(open(f)) for f in sys.argv[4:]]
assert m["complete"] and m["outcomes"]["moved"]["documents"] == n, m["shards"]
each = " ".join("%.0f" % r["moved_per_second"] for r in s)
k = m["key_ops"]
print("%d shard(s): %.0f docs/s in total (merged; each: %s), %.2f s wall, "
      "key ops %.1f/s%s, binds: %s" % (
          len(s), m["moved_per_second"], each, m["seconds"],
          k["per_second"],
          "" if k["allowed_per_second"] is None else
          " of %.0f allowed (%.3f)" % (k["allowed_per_second"],
                                       k["per_second"] / k["allowed_per_second"]),
          ",".join(sorted(set(r["binding"] for r in s)))))
PY
}
echo
echo "scale-out (the same $N documents; report merge):"
for n in 1 2 4; do
	shards "$n"
done
echo "under a keystore quota of $QUOTA operations/s:"
shards 1 --key-ops "$QUOTA"
shards 2 --key-ops "$QUOTA"

# SoftHSM2: the same documents with both keys on a token, against the
# token's own raw RSA rate. Each document costs one token decrypt (the
# unwrap under A), each batch one token signature (B): the engine can reach
# at most rate / (1 + 1/batch) docs/s.
echo
if [ "$P11_DOCS" -le 0 ]; then
	echo "SoftHSM2 section: skipped (BENCH_P11_DOCS=0)"
	exit 0
fi
if [ ! -e "$P11_MOD" ] || ! command -v softhsm2-util >/dev/null 2>&1; then
	echo "SoftHSM2 section: skipped, SoftHSM2 is not installed ($P11_MOD, softhsm2-util)"
	exit 0
fi
if [ ! -x "$P11_RATE" ]; then
	echo "SoftHSM2 section: skipped, no $P11_RATE (configure with -DRP_BENCH=ON and build)"
	exit 0
fi
[ "$P11_DOCS" -le "$N" ] || P11_DOCS=$N
mkdir p11 p11/tokens p11/pristine
printf 'directories.tokendir = %s/p11/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$W" >p11/softhsm2.conf
export SOFTHSM2_CONF="$W/p11/softhsm2.conf" REPROTECT_PKCS11_PIN=1234
softhsm2-util --init-token --free --label rp-bench --pin 1234 --so-pin 5678 </dev/null >/dev/null
# (only *.age: the age loop above left its *.age.new outputs in pristine)
(cd pristine && find . -type f -name '*.age' | sort | head -n "$P11_DOCS" | xargs cp --parents -t ../p11/pristine)
rm -rf docs store
export REPROTECT_STORE="$W/p11/store"
"$R" init --backend pkcs11 --pkcs11-module "$P11_MOD" --pkcs11-token rp-bench >/dev/null
"$R" key import a.pem --activate >/dev/null
"$R" key import b.pem >/dev/null
"$R" rekey --to "$B" >/dev/null
cp -a p11/store p11/store.pristine
A_LABEL=rp-$("$R" key list --json | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["state"]=="archived"][0][:16])')-rsa
echo "SoftHSM2 $(dpkg-query -W -f '${Version}' softhsm2 2>/dev/null || echo '?'): $P11_DOCS documents (the first of the corpus), A and B imported onto a token, --jobs $CORES; $RUNS runs, medians"

# one engine run on the token on a fresh copy, then the token's raw rate
p11_vals=""
batch_vals=""
rate_vals=""
soft_vals=""
i=0
while [ "$i" -lt "$RUNS" ]; do
	rm -rf p11/docs p11/store
	cp -a p11/pristine p11/docs
	cp -a p11/store.pristine p11/store
	sync
	"$R" run p11/docs --in-place --quiet --json --jobs "$CORES" >r.json
	p11_vals="$p11_vals $(python3 -c 'import json; r=json.load(open("r.json")); assert r["outcomes"]["moved"]["documents"] == '"$P11_DOCS"', r["outcomes"]; print("%.1f" % r["moved_per_second"])')"
	batch_vals="$batch_vals $(python3 -c 'import json; print(json.load(open("r.json"))["batches"]["mean"])')"
	out=$("$P11_RATE" --module "$P11_MOD" --token rp-bench --key "$A_LABEL" --threads "$CORES" --seconds 2)
	rate_vals="$rate_vals $(echo "$out" | awk '{ print $9 }')"
	# the soft keystore on the same documents, same moment
	rm -rf p11/docs store
	cp -a p11/pristine p11/docs
	cp -a store.pristine store
	sync
	REPROTECT_STORE="$W/store" "$R" run p11/docs --in-place --quiet --json --jobs "$CORES" >r.json
	soft_vals="$soft_vals $(python3 -c 'import json; r=json.load(open("r.json")); assert r["outcomes"]["moved"]["documents"] == '"$P11_DOCS"', r["outcomes"]; print("%.1f" % r["moved_per_second"])')"
	i=$((i + 1))
done
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
p11_m=$(med "$p11_vals")
rate_m=$(med "$rate_vals")
soft_m=$(med "$soft_vals")
printf '%-44s %10s docs/s  (runs:%s)\n' "engine on the token (default batch)" "$p11_m" "$p11_vals"
printf '%-44s %10s ops/s   (runs:%s)\n' "token raw RSA-2048 decrypt, $CORES sessions" "$rate_m" "$rate_vals"
printf '%-44s %10s docs/s  (runs:%s)\n' "engine, soft keystore, same documents" "$soft_m" "$soft_vals"
batch_m=$(med "$batch_vals")
echo "  engine on the token / token raw decrypt rate:  $(ratio "$p11_m" "$rate_m")  (at most 1 / (1 + 1/batch) = $(awk -v b="$batch_m" 'BEGIN { printf "%.2f", 1 / (1 + 1 / b) }'), mean batch $batch_m)"
echo "  engine on the token / engine on soft keys:     $(ratio "$p11_m" "$soft_m")"
