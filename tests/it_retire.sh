#!/bin/sh
# it_retire.sh: a key goes only with proof that nothing depends on it.
# rekey, run, a census in three shards merged, retire; a document that
# turns up under the key afterwards is caught by the next census, by run
# and by unprotect (exit 9, with the date); keep cancels; after the
# waiting period (a test clock: REPROTECT_TEST_CLOCK_SKEW, hook builds
# only) the first command that opens the store destroys the key, once.
# Each census that must not do is refused: another store's, unsigned,
# edited, one shard, older than the last run, taken before the key was
# archived, not covering a root, one with documents under the key or
# documents it could not attribute. Then the same on a PKCS#11 token,
# where purge destroys the token's objects.
# Usage: sh tests/it_retire.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need python3

HAS_CLOCK=0
if grep -q REPROTECT_TEST_CLOCK_SKEW "$RP"; then
	HAS_CLOCK=1
fi
DAY=86400

export REPROTECT_STORE="$T/store"
export REPROTECT_PASSPHRASE=retire-pass
expect_rc 0 "$RP" init
expect_rc 0 "$RP" key create --activate
C=$T/corpus
mkdir -p "$C/a" "$C/b"
i=0
while [ $i -lt 9 ]; do
	mkfile "$T/p$i" $((i * 53 + 7))
	expect_rc 0 "$RP" protect "$T/p$i" -o "$C/a/d$i.age"
	i=$((i + 1))
done
expect_rc 0 "$RP" protect "$T/p1" -o "$C/b/e1.age"
# an old copy of a document under the first key, from a backup tape
cp "$C/a/d3.age" "$T/old-d3.age"

# active_key / key_in STATE: ids from the keyring
active_key() {
	"$RP" key list --json | py -c 'import json, sys
print([k["id"] for k in json.load(sys.stdin) if k["state"] == "active"][0])'
}
state_of() {
	"$RP" key list --json | py -c 'import json, sys
print([k["state"] for k in json.load(sys.stdin) if k["id"] == sys.argv[1]][0])' "$1"
}
sha_of() {
	py -c 'import hashlib, sys
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
}
# census3 OUT: a census of the corpus in three shards, merged into OUT
census3() {
	for _s in 0 1 2; do
		run_rp "$RP" census "$C" --quiet --shard $_s/3 \
			--report "$T/shard$_s.txt"
	done
	expect_rc 0 "$RP" census merge "$T/shard0.txt" "$T/shard1.txt" \
		"$T/shard2.txt" --report "$1"
}
K1=$(active_key)

