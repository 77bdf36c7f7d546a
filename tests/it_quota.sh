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

case_ "the quota binds, and the report says so"
assert_json "$T/r1.json" '["binding"]' key-quota

case_ "a dry run's estimate: key operations, the time at the quota, samples"
expect_rc 0 "$RP" rekey --alg x25519
expect_rc 0 "$RP" run "$T/c" --dry-run --quiet --key-ops 20 \
	--report "$T/d1.json"
assert_grep "$OUT" "estimate: 61 key operations"
assert_grep "$OUT" "binds: key-quota"
if py - "$T/d1.json" <<'PY'; then pass; else fail "estimate: $(cat "$T/d1.json")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
e = r["estimate"]
assert e["documents"] == 60 and e["key_ops"] == 61, e
assert abs(e["key_ops_seconds_at_quota"] - 61 / 20) < 0.06, e
assert e["samples"] == 16 and e["cpu_us_per_document"] > 0, e
assert e["in_place"] + e["copies"] == 60, e
assert e["binds"] == "key-quota", e
assert r["outcomes"]["would-move"]["documents"] == 60, r["outcomes"]
# the dry run measured unpaced: 16 samples do not wait for 20/s
assert r["seconds"] < 61 / 20, r["seconds"]
PY
expect_rc 0 "$RP" run "$T/c" --dry-run --quiet --report "$T/d2.json"
assert_json "$T/d2.json" '["estimate"]["key_ops_seconds_at_quota"]' null
if py - "$T/d2.json" <<'PY'; then pass; else fail "estimate: $(cat "$T/d2.json")"; fi
import json, sys
e = json.load(open(sys.argv[1]))["estimate"]
assert e["binds"] in ("cpu", "keystore"), e
PY
expect_rc 0 "$RP" run "$T/c" --in-place --quiet

case_ "a stop under a slow quota does not wait for the pace"
expect_rc 0 "$RP" rekey --alg x25519
# 60 documents in flight at 5/s held the stop 12 s and more before
stop_run "$T/j5" 4 "$RP" run "$T/c" --in-place --quiet --key-ops 5 \
	--report "$T/s5.json" --journal "$T/j5"
assert_json "$T/s5.json" '["stopped"]' true
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --report "$T/s5b.json"
assert_json "$T/s5b.json" \
	'["outcomes"]["moved"]["documents"] + d["outcomes"]["current"]["documents"]' 60

case_ "the store's quota binds every run; --key-ops only lowers it"
expect_rc 0 "$RP" quota
assert_grep "$OUT" "quota: none"
expect_rc 0 "$RP" quota 30
assert_grep "$OUT" "quota: 30 private-key operations a second"
expect_rc 0 "$RP" quota
assert_grep "$OUT" "quota: 30"
expect_rc 0 "$RP" audit
assert_grep "$OUT" "quota"
expect_rc 0 "$RP" rekey --alg x25519
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --report "$T/q1.json"
quota_ok "$T/q1.json" 30.0
expect_rc 0 "$RP" rekey --alg x25519
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --key-ops 500 \
	--report "$T/q2.json"
assert_json "$T/q2.json" '["key_ops"]["allowed_per_second"]' 30.0
expect_rc 0 "$RP" rekey --alg x25519
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --shard 1/2 \
	--report "$T/q3.json"
assert_json "$T/q3.json" '["key_ops"]["allowed_per_second"]' 15.0
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --shard 0/2 --key-ops 20 \
	--report "$T/q4.json"
assert_json "$T/q4.json" '["key_ops"]["allowed_per_second"]' 10.0
expect_rc 2 "$RP" quota 0
expect_rc 2 "$RP" quota 1000001
expect_rc 2 "$RP" quota fast
expect_rc 0 "$RP" quota none
assert_grep "$OUT" "quota: none"
expect_rc 0 "$RP" rekey --alg x25519
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --report "$T/q5.json"
assert_json "$T/q5.json" '["key_ops"]["allowed_per_second"]' null
expect_rc 0 "$RP" audit verify

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
