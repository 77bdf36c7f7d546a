#!/bin/sh
# it_census.sh: 'reprotect census' counts every document under the key it
# is really under, lists every one not under the active key, and signs a
# statement that 'census verify' checks and 'census merge' puts together
# from shards. The Merkle root is recomputed here from the documents
# themselves (inspect --json), so it must cover every one of them.
# Usage: sh tests/it_census.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need python3

export REPROTECT_STORE="$T/store"
export REPROTECT_PASSPHRASE=census-pass
expect_rc 0 "$RP" init
expect_rc 0 "$RP" key create --activate
K1=$(sed -n 's/^created \([0-9a-f]*\).*/\1/p' "$OUT")
C=$T/corpus
mkdir -p "$C/a" "$C/b/deep"
i=0
while [ $i -lt 24 ]; do
	mkfile "$T/p$i" $((i * 37 + 1))
	i=$((i + 1))
done
i=0
while [ $i -lt 12 ]; do
	expect_rc 0 "$RP" protect "$T/p$i" -o "$C/a/d$i.age"
	expect_rc 0 "$RP" protect "$T/p$((i + 12))" -o "$C/b/deep/e$i.age"
	i=$((i + 1))
done
expect_rc 0 "$RP" protect "$T/p1" -o "$C/b/name with space
and line.age"
printf 'not a document\n' >"$C/plain.txt"
ln -s a/d1.age "$C/link.age"
NDOCS=25 # protected documents
NALL=27  # and the plain file and the link
# a document of another store
expect_rc 0 env REPROTECT_STORE="$T/other" "$RP" init
expect_rc 0 env REPROTECT_STORE="$T/other" "$RP" key create --activate \
	--alg x25519
expect_rc 0 env REPROTECT_STORE="$T/other" "$RP" protect "$T/p2" \
	-o "$C/foreign.age"
NALL=$((NALL + 1))

# key_of ID-PREFIX: the full id of a key of the store
key_of() {
	"$RP" key list --json | py -c 'import json, sys
print([k["id"] for k in json.load(sys.stdin) if k["id"].startswith(sys.argv[1])][0])' "$1"
}
K1=$(key_of "$K1")

# merkle_of STATEMENT ROOT: the Merkle root this script computes over
# every file under ROOT as the census sees it: the leaf of key id ||
# document id || path (zeros where a file has none), sorted, RFC 9162
cat >"$T/merkle.py" <<'PY_EOF'
import hashlib, json, os, subprocess, sys
rp, root = sys.argv[1], os.path.realpath(sys.argv[2])
def leaf(b):
    return hashlib.sha256(b"\0" + b).digest()
def node(l, r):
    return hashlib.sha256(b"\1" + l + r).digest()
def mth(h):
    if len(h) == 1:
        return h[0]
    k = 1
    while k * 2 < len(h):
        k *= 2
    return node(mth(h[:k]), mth(h[k:]))
leaves = []
for d, dirs, files in os.walk(root):
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        if os.path.isdir(p) and not os.path.islink(p):
            continue
        kid, did = bytes(32), bytes(16)
        if n.endswith(".age") and not os.path.islink(p):
            r = subprocess.run([rp, "inspect", "--json", p],
                               capture_output=True)
            j = json.loads(r.stdout)
            if j.get("licensed") and "license" in j:
                kid = bytes.fromhex(j["license"]["key_id"])
                did = bytes.fromhex(j["license"]["document_id"])
        leaves.append(leaf(kid + did + os.fsencode(p)))
leaves.sort()
print(mth(leaves).hex())
PY_EOF
merkle_of() {
	_m_want=$(py "$T/merkle.py" "$RP" "$2")
	_m_got=$(sed -n 's/^merkle //p' "$1")
	if [ "$_m_got" = "$_m_want" ]; then
		pass
	else
		fail "merkle root $_m_got, computed $_m_want"
	fi
}
# assert_eq GOT WANT WHAT
# lines_of STATEMENT WORD: how many lines start with WORD
lines_of() {
	grep -c "^$2 " "$1" || true
}

