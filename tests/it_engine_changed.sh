#!/bin/sh
# it_engine_changed.sh REPROTECT: a document changed while the run holds
# it is reported failed-changed and keeps the writer's bytes, not the
# run's. Needs the test hooks (the sanitizer build): skipped elsewhere.
set -eu

RP=$1
if ! grep -q REPROTECT_TEST_PAUSE "$RP"; then
	echo "it_engine_changed: no test hooks in this build: skipped"
	exit 77
fi
T=$(mktemp -d /tmp/rp-it-chg.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
export REPROTECT_STORE="$T/store" REPROTECT_PASSPHRASE=pw

fail() {
	echo "it_engine_changed: FAIL: $*" >&2
	exit 1
}

"$RP" init >/dev/null
"$RP" key create --alg x25519 --activate >/dev/null
mkdir docs
for i in 1 2 3 4 5 6; do
	head -c 5000 /dev/urandom >"docs/$i"
done
"$RP" protect docs/1 docs/2 docs/3 docs/4 docs/5 docs/6 >/dev/null
rm docs/1 docs/2 docs/3 docs/4 docs/5 docs/6
"$RP" rekey >/dev/null

start=$(date +%s)
cp -a docs docs.orig
REPROTECT_TEST_PAUSE=run:before-commit:4000 "$RP" run docs --in-place --copy --quiet \
	--json --batch 64 >r.json &
pid=$!
# wait until the writer holds the whole batch: six temporaries written
n=0
while [ "$(ls -A docs | grep -c 'rp-tmp')" -lt 6 ]; do
	if ! kill -0 "$pid" 2>/dev/null; then
		# finished without pausing: a binary without the test hooks
		wait "$pid" || true
		echo "it_engine_changed: no test hooks in this build: skipped"
		exit 77
	fi
	n=$((n + 1))
	[ "$n" -lt 400 ] || fail "the run never reached its commit"
	sleep 0.05
done
# the run holds every document, written but not yet renamed: change two
cp docs.orig/2.age docs/2.age.new && mv docs/2.age.new docs/2.age # replaced
printf 'x' >>docs/5.age                                           # appended
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 1 ] || fail "run exit $rc, want 1"
python3 - r.json <<'PY' || fail "report"
import json, sys
r = json.load(open(sys.argv[1]))
o = r["outcomes"]
assert o["failed-changed"]["documents"] == 2, o
assert o["moved"]["documents"] == 4, o
paths = sorted(d["path"] for d in r["documents"] if d["outcome"] == "failed-changed")
assert [p.split("/")[-1] for p in paths] == ["2.age", "5.age"], paths
PY
# the changed files keep what the other writer put there
cmp -s docs/2.age docs.orig/2.age || fail "2.age was replaced by the run"
[ "$(wc -c <docs/5.age)" -eq $(($(wc -c <docs.orig/5.age) + 1)) ] ||
	fail "5.age lost the appended byte"
ls -A docs | grep -q 'rp-tmp' && fail "temporary files left"
# the next run moves what is left and reports the damaged one
"$RP" run docs --in-place --quiet --json >r2.json || true
python3 -c 'import json; r=json.load(open("r2.json")); o=r["outcomes"]; assert o["moved"]["documents"] == 1 and o["failed-bad-document"]["documents"] == 1, o' ||
	fail "second run"
echo "it_engine_changed: ok ($(($(date +%s) - start)) s)"