case_ "retire: refused while the key is active, and for a census taken then"
expect_rc 0 "$RP" census "$C" --quiet --report "$T/c-active.txt"
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-active.txt" --root "$C"
assert_grep "$ERR" "only an archived key"
expect_rc 0 "$RP" rekey
K2=$(active_key)
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-active.txt" --root "$C"
assert_grep "$ERR" "while key ${K1%"${K1#????????????????}"} was active"

case_ "retire: refused while documents are under the key"
census3 "$T/c-before.txt"
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-before.txt" --root "$C"
assert_grep "$ERR" "10 documents still under key"
check "still archived" test "$(state_of "$K1")" = archived

case_ "retire: refused for one shard, and for a census older than the last run"
expect_rc 0 "$RP" run "$C" --in-place --quiet
expect_rc 7 "$RP" key retire "$K1" --census "$T/shard0.txt" --root "$C"
assert_grep "$ERR" "merge every shard first"
# a census taken after the run, then a run that moves something
census3 "$T/c-stale.txt"
cp "$T/old-d3.age" "$C/a/stale.age"
expect_rc 0 "$RP" run "$C" --in-place --quiet
rm "$C/a/stale.age"
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-stale.txt" --root "$C"
assert_grep "$ERR" "older than the run that moved documents"

case_ "retire: refused for a census that is not good"
census3 "$T/c-good.txt"
sed 's/^taken \([0-9]*\)$/taken 1\1/' "$T/c-good.txt" >"$T/c-edited.txt"
expect_rc 3 "$RP" key retire "$K1" --census "$T/c-edited.txt" --root "$C"
grep -v '^sig ' "$T/c-good.txt" >"$T/c-unsigned.txt"
expect_rc 3 "$RP" key retire "$K1" --census "$T/c-unsigned.txt" --root "$C"
expect_rc 0 env REPROTECT_STORE="$T/other" "$RP" init
expect_rc 0 env REPROTECT_STORE="$T/other" "$RP" key create --activate
run_rp env REPROTECT_STORE="$T/other" "$RP" census "$C/b" --quiet \
	--report "$T/c-other.txt"
expect_rc 3 "$RP" key retire "$K1" --census "$T/c-other.txt" --root "$C"
assert_grep "$ERR" "another store"
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-good.txt" --root "$T"
assert_grep "$ERR" "does not cover"
expect_rc 2 "$RP" key retire "$K1" --census "$T/c-good.txt"
expect_rc 2 "$RP" key retire "$K1" --root "$C"
expect_rc 2 "$RP" key retire "$K1" --census "$T/c-good.txt" --root "$C" \
	--wait 0
expect_rc 2 "$RP" key retire "$K1" --census "$T/c-good.txt" --root "$C" \
	--wait 6
assert_grep "$ERR" "7 to 3650 days"
check "still archived" test "$(state_of "$K1")" = archived

case_ "retire: refused while a document could not be attributed"
printf 'age-encryption.org/v1\n-> X25519 broken\n' >"$C/b/torn.age"
census3 "$T/c-torn.txt"
# a torn age file is failed-bad-document: its key cannot be told
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-torn.txt" --root "$C"
assert_grep "$ERR" "could not tell"
rm "$C/b/torn.age"
# a document under the key in a folder the walk does not enter (deeper
# than it goes): listed as not attributed, not silently skipped
_d="$C/deep"
_n=0
while [ $_n -lt 258 ]; do
	_d="$_d/d"
	_n=$((_n + 1))
done
mkdir -p "$_d"
cp "$T/old-d3.age" "$_d/x.age"
census3 "$T/c-deep.txt"
check "listed" grep -q "^doc - - not-attributed .*/d/d$" "$T/c-deep.txt"
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-deep.txt" --root "$C"
assert_grep "$ERR" "could not tell"
rm -rf "$C/deep"
# a document under the key whose license's key id was edited (one byte):
# this store signed it, so it is not another store's
flip_license_byte "$T/old-d3.age" "$C/b/edited.age" 40
census3 "$T/c-edited-id.txt"
check "failed, with the key its stanza is for" \
	grep -q "^doc $K1 [0-9a-f]* failed-bad-document .*/b/edited\.age$" \
	"$T/c-edited-id.txt"
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-edited-id.txt" --root "$C"
rm "$C/b/edited.age"

case_ "retire: a good census lets the key go, with a waiting period"
census3 "$T/c-ok.txt"
expect_rc 0 "$RP" key retire "$K1" --census "$T/c-ok.txt" --root "$C/a" \
	--root "$C/b"
assert_grep "$OUT" "retiring $K1"
check "retiring" test "$(state_of "$K1")" = retiring
expect_rc 0 "$RP" key show "$K1" --json
assert_json "$OUT" '["state"]' retiring
_ok_sha=$(sha_of "$T/c-ok.txt")
check "audit: the census that allowed it" \
	grep -q "key\.retire	$K1	census=$_ok_sha purge_at=" \
	"$REPROTECT_STORE/audit.log"
check "audit: sealed, its .begin first" \
	grep -q "key\.retire\.begin	$K1	census=$_ok_sha wait=7d" \
	"$REPROTECT_STORE/audit.log"
# it cannot be backed up, revoked or retired again meanwhile
expect_rc 7 "$RP" key backup "$K1" -o "$T/k1.rpkb"
assert_absent "$T/k1.rpkb"
expect_rc 7 "$RP" key revoke "$K1" --yes --force
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-ok.txt" --root "$C"
# documents under the active key are untouched by all this
expect_rc 0 "$RP" verify "$C" --quiet
expect_rc 0 "$RP" census "$C" --quiet --report "$T/c-after.txt"

case_ "a document under the key turns up: census, run and unprotect say so"
cp "$T/old-d3.age" "$C/b/found.age"
expect_rc 1 "$RP" census "$C" --quiet --report "$T/c-found.txt" --json
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K1"'")]["documents"]' 1
assert_json "$OUT" '["keys"][[k["key"] for k in d["keys"]].index("'"$K1"'")]["state"]' retiring
check "listed" grep -q "^doc $K1 [0-9a-f]* skipped-retiring-key .*/b/found\.age$" \
	"$T/c-found.txt"
