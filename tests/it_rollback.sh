#!/bin/sh
# it_rollback.sh: a revoke is never undone by copying files back. Each
# store file (keyring, key record, audit log, audit head, world key) is put
# back from a copy taken before a revoke, alone and together: the store
# refuses (the keyring's generation is below the watermark in audit.head,
# the log runs past its head, the log does not end where its head says),
# or nothing is undone (the keyring still says revoked). The whole folder
# put back together is caught by the pinned generation file (init
# --pin-generation) on a soft store, and by the token's watermark on a
# PKCS#11 store.
# Usage: sh tests/it_rollback.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need python3

export REPROTECT_PASSPHRASE=rollback-pass
state_of() {
	"$RP" key list --json | py -c 'import json, sys
print([k["state"] for k in json.load(sys.stdin) if k["id"] == sys.argv[1]][0])' "$1"
}
mkfile "$T/plain" 2000

# setup STORE [INIT-ARGS...]: a store with key A (documents a.age) then
# B active and A revoked; before/ is the folder as it was before the
# revoke (A archived, its material there)
setup() {
	export REPROTECT_STORE="$1"
	shift
	expect_rc 0 "$RP" init "$@"
	expect_rc 0 "$RP" key create --activate
	A=$(sed -n 's/^\([0-9a-f]\{64\}\) .*/\1/p' "$OUT")
	rm -f "$T/a.age"
	expect_rc 0 "$RP" protect "$T/plain" -o "$T/a.age"
	expect_rc 0 "$RP" rekey
	expect_rc 0 "$RP" key backup "$A" -o "$T/a-$$.rpkb"
	rm -f "$T/a-$$.rpkb"
	rm -rf "$T/before"
	cp -a "$REPROTECT_STORE" "$T/before"
	expect_rc 0 "$RP" key revoke "$A" --yes
	cp -a "$REPROTECT_STORE" "$T/after"
}
# back FILE...: those files of the store from before the revoke
back() {
	for _f in "$@"; do
		rm -rf "${REPROTECT_STORE:?}/$_f"
		cp -a "$T/before/$_f" "$REPROTECT_STORE/$_f"
	done
}
reset() {
	rm -rf "$REPROTECT_STORE"
	cp -a "$T/after" "$REPROTECT_STORE"
}
# not_undone: a.age does not open, A is still revoked
not_undone() {
	run_rp "$RP" unprotect "$T/a.age" -o "$T/a.out"
	if [ "$LAST_RC" -ne 0 ] && [ ! -e "$T/a.out" ]; then pass; else
		fail "a.age opened (exit $LAST_RC)"
	fi
	rm -f "$T/a.out"
}

# --- a soft store ---------------------------------------------------------------
setup "$T/soft"

case_ "soft: the keyring alone"
back keyring
expect_rc 3 "$RP" key list
assert_grep "$ERR" "older than this store has written"
assert_grep "$ERR" "audit.head"
not_undone
expect_rc 3 "$RP" key restore "$T/nothing"
reset

case_ "soft: the key record alone"
back "keys/$A.key"
check "A's material is back" test -e "$REPROTECT_STORE/keys/$A.key"
expect_rc 5 "$RP" unprotect "$T/a.age" -o "$T/a.out"
assert_absent "$T/a.out"
assert_eq "$(state_of "$A")" revoked "A"
reset

case_ "soft: the world key alone"
back world.key
expect_rc 0 "$RP" key list
assert_eq "$(state_of "$A")" revoked "A"
not_undone
reset

case_ "soft: the audit log alone"
back audit.log
# nothing more is recorded: every sealed operation is refused (exit 3:
# the log was tampered with, not merely unwritable)
expect_rc 3 "$RP" key create
assert_grep "$ERR" "does not end where audit.head says"
expect_rc 3 "$RP" rekey
expect_rc 3 "$RP" audit verify
not_undone
reset

case_ "soft: the audit head alone"
back audit.head
expect_rc 3 "$RP" key list
assert_grep "$ERR" "audit.head (record"
not_undone
reset

case_ "soft: the keyring and its head together"
back keyring audit.head
expect_rc 3 "$RP" key list
assert_grep "$ERR" "older than audit.log"
not_undone
reset

case_ "soft: keyring, key record and world key together"
back keyring "keys/$A.key" world.key
expect_rc 3 "$RP" unprotect "$T/a.age" -o "$T/a.out"
assert_absent "$T/a.out"
reset

