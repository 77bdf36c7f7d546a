#!/bin/sh
# it_engine_out.sh REPROTECT: run --out DIR writes a mirror tree and leaves
# the source tree byte for byte as it was.
set -eu

RP=$1
T=$(mktemp -d /tmp/rp-it-out.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
export REPROTECT_STORE="$T/store" REPROTECT_PASSPHRASE=pw

fail() {
	echo "it_engine_out: FAIL: $*" >&2
	exit 1
}

"$RP" init >/dev/null
"$RP" key create --alg x25519 --activate >/dev/null
mkdir -p src/a/b plain
i=0
while [ "$i" -lt 25 ]; do
	d=src/a
	[ $((i % 2)) -eq 0 ] && d=src/a/b
	head -c $((i * 997)) /dev/urandom >"$d/doc $i"
	cp "$d/doc $i" "plain/$i"
	if [ "$i" -eq 20 ]; then
		"$RP" rekey >/dev/null # 20..24 are under the new key already
	fi
	"$RP" protect "$d/doc $i" >/dev/null
	rm "$d/doc $i"
	i=$((i + 1))
done
echo "not a document" >src/a/readme.txt
B=$("$RP" key list --json | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["state"]=="active"][0])')
(cd src && find . -type f -exec sha256sum {} + | sort) >before.sum

rc=0
"$RP" run src --in-place --out mirror >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "--in-place with --out: exit $rc, want 2"
rc=0
"$RP" run src --out src/a/mirror >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "--out inside the tree: exit $rc, want 2"

"$RP" run src --out mirror --quiet --json >r.json || fail "run exit $?"
python3 - r.json <<'PY' || fail "report"
import json, sys
o = json.load(open(sys.argv[1]))["outcomes"]
assert o["moved"]["documents"] == 20, o
assert o["current"]["documents"] == 5, o
assert o["skipped-not-age"]["documents"] == 1, o
PY
(cd src && find . -type f -exec sha256sum {} + | sort) >after.sum
cmp -s before.sum after.sum || fail "the source tree changed"
[ "$(find mirror -type f | wc -l)" -eq 25 ] || fail "the mirror does not hold 25 documents"
[ ! -e mirror/a/readme.txt ] || fail "a non-document was mirrored"
i=0
while [ "$i" -lt 25 ]; do
	d=mirror/a
	[ $((i % 2)) -eq 0 ] && d=mirror/a/b
	"$RP" unprotect "$d/doc $i.age" -o "out$i" || fail "mirror doc $i does not open"
	cmp -s "out$i" "plain/$i" || fail "mirror doc $i differs"
	"$RP" inspect --json "$d/doc $i.age" | grep -q "\"key_id\": \"$B\"" ||
		fail "mirror doc $i is not under the active key"
	i=$((i + 3))
done
[ "$(stat -c %a mirror/a/b)" = 700 ] || fail "mirror folders are not 0700"
"$RP" run src --out mirror --quiet --json >r2.json || fail "second run"
python3 -c 'import json; o=json.load(open("r2.json"))["outcomes"]; assert o["current"]["documents"] == 25 and o["moved"]["documents"] == 0, o' ||
	fail "the second run rewrote the mirror"
find mirror src -name '*rp-tmp*' | grep -q . && fail "temporary files left"
echo "it_engine_out: ok"
