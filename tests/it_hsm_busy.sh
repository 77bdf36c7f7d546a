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

case_ "a token busy above 120/s (CKR_OPERATION_ACTIVE): all moved, 0.9-1.0 x"
expect_rc 0 "$RP" rekey --alg rsa2048
REPROTECT_TEST_BUSY=120:0x90 expect_rc 0 "$RP" run "$T/c" --in-place \
	--quiet --report "$T/r1.json"
busy_rate_ok "$T/r1.json" 120 "$N"
assert_json "$T/r1.json" '["binding"]' keystore
cat "$ERR" >&2
expect_rc 0 "$RP" verify "$T/c" --quiet

case_ "CKR_FUNCTION_REJECTED, under a --key-ops above the limit"
expect_rc 0 "$RP" rekey --alg rsa2048
REPROTECT_TEST_BUSY=150:0x200 expect_rc 0 "$RP" run "$T/c" --in-place \
	--quiet --key-ops 400 --report "$T/r2.json"
busy_rate_ok "$T/r2.json" 150 "$N"
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
REPROTECT_TEST_BUSY=2:0x90 stop_run "$T/j4" 10 "$RP" run "$T/c" --in-place \
	--quiet --report "$T/r4.json" --journal "$T/j4"
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