case_ "census: every document under the active key"
expect_rc 1 "$RP" census "$C" --quiet --report "$T/c0.txt" --json
# exit 1: the foreign document is listed
json_ok "$OUT"
assert_json "$OUT" '["documents"]' $NALL
assert_json "$OUT" '["listed"]' 1
assert_json "$OUT" '["selection"]' all
assert_json "$OUT" '["roots"][0]' "$(cd "$C" && pwd -P)"
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K1"'")]["documents"]' $NDOCS
assert_json "$OUT" '["outcomes"]["current"]["documents"]' $NDOCS
assert_json "$OUT" '["outcomes"]["skipped-unknown-key"]["documents"]' 1
check "0600" test "$(stat -c %a "$T/c0.txt")" = 600
check "foreign listed" grep -q ' skipped-unknown-key .*/foreign\.age$' "$T/c0.txt"
check "foreign key stated" grep -q '^key [0-9a-f]* foreign 1 ' "$T/c0.txt"
merkle_of "$T/c0.txt" "$C"
expect_rc 0 "$RP" census verify "$T/c0.txt"
assert_grep "$OUT" "good, signed by key ${K1%"${K1#????????????????}"}"
mv "$C/foreign.age" "$T/foreign.age"
NALL=$((NALL - 1))
expect_rc 0 "$RP" census "$C" --quiet --report "$T/c0b.txt"
assert_grep "$OUT" "listed (not under the active key, or failed): 0"

case_ "census after a rekey: every document listed under the old key"
expect_rc 0 "$RP" rekey
K2=$(key_of "$(sed -n 's/.*new active key \([0-9a-f]*\).*/\1/p' "$OUT")")
if [ -z "$K2" ] || [ "$K2" = "$K1" ]; then
	K2=$("$RP" key list --json | py -c 'import json, sys
print([k["id"] for k in json.load(sys.stdin) if k["state"] == "active"][0])')
fi
expect_rc 1 "$RP" census "$C" --quiet --report "$T/c1.txt" --json
assert_json "$OUT" '["listed"]' $NDOCS
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K1"'")]["state"]' archived
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K2"'")]["documents"]' 0
assert_eq "$(grep -c "^doc $K1 [0-9a-f]\{32\} would-move " "$T/c1.txt")" \
	$NDOCS "doc lines under the old key"
check "a name with a line break, escaped" \
	grep -q 'name with space\\x0aand line\.age$' "$T/c1.txt"
merkle_of "$T/c1.txt" "$C"

case_ "census: a document whose signature does not verify is failed, not counted"
# flip one byte of the license's root signature (offset 210 of its body):
# the license still decodes and still names the old key
flip_license_byte "$C/a/d3.age" "$C/a/bad.age" 210
NALL=$((NALL + 1))
expect_rc 1 "$RP" census "$C" --quiet --report "$T/c2.txt" --json
assert_json "$OUT" '["outcomes"]["failed-bad-document"]["documents"]' 1
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K1"'")]["documents"]' $NDOCS
assert_json "$OUT" '["listed"]' $((NDOCS + 1))
check "listed as failed, with the key its license names" \
	grep -q "^doc $K1 [0-9a-f]* failed-bad-document .*/a/bad\.age$" \
	"$T/c2.txt"
merkle_of "$T/c2.txt" "$C"
rm "$C/a/bad.age"
NALL=$((NALL - 1))

case_ "census: three shards merged are the whole"
for s in 0 1 2; do
	expect_rc 1 "$RP" census "$C" --quiet --shard $s/3 \
		--report "$T/s$s.txt"
	check "selection" grep -qx "selection shard $s 3" "$T/s$s.txt"
done
_sum=0
for s in 0 1 2; do
	_sum=$((_sum + $(sed -n 's/^documents //p' "$T/s$s.txt")))
done
assert_eq "$_sum" $NALL "the shards' documents"
expect_rc 0 "$RP" census merge "$T/s2.txt" "$T/s0.txt" "$T/s1.txt" \
	--report "$T/m.txt" --json
