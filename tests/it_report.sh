#!/bin/sh
# it_report.sh: 'report merge' puts the reports of one run's shards
# together, and refuses what is not one whole run: a shard missing or
# given twice (exit 2, named), shards of another run (another target key,
# roots, --from, number of shards: exit 2, naming what differs), a stopped
# shard (exit 8 until its rerun's report replaces it), a report that is
# not one (exit 3). A merge of complete shards has the corpus's totals,
# per outcome and per key, and lists each failed document with its shard.
# Usage: sh tests/it_report.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need python3

export REPROTECT_STORE="$T/store"
export REPROTECT_PASSPHRASE=report-pass
expect_rc 0 "$RP" init
expect_rc 0 "$RP" key create --alg x25519 --activate
N=90
mkdir "$T/c" "$T/c/sub" "$T/other"
i=0
while [ $i -lt $N ]; do
	mkfile "$T/c/sub/d$i" $((i * 37 + 1))
	i=$((i + 1))
done
expect_rc 0 "$RP" protect "$T"/c/sub/d*
find "$T/c" -type f ! -name '*.age' -delete
cp "$T/c/sub/d1.age" "$T/other/"
expect_rc 0 "$RP" rekey --alg x25519
"$RP" key list --json >"$T/keys.json"
KA=$(json_get "$T/keys.json" '[0]["id"]')

# shard I N [ARGS...]: run shard I of N over c, report s-I-of-N.json
shard() {
	_i=$1
	_n=$2
	shift 2
	expect_rc 0 "$RP" run "$T/c" --in-place --quiet --shard "$_i/$_n" \
		--report "$T/s$_i-of-$_n.json" "$@"
}

# merged EXPR: a value of the last merged report (m.json)
merged() {
	json_get "$T/m.json" "$1"
}

case_ "three complete shards merge to the corpus's totals"
shard 0 3
shard 1 3
shard 2 3
assert_json "$T/s1-of-3.json" '["run"]["shard"]' '{"index": 1, "of": 3}'
assert_json "$T/s1-of-3.json" '["exit_code"]' 0
expect_rc 0 "$RP" report merge "$T/s0-of-3.json" "$T/s1-of-3.json" \
	"$T/s2-of-3.json" --report "$T/m.json"
json_ok "$T/m.json"
assert_mode600 "$T/m.json"
assert_json "$T/m.json" '["complete"]' true
assert_json "$T/m.json" '["shards"]["present"]' '[0, 1, 2]'
assert_json "$T/m.json" '["outcomes"]["moved"]["documents"]' $N
assert_grep "$OUT" "3 of 3 shards"
# totals are the sums of the shards', per outcome, per key, and bytes
if py - "$T/m.json" "$T"/s?-of-3.json <<'PY'; then pass; else fail "sums"; fi
import json, sys
m = json.load(open(sys.argv[1]))
s = [json.load(open(f)) for f in sys.argv[2:]]
for o in m["outcomes"]:
    for f in ("documents", "bytes"):
        assert m["outcomes"][o][f] == sum(r["outcomes"][o][f] for r in s), o
for k in m["keys"]:
    want = sum(x.get("moved", 0) for r in s for x in r["keys"]
               if x["key"] == k["key"])
    assert k.get("moved", 0) == want, k
assert m["bytes_written"] == sum(r["bytes_written"] for r in s)
assert m["key_ops"]["count"] == sum(r["key_ops"]["count"] for r in s)
assert m["seconds"] >= max(r["seconds"] for r in s) * 0.99
slow = max(s, key=lambda r: r["seconds"])
assert m["slowest_shard"]["index"] == slow["run"]["shard"]["index"]
assert m["run"]["target_key"] == s[0]["run"]["target_key"]
assert len(set(json.dumps(r["run"]["roots"]) for r in s)) == 1
PY
expect_rc 0 "$RP" verify "$T/c" --quiet

case_ "a shard missing: exit 2, named"
expect_rc 2 "$RP" report merge "$T/s0-of-3.json" "$T/s2-of-3.json" \
	--json
assert_grep "$ERR" "shards missing: 1"
py -c 'import sys; open(sys.argv[2], "w").write(open(sys.argv[1]).read())' \
	"$OUT" "$T/m.json"
assert_json "$T/m.json" '["complete"]' false
assert_json "$T/m.json" '["shards"]["missing"]' '[1]'
assert_json "$T/m.json" '["exit_code"]' 2

case_ "a shard given twice: exit 2, named, counted once"
expect_rc 2 "$RP" report merge "$T/s0-of-3.json" "$T/s1-of-3.json" \
	"$T/s1-of-3.json" "$T/s2-of-3.json" --report "$T/m.json"
