#!/bin/sh
# it_hsm_busy.sh: a PKCS#11 token that answers busy above a rate (a
# throttled HSM or KMS). The test hook REPROTECT_TEST_BUSY=RATE:CODE makes
# the SoftHSM2 token's private-key calls (C_Decrypt, C_Sign) answer CODE
# (CKR_OPERATION_ACTIVE, AWS CloudHSM's busy, or CKR_FUNCTION_REJECTED)
# once RATE calls were let through in the last second. The run must
# back off and come back up, fail no document for it, and keep the rate
# of operations done within 10% under the token's limit; a run paced
# below the limit is never told busy; a stop is honoured while the token
# is busy. Needs the test hooks (the sanitizer build); skipped elsewhere.
# Usage: sh tests/it_hsm_busy.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need python3 softhsm2-util
MOD=/usr/lib/softhsm/libsofthsm2.so
if [ ! -e "$MOD" ]; then
	echo "$IT_NAME: SoftHSM2 is not installed: skipped"
	exit 77
fi
if ! grep -q REPROTECT_TEST_BUSY "$RP"; then
	echo "$IT_NAME: no test hooks in this build: skipped"
	exit 77
fi

softhsm_token rp-busy
export REPROTECT_STORE="$T/store" REPROTECT_PASSPHRASE=busy-pass
export REPROTECT_PKCS11_PIN=1234
expect_rc 0 "$RP" init --backend pkcs11 --pkcs11-module "$MOD" \
	--pkcs11-token rp-busy
expect_rc 0 "$RP" key create --alg rsa2048 --activate
N=1200
mkdir "$T/c"
i=0
while [ $i -lt $N ]; do
	mkfile "$T/c/d$i" $((i % 97 * 13 + 1))
	i=$((i + 1))
done
expect_rc 0 "$RP" protect "$T"/c/d*
find "$T/c" -type f ! -name '*.age' -delete

# rate_ok REPORT LIMIT: every document moved, busy answers came, and the
# operations done (asked minus answered busy) ran at 0.9 to 1.0 x LIMIT
rate_ok() {
	if py - "$1" "$2" "$N" <<'PY'; then pass; else fail "$(cat "$1")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
limit, n = float(sys.argv[2]), int(sys.argv[3])
k = r["key_ops"]
done = k["count"] - k["busy"]
rate = done / r["seconds"]
print("rate %.1f/s of %.0f (%.2f), %d busy answers, %.1f s, pace at end %s"
      % (rate, limit, rate / limit, k["busy"], r["seconds"],
         k["pace_at_end"]), file=sys.stderr)
assert r["outcomes"]["moved"]["documents"] == n, r["outcomes"]
assert not [d for d in r["documents"] if d["outcome"].startswith("failed")]
assert k["busy"] > 0, k
assert done >= n, k
assert rate <= limit * 1.02 + limit / r["seconds"], rate
assert rate >= limit * 0.90, rate
PY
}

case_ "a token busy above 120/s (CKR_OPERATION_ACTIVE): all moved, 0.9-1.0 x"
expect_rc 0 "$RP" rekey --alg rsa2048
REPROTECT_TEST_BUSY=120:0x90 expect_rc 0 "$RP" run "$T/c" --in-place \
	--quiet --report "$T/r1.json"
rate_ok "$T/r1.json" 120
assert_json "$T/r1.json" '["binding"]' keystore
cat "$ERR" >&2
expect_rc 0 "$RP" verify "$T/c" --quiet

case_ "CKR_FUNCTION_REJECTED, under a --key-ops above the limit"
expect_rc 0 "$RP" rekey --alg rsa2048
REPROTECT_TEST_BUSY=150:0x200 expect_rc 0 "$RP" run "$T/c" --in-place \
	--quiet --key-ops 400 --report "$T/r2.json"
rate_ok "$T/r2.json" 150
cat "$ERR" >&2
assert_json "$T/r2.json" '["key_ops"]["allowed_per_second"]' 400.0

case_ "paced below the limit: never told busy"
expect_rc 0 "$RP" rekey --alg rsa2048
REPROTECT_TEST_BUSY=150:0x90 expect_rc 0 "$RP" run "$T/c" --in-place \
	--quiet --key-ops 120 --report "$T/r3.json"
assert_json "$T/r3.json" '["key_ops"]["busy"]' 0
assert_json "$T/r3.json" '["outcomes"]["moved"]["documents"]' $N

case_ "a stop while the token is busy: exit 8 at once, nothing failed"
expect_rc 0 "$RP" rekey --alg rsa2048
REPROTECT_TEST_BUSY=2:0x90 "$RP" run "$T/c" --in-place --quiet \
	--report "$T/r4.json" --journal "$T/j4" >/dev/null 2>"$T/e4" &
_pid=$!
wait_for -e "$T/j4"
sleep 1 # busy by now: 2 operations a second
_t0=$(date +%s)
kill -TERM "$_pid"
_rc=0
wait "$_pid" || _rc=$?
_t1=$(date +%s)
assert_eq "$_rc" 8 "exit after SIGTERM"
if [ $((_t1 - _t0)) -le 10 ]; then pass; else
	fail "the stop took $((_t1 - _t0)) s"
fi
assert_json "$T/r4.json" '["stopped"]' true
if py - "$T/r4.json" <<'PY'; then pass; else fail "$(cat "$T/r4.json")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
assert r["key_ops"]["busy"] > 0, r["key_ops"]
# documents not moved are untouched and say why; none failed for busy
for d in r["documents"]:
    assert "busy" not in d["reason"] or "stopped" in d["reason"], d
PY
expect_rc 0 "$RP" run "$T/c" --in-place --quiet --report "$T/r5.json"
assert_json "$T/r5.json" \
	'["outcomes"]["moved"]["documents"] + d["outcomes"]["current"]["documents"]' $N
expect_rc 0 "$RP" verify "$T/c" --quiet

it_done