json_ok "$OUT"
assert_json "$OUT" '["selection"]' '{"merged": 3}'
assert_json "$OUT" '["documents"]' $NALL
assert_json "$OUT" '["listed"]' $NDOCS
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K1"'")]["documents"]' $NDOCS
assert_eq "$(lines_of "$T/m.txt" part)" 3 "part lines"
assert_eq "$(lines_of "$T/m.txt" doc)" $NDOCS "doc lines"
expect_rc 0 "$RP" census verify "$T/m.txt"
# the merged root is the root over the parts' roots, in shard order
_want=$(py -c 'import hashlib, sys
def leaf(b): return hashlib.sha256(b"\0" + b).digest()
def node(l, r): return hashlib.sha256(b"\1" + l + r).digest()
r = [leaf(bytes.fromhex(l.split()[4])) for l in open(sys.argv[1])
     if l.startswith("part ")]
print(node(node(r[0], r[1]), r[2]).hex())' "$T/m.txt")
check "the root of the parts' roots" grep -qx "merkle $_want" "$T/m.txt"

case_ "census merge: a shard missing, twice, or of another census"
expect_rc 2 "$RP" census merge "$T/s0.txt" "$T/s2.txt" --report "$T/m2.txt"
assert_grep "$ERR" "shard 1 of 3 is missing"
assert_absent "$T/m2.txt"
expect_rc 2 "$RP" census merge "$T/s0.txt" "$T/s1.txt" "$T/s1.txt" \
	"$T/s2.txt" --report "$T/m2.txt"
assert_grep "$ERR" "shard 1 of 3 given twice"
assert_absent "$T/m2.txt"
expect_rc 1 "$RP" census "$C/a" --quiet --shard 1/3 --report "$T/sa1.txt"
expect_rc 2 "$RP" census merge "$T/s0.txt" "$T/sa1.txt" "$T/s2.txt" \
	--report "$T/m2.txt"
assert_grep "$ERR" "different censuses"
expect_rc 2 "$RP" census merge "$T/c1.txt" --report "$T/m2.txt"
assert_grep "$ERR" "not the census of a shard"
assert_absent "$T/m2.txt"
expect_rc 2 "$RP" census merge "$T/s0.txt"
assert_grep "$ERR" "--report"

case_ "census verify: edited, unsigned, cut, another store's"
sed 's/^documents .*/documents 1/' "$T/c1.txt" >"$T/e1.txt"
expect_rc 3 "$RP" census verify "$T/e1.txt"
# a listed document turned into a current one: still parses, signature no
sed "0,/ would-move /s// current /" "$T/c1.txt" >"$T/e2.txt"
check "edited" test "$(cmp "$T/c1.txt" "$T/e2.txt" | wc -l)" = 1
expect_rc 3 "$RP" census verify "$T/e2.txt"
assert_grep "$ERR" "does not verify"
grep -v '^doc .*/a/d1\.age$' "$T/c1.txt" >"$T/e3.txt"
expect_rc 3 "$RP" census verify "$T/e3.txt"
grep -v '^sig ' "$T/c1.txt" >"$T/e4.txt"
expect_rc 3 "$RP" census verify "$T/e4.txt"
head -c 500 "$T/c1.txt" >"$T/e5.txt"
expect_rc 3 "$RP" census verify "$T/e5.txt"
expect_rc 1 env REPROTECT_STORE="$T/other" "$RP" census "$C" --quiet \
	--report "$T/other.txt"
expect_rc 3 "$RP" census verify "$T/other.txt"
assert_grep "$ERR" "another store"
expect_rc 6 "$RP" census verify "$T/nothing.txt"

case_ "census after the run: nothing listed"
expect_rc 0 "$RP" run "$C" --in-place --quiet
expect_rc 0 "$RP" census "$C" --quiet --report "$T/c3.txt" --json
assert_json "$OUT" '["listed"]' 0
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K1"'")]["documents"]' 0
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K2"'")]["documents"]' $NDOCS
merkle_of "$T/c3.txt" "$C"
check "the audit log has the census" grep -q '	census	' "$REPROTECT_STORE/audit.log"

case_ "census verify: signed by a key revoked since"
expect_rc 0 "$RP" key revoke "$K1" --yes --force
expect_rc 5 "$RP" census verify "$T/c0.txt"
assert_grep "$ERR" "vouches for nothing"
# the newer statements, signed by the active key, still verify
expect_rc 0 "$RP" census verify "$T/c3.txt"

case_ "census: usage"
expect_rc 2 "$RP" census
expect_rc 2 "$RP" census verify
expect_rc 2 "$RP" census "$C" --shard 3/3
expect_rc 2 "$RP" census verify "$T/c3.txt" --shard 0/2
expect_rc 6 "$RP" census "$T/no-such-folder"
expect_rc 0 "$RP" census --help
assert_grep "$OUT" "census merge FILE"

it_done