case_ "soft: the whole folder without a pin: the limit"
# keyring, head and log agree with one another: nothing in the folder
# can tell; this is what --pin-generation is for
rm -rf "$REPROTECT_STORE"
cp -a "$T/before" "$REPROTECT_STORE"
expect_rc 0 "$RP" key list
assert_eq "$(state_of "$A")" archived "A (undone: no pin)"
reset
rm -rf "$T/after"

# --- a soft store with a pinned generation --------------------------------------
mkdir "$T/elsewhere"
setup "$T/pinned" --pin-generation "$T/elsewhere/pin"
check "the pin file is 0600" test "$(stat -c %a "$T/elsewhere/pin")" = 600

case_ "pinned: the whole folder put back"
rm -rf "$REPROTECT_STORE"
cp -a "$T/before" "$REPROTECT_STORE"
expect_rc 3 "$RP" key list
assert_grep "$ERR" "$T/elsewhere/pin"
not_undone
reset

case_ "pinned: the pin file missing, edited or another store's"
cp "$T/elsewhere/pin" "$T/pin.good"
rm "$T/elsewhere/pin"
expect_rc 7 "$RP" key list
assert_grep "$ERR" "cannot be checked, so the store does not open"
flip_byte "$T/pin.good" "$T/elsewhere/pin" 25
expect_rc 3 "$RP" key list
assert_grep "$ERR" "was modified"
expect_rc 0 env REPROTECT_STORE="$T/other" "$RP" init \
	--pin-generation "$T/elsewhere/other-pin"
cp "$T/elsewhere/other-pin" "$T/elsewhere/pin"
expect_rc 3 "$RP" key list
assert_grep "$ERR" "not this store's"
cp "$T/pin.good" "$T/elsewhere/pin"
expect_rc 0 "$RP" key list

case_ "pinned: every key change moves the pin"
_p0=$(od -An -tx1 -j 20 -N 8 "$T/elsewhere/pin" | tr -d ' \n')
expect_rc 0 "$RP" key create
_p1=$(od -An -tx1 -j 20 -N 8 "$T/elsewhere/pin" | tr -d ' \n')
check "the generation went up" test "$_p1" != "$_p0"
expect_rc 2 "$RP" init --store "$T/pinned2" --pin-generation "$T/pinned2/pin"
expect_rc 2 "$RP" init --store "$T/pinned3" \
	--pin-generation "$T/no-such-dir/pin"
rm -rf "$T/after"

# --- a PKCS#11 store: the token keeps the watermark -----------------------------
MOD=/usr/lib/softhsm/libsofthsm2.so
if [ -e "$MOD" ] && command -v softhsm2-util >/dev/null; then
	softhsm_token rp-rollback
	export REPROTECT_PKCS11_PIN=1234
	setup "$T/p11" --backend pkcs11 --pkcs11-module "$MOD" \
		--pkcs11-token rp-rollback

	case_ "pkcs11: the keyring alone"
	back keyring
	expect_rc 3 "$RP" key list
	not_undone
	reset

	case_ "pkcs11: the whole folder put back"
	rm -rf "$REPROTECT_STORE"
	cp -a "$T/before" "$REPROTECT_STORE"
	expect_rc 3 "$RP" unprotect "$T/a.age" -o "$T/a.out"
	assert_grep "$ERR" "older than token 'rp-rollback' has seen"
	assert_absent "$T/a.out"
	# nothing is written either: a key change is refused before the
	# keyring is touched
	cp "$REPROTECT_STORE/keyring" "$T/kr.before"
	expect_rc 3 "$RP" key create
	assert_same "$REPROTECT_STORE/keyring" "$T/kr.before"
	reset

	case_ "pkcs11: a store rebuilt from the world's shares keeps its own"
	expect_rc 0 "$RP" world backup --shares 3 --threshold 2 -o "$T/ws"
	expect_rc 0 env REPROTECT_STORE="$T/p11b" "$RP" init --backend pkcs11 \
		--pkcs11-module "$MOD" --pkcs11-token rp-rollback \
		--from-shares "$T/ws-1.share" "$T/ws-3.share"
	expect_rc 0 env REPROTECT_STORE="$T/p11b" "$RP" key create --activate
	# the first store goes on, the second too
	expect_rc 0 "$RP" key create
	expect_rc 0 env REPROTECT_STORE="$T/p11b" "$RP" key create
	expect_rc 0 "$RP" protect "$T/plain" -o "$T/b.age"
	expect_rc 0 "$RP" unprotect "$T/b.age" -o "$T/b.out"
	assert_same "$T/b.out" "$T/plain"
fi

it_done
