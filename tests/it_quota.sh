#!/bin/sh
# it_quota.sh: --key-ops RATE caps the private-key operations a run asks
# of its keystore. The checks are bounds a slow machine cannot break: the
# rate reached never exceeds the rate allowed (5% for the clock), the run
# takes at least (operations - 1) / rate seconds, every document moves,
# and a shard takes its share of the rate. (How close a run gets to its
# quota is a benchmark's question, not a test's.)
# Usage: sh tests/it_quota.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need python3

export REPROTECT_STORE="$T/store"
export REPROTECT_PASSPHRASE=quota-pass
expect_rc 0 "$RP" init
expect_rc 0 "$RP" key create --alg x25519 --activate
mkdir "$T/c"
i=0
while [ $i -lt 60 ]; do
	mkfile "$T/c/d$i" $((i * 11 + 1))
	i=$((i + 1))
done
expect_rc 0 "$RP" protect "$T"/c/d*
find "$T/c" -type f ! -name '*.age' -delete
expect_rc 0 "$RP" rekey --alg x25519

# quota_ok REPORT RATE: the report's key operations kept to RATE
quota_ok() {
	if py - "$1" "$2" <<'PY'; then pass; else fail "quota not kept: $(cat "$1")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
k, rate = r["key_ops"], float(sys.argv[2])
assert k["allowed_per_second"] == rate, k
assert k["count"] >= 60, k
assert k["per_second"] <= rate * 1.05, k
assert r["seconds"] >= (k["count"] - 1) / rate * 0.98, (r["seconds"], k)
assert k["waited_seconds"] > 0, k
PY
}

case_ "run --key-ops: every document moves, never faster than allowed"
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --key-ops 40 \
	--report "$T/r1.json"
assert_json "$T/r1.json" '["outcomes"]["moved"]["documents"]' 60
quota_ok "$T/r1.json" 40.0

case_ "verify --key-ops: the same cap"
expect_rc 0 "$RP" verify "$T/c" --quiet --key-ops 50 --report "$T/v1.json"
quota_ok "$T/v1.json" 50.0

case_ "a shard takes its share"
expect_rc 0 "$RP" rekey --alg x25519
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --key-ops 80 --shard 0/2 \
	--report "$T/s0.json"
assert_json "$T/s0.json" '["key_ops"]["allowed_per_second"]' 40.0

case_ "no cap: none reported"
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --report "$T/r2.json"
assert_json "$T/r2.json" '["key_ops"]["allowed_per_second"]' null
assert_json "$T/r2.json" '["key_ops"]["waited_seconds"]' 0.0

case_ "--key-ops: usage"
for bad in 0 -5 abc 1e9 ""; do
	expect_rc 2 "$RP" run "$T/c" --in-place --key-ops "$bad"
done

it_done