expect_rc 9 "$RP" run "$C" --in-place --quiet --report "$T/r-found.json"
assert_grep "$ERR" "retiring key"
assert_json "$T/r-found.json" '["outcomes"]["skipped-retiring-key"]["documents"]' 1
check "left as it was" cmp -s "$C/b/found.age" "$T/old-d3.age"
expect_rc 9 "$RP" unprotect "$C/b/found.age" -o "$T/found.out"
assert_grep "$ERR" "is retiring"
assert_grep "$ERR" "key keep"
assert_absent "$T/found.out"

case_ "keep cancels: the key opens again, the document moves"
expect_rc 0 "$RP" key keep "$K1"
check "archived" test "$(state_of "$K1")" = archived
expect_rc 0 "$RP" unprotect "$C/b/found.age" -o "$T/found.out"
assert_same "$T/found.out" "$T/p3"
expect_rc 0 "$RP" run "$C" --in-place --quiet
expect_rc 7 "$RP" key keep "$K1"
check "audit: keep" grep -q "key\.keep	$K1" "$REPROTECT_STORE/audit.log"
# the census that missed it cannot retire the key again
expect_rc 7 "$RP" key retire "$K1" --census "$T/c-ok.txt" --root "$C"
assert_grep "$ERR" "older than the 'key keep'"

case_ "retire again, then the waiting period passes"
census3 "$T/c-ok2.txt"
expect_rc 0 "$RP" key retire "$K1" --census "$T/c-ok2.txt" --root "$C" \
	--wait 10
check "the key's material is still there" \
	test -e "$REPROTECT_STORE/keys/$K1.key"
if [ $HAS_CLOCK = 1 ]; then
	# nine days on: nothing yet; keep would still work
	expect_rc 0 env REPROTECT_TEST_CLOCK_SKEW=$((9 * DAY)) "$RP" key list
	check "not yet" test ! -s "$ERR"
	check "still retiring" test "$(state_of "$K1")" = retiring
	expect_rc 0 env REPROTECT_TEST_CLOCK_SKEW=$((9 * DAY)) "$RP" key purge
	assert_grep "$OUT" "no retiring key is due"
	# eleven days on: the first command that opens the store destroys
	# it, and says so on stderr (keep comes too late)
	expect_rc 7 env REPROTECT_TEST_CLOCK_SKEW=$((11 * DAY)) \
		"$RP" key keep "$K1"
	assert_grep "$ERR" "destroyed $K1: retired with census"
	assert_grep "$ERR" "only a retiring key can be kept"
	expect_rc 0 env REPROTECT_TEST_CLOCK_SKEW=$((11 * DAY)) \
		"$RP" key list --json
	json_ok "$OUT"
	check "destroyed" test "$(state_of "$K1")" = destroyed
	check "its material is gone" test ! -e "$REPROTECT_STORE/keys/$K1.key"
	_ok2_sha=$(sha_of "$T/c-ok2.txt")
	check "audit: the purge names the census" \
		grep -q "key\.purge	$K1	census=$_ok2_sha" \
		"$REPROTECT_STORE/audit.log"
	# once
	expect_rc 0 env REPROTECT_TEST_CLOCK_SKEW=$((12 * DAY)) "$RP" key list
	check "said once" test ! -s "$ERR"
	expect_rc 5 "$RP" unprotect "$T/old-d3.age" -o "$T/old.out"
	assert_absent "$T/old.out"
	# documents under the active key still open
	expect_rc 0 "$RP" verify "$C" --quiet
fi

case_ "key purge: the command does it too, and says what it did"
expect_rc 0 "$RP" rekey
K3=$(active_key) # K2 is archived now
expect_rc 0 "$RP" run "$C" --in-place --quiet
census3 "$T/c-k2.txt"
expect_rc 0 "$RP" key retire "$K2" --census "$T/c-k2.txt" --root "$C"
expect_rc 0 "$RP" key purge
assert_grep "$OUT" "no retiring key is due"
if [ $HAS_CLOCK = 1 ]; then
	cp "$REPROTECT_STORE/keys/$K2.key" "$T/k2.key"
	expect_rc 0 env REPROTECT_TEST_CLOCK_SKEW=$((8 * DAY)) "$RP" key purge
	assert_grep "$OUT" "destroyed $K2: retired with census"
	check "nothing on stderr" test ! -s "$ERR"
	check "destroyed" test "$(state_of "$K2")" = destroyed
	# a purge cut short after its keyring write leaves the material:
	# the next 'key purge' erases it
	cp "$T/k2.key" "$REPROTECT_STORE/keys/$K2.key"
	expect_rc 0 "$RP" key purge
	check "what a purge cut short left is erased" \
		test ! -e "$REPROTECT_STORE/keys/$K2.key"