assert_grep "$ERR" "shards given twice"
assert_json "$T/m.json" '["shards"]["duplicated"]' '[1]'
assert_json "$T/m.json" '["outcomes"]["moved"]["documents"]' $N

case_ "a shard of another run (a rekey since): refused"
expect_rc 0 "$RP" rekey --alg x25519
shard 1 3
expect_rc 2 "$RP" report merge "$T/s0-of-3.json" "$T/s1-of-3.json" \
	"$T/s2-of-3.json"
assert_grep "$ERR" "another target key"
assert_grep "$ERR" "s1-of-3.json"

case_ "another number of shards, other roots, another --from: refused"
shard 0 2
expect_rc 2 "$RP" report merge "$T/s1-of-3.json" "$T/s0-of-2.json"
assert_grep "$ERR" "run.shard.of"
expect_rc 0 "$RP" run "$T/other" --in-place --quiet --shard 0/3 \
	--report "$T/o0.json"
expect_rc 2 "$RP" report merge "$T/s1-of-3.json" "$T/o0.json"
assert_grep "$ERR" "other roots"
if [ -n "$KA" ]; then
	expect_rc 0 "$RP" run "$T/c" --in-place --quiet --shard 2/3 \
		--from "$KA" --report "$T/f2.json"
	expect_rc 2 "$RP" report merge "$T/s1-of-3.json" "$T/f2.json"
	assert_grep "$ERR" "another --from"
else
	fail "no key id from 'key list --json'"
fi

case_ "a stopped shard: exit 8 until its rerun"
shard 0 3
# a slow shard (2 key operations a second): stopped by SIGTERM once it
# runs (its journal is open: the signal handlers are set right after)
stop_run "$T/j2" 10 "$RP" run "$T/c" --in-place --quiet --shard 2/3 \
	--key-ops 6 --report "$T/s2-of-3.json" --journal "$T/j2"
assert_json "$T/s2-of-3.json" '["stopped"]' true
expect_rc 8 "$RP" report merge "$T/s0-of-3.json" "$T/s1-of-3.json" \
	"$T/s2-of-3.json"
assert_grep "$ERR" "shards stopped (run them again"
assert_grep "$OUT" "NOT complete"
shard 2 3
expect_rc 0 "$RP" report merge "$T/s0-of-3.json" "$T/s1-of-3.json" \
	"$T/s2-of-3.json" --report "$T/m.json"
# moved by the stopped attempt count as current in the rerun
assert_json "$T/m.json" \
	'["outcomes"]["moved"]["documents"] + d["outcomes"]["current"]["documents"]' $N

case_ "a failed document is listed with its shard; exit 1"
expect_rc 0 "$RP" rekey --alg x25519
head -c 200 "$T/c/sub/d5.age" >"$T/c/torn.age"
_rcs=
for i in 0 1; do
	run_rp "$RP" run "$T/c" --in-place --quiet --shard $i/2 \
		--report "$T/t$i.json"
	_rcs="$_rcs$LAST_RC"
done
case $_rcs in 01 | 10) pass ;; *) fail "shard exit codes $_rcs, want 0 and 1" ;; esac
expect_rc 1 "$RP" report merge "$T/t0.json" "$T/t1.json" --report "$T/m.json"
assert_grep "$ERR" "did not exit 0"
assert_json "$T/m.json" '["verdict"]' some-documents-failed
if py - "$T/m.json" <<'PY'; then pass; else fail "failed document"; fi
import json, sys
m = json.load(open(sys.argv[1]))
d = [x for x in m["documents"] if x["path"].endswith("torn.age")]
assert len(d) == 1 and d[0]["outcome"].startswith("failed"), m["documents"]
assert d[0]["shard"] in (0, 1)
assert m["shards"]["not_clean"] == [d[0]["shard"]], m["shards"]
PY

case_ "what is not a run report: exit 3, naming the file"
head -c 300 "$T/t0.json" >"$T/cut.json"
expect_rc 3 "$RP" report merge "$T/t0.json" "$T/cut.json"
assert_grep "$ERR" "cut.json: not JSON"
echo '{"mode": "rewrap"}' >"$T/old.json"
expect_rc 3 "$RP" report merge "$T/old.json"
assert_grep "$ERR" 'old.json: not a run report: no "run"'
sed 's/"exit_code": 0/"exit_code": "0"/' "$T/t0.json" >"$T/bad.json"
expect_rc 3 "$RP" report merge "$T/bad.json"
assert_grep "$ERR" "exit_code"
expect_rc 6 "$RP" report merge "$T/none.json"
expect_rc 2 "$RP" report merge
expect_rc 2 "$RP" report frobnicate
expect_rc 0 "$RP" report merge --help
assert_grep "$OUT" "SHARD-REPORT"

it_done
