#!/bin/sh
# it_engine_p11.sh REPROTECT: the bulk engine with both keys on a PKCS#11
# token (a SoftHSM2 token this test creates): every document moves from
# A to B, opens to its exact bytes, and a second run finds nothing to do.
set -eu

RP=$1
MOD=/usr/lib/softhsm/libsofthsm2.so
if [ ! -e "$MOD" ] || ! command -v softhsm2-util >/dev/null 2>&1; then
	echo "it_engine_p11: SoftHSM2 is not installed: skipped"
	exit 77
fi
T=$(mktemp -d /tmp/rp-it-p11.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$T" >softhsm2.conf
export SOFTHSM2_CONF="$T/softhsm2.conf"
softhsm2-util --init-token --free --label rp-engine --pin 1234 --so-pin 5678 >/dev/null
export REPROTECT_STORE="$T/store" REPROTECT_PASSPHRASE=pw REPROTECT_PKCS11_PIN=1234

fail() {
	echo "it_engine_p11: FAIL: $*" >&2
	exit 1
}

"$RP" init --backend pkcs11 --pkcs11-module "$MOD" --pkcs11-token rp-engine >/dev/null
A=$("$RP" key create --alg rsa2048 --activate | cut -c1-64)
mkdir -p docs/sub plain
i=0
while [ "$i" -lt 60 ]; do
	head -c $((i * 1531)) /dev/urandom >"plain/$i"
	cp "plain/$i" "docs/sub/$i"
	i=$((i + 1))
done
"$RP" protect docs/sub/* >/dev/null
rm -f docs/sub/[0-9] docs/sub/[0-9][0-9]
B=$("$RP" rekey --alg rsa2048 | awk '/^active:/ { print $2 }')
[ -n "$B" ] && [ "$B" != "$A" ] || fail "rekey gave no new key"

"$RP" run docs --in-place --quiet --json --jobs 2 >r.json 2>run.err ||
	fail "run exit $?"
# workers open the token concurrently: one keystore, released at the end
[ ! -s run.err ] || fail "run printed: $(cat run.err)"
python3 - r.json <<'PY' || fail "report"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["outcomes"]["moved"]["documents"] == 60, r["outcomes"]
assert r["batches"]["count"] >= 1
PY
i=0
while [ "$i" -lt 60 ]; do
	"$RP" unprotect "docs/sub/$i.age" -o "out-$i" || fail "unprotect $i"
	cmp -s "out-$i" "plain/$i" || fail "document $i differs"
	"$RP" inspect --json "docs/sub/$i.age" | grep -q "\"key_id\": \"$B\"" ||
		fail "document $i is not under B"
	i=$((i + 5))
done
"$RP" verify docs --quiet >/dev/null || fail "verify"
"$RP" run docs --in-place --quiet --json >r2.json || fail "second run"
python3 -c 'import json,sys; r=json.load(open("r2.json")); assert r["outcomes"]["current"]["documents"] == 60, r["outcomes"]' ||
	fail "second run moved something"
"$RP" audit verify >/dev/null || fail "audit"
echo "it_engine_p11: ok (60 documents moved between two keys on a SoftHSM2 token)"