fi
check "K3 active" test "$(state_of "$K3")" = active

case_ "init --min-retire-wait: the store's minimum"
expect_rc 0 env REPROTECT_STORE="$T/min" "$RP" init --min-retire-wait 30
expect_rc 0 env REPROTECT_STORE="$T/min" "$RP" key create --activate
mkdir "$T/mc"
expect_rc 0 env REPROTECT_STORE="$T/min" "$RP" protect "$T/p2" \
	-o "$T/mc/x.age"
M1=$(REPROTECT_STORE="$T/min" "$RP" key list --json | py -c 'import json, sys
print(json.load(sys.stdin)[0]["id"])')
expect_rc 0 env REPROTECT_STORE="$T/min" "$RP" rekey
expect_rc 0 env REPROTECT_STORE="$T/min" "$RP" run "$T/mc" --in-place --quiet
expect_rc 0 env REPROTECT_STORE="$T/min" "$RP" census "$T/mc" --quiet \
	--report "$T/mc.txt"
expect_rc 2 env REPROTECT_STORE="$T/min" "$RP" key retire "$M1" \
	--census "$T/mc.txt" --root "$T/mc" --wait 29
assert_grep "$ERR" "30 to 3650 days"
expect_rc 0 env REPROTECT_STORE="$T/min" "$RP" key retire "$M1" \
	--census "$T/mc.txt" --root "$T/mc"
expect_rc 0 env REPROTECT_STORE="$T/min" "$RP" key show "$M1" --json
_days=$(py -c 'import json, sys, datetime as D
k = json.load(open(sys.argv[1]))
f = lambda s: D.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
print((f(k["purge_at"]) - f(k["retired"])).days)' "$OUT")
assert_eq "$_days" 30 "default wait is the store's minimum"
expect_rc 2 "$RP" init --min-retire-wait 0

# --- PKCS#11: purge destroys the token's objects --------------------------------
MOD=/usr/lib/softhsm/libsofthsm2.so
if [ $HAS_CLOCK = 1 ] && [ -e "$MOD" ] && command -v softhsm2-util >/dev/null &&
	command -v pkcs11-tool >/dev/null; then
	case_ "pkcs11: purge destroys the key on the token"
	softhsm_token rp-retire
	export REPROTECT_STORE="$T/p11" REPROTECT_PKCS11_PIN=1234
	expect_rc 0 "$RP" init --backend pkcs11 --pkcs11-module "$MOD" \
		--pkcs11-token rp-retire
	expect_rc 0 "$RP" key create --activate
	P1=$(active_key)
	mkdir "$T/pc"
	expect_rc 0 "$RP" protect "$T/p4" -o "$T/pc/x.age"
	expect_rc 0 "$RP" rekey
	expect_rc 0 "$RP" run "$T/pc" --in-place --quiet
	expect_rc 0 "$RP" census "$T/pc" --quiet --report "$T/pc.txt"
	expect_rc 0 "$RP" key retire "$P1" --census "$T/pc.txt" --root "$T/pc"
	# objects of the token labelled with the key's id
	count_objects() {
		pkcs11-tool --module "$MOD" --token-label rp-retire \
			--login --pin 1234 --list-objects 2>/dev/null |
			grep -c "$(printf %.16s "$P1")" || true
	}
	_before=$(count_objects)
	check "the token holds the key while it retires" test "$_before" -gt 0
	expect_rc 0 env REPROTECT_TEST_CLOCK_SKEW=$((8 * DAY)) "$RP" key purge
	assert_grep "$OUT" "destroyed $P1"
	assert_eq "$(count_objects)" 0 "objects of the key left on the token"
	check "destroyed" test "$(state_of "$P1")" = destroyed
	expect_rc 0 "$RP" verify "$T/pc" --quiet
fi

it_done
