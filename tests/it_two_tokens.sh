#!/bin/sh
# it_two_tokens.sh: one key on two PKCS#11 tokens (issue 11). A store on
# SoftHSM2 token rp-a; its RSA-2048 key backed up and replicated to token
# rp-b ('key replicate'); a run spreads the unwraps over both tokens
# (each serves a share: the audit log's key.usage counts them per token)
# and, where the test hooks are (the sanitizer build), each token busy
# above 100/s (REPROTECT_TEST_BUSY, a window per token), the operations
# done run at 0.9 to 1.0 x 200/s: the rates add up. The refusals of
# 'key replicate', each with its exit code and message. A replica token
# that is away stops a run (exit 8, the document untouched) and makes
# revoke, destroy and purge fail, naming it; it stays listed until 'key
# purge' erases the key there. Revoke erases the key from both tokens.
# Hook builds also purge a retired key from both.
# Usage: sh tests/it_two_tokens.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need python3 softhsm2-util pkcs11-tool
MOD=/usr/lib/softhsm/libsofthsm2.so
if [ ! -e "$MOD" ]; then
	echo "$IT_NAME: SoftHSM2 is not installed: skipped"
	exit 77
fi
HOOKS=0
if grep -q REPROTECT_TEST_BUSY "$RP"; then
	HOOKS=1
fi

p11() {
	pkcs11-tool --module "$MOD" --login --pin 1234 "$@"
}

# objects_of TOKEN ID: how many objects of key ID are on TOKEN
objects_of() {
	p11 --token-label "$1" --list-objects 2>/dev/null |
		grep -c "$(printf %.16s "$2")" || true
}

# The world's backup key (reprotect-backup-kek) on rp-a and rp-b: tokens
# of one HSM security world share it (the HSM's own tools clone it);
# SoftHSM2 has no such thing, so the same AES key is written onto each.
# rp-c is a token of another world: it has none.
softhsm_token rp-a
softhsm_token rp-b
softhsm_token rp-c
head -c 32 /dev/urandom >"$T/kek.bin"
for _tok in rp-a rp-b; do
	p11 --token-label "$_tok" --write-object "$T/kek.bin" --type secrkey \
		--key-type AES:32 --label reprotect-backup-kek --usage-wrap \
		--sensitive >/dev/null 2>&1
done
rm "$T/kek.bin"

export REPROTECT_STORE="$T/store" REPROTECT_PASSPHRASE=two-pass
export REPROTECT_PKCS11_PIN=1234
expect_rc 0 "$RP" init --backend pkcs11 --pkcs11-module "$MOD" \
	--pkcs11-token rp-a
expect_rc 0 "$RP" key create --alg rsa2048 --activate
K1=$(cut -d' ' -f1 "$OUT")
N=1200
mkdir "$T/c" "$T/o"
i=0
while [ $i -lt $N ]; do
	mkfile "$T/c/d$i" $((i % 97 * 13 + 1))
	i=$((i + 1))
done
mkfile "$T/o/one" 3000
expect_rc 0 "$RP" protect "$T"/c/d* "$T/o/one"
find "$T/c" "$T/o" -type f ! -name '*.age' -delete
expect_rc 0 "$RP" key backup "$K1" -o "$T/k1.rpkb"

case_ "replicate to rp-b: listed, in the audit log"
expect_rc 0 "$RP" key replicate "$T/k1.rpkb" --to-token rp-b
assert_grep "$OUT" "replicated $K1 to token 'rp-b'"
assert_gt "$(objects_of rp-b "$K1")" 0 "objects of the key on rp-b"
expect_rc 0 "$RP" key show "$K1"
assert_grep "$OUT" "replicas:    rp-b"
expect_rc 0 "$RP" key list --json
json_ok "$OUT"
assert_json "$OUT" '[0]["replicas"]' '["rp-b"]'
expect_rc 0 "$RP" audit --key "$K1"
assert_grep "$OUT" "key.replicate"
assert_grep "$OUT" "token=rp-b"

case_ "replicate: refusals"
expect_rc 7 "$RP" key replicate "$T/k1.rpkb" --to-token rp-b
assert_grep "$ERR" "has a replica on token 'rp-b' already"
expect_rc 2 "$RP" key replicate "$T/k1.rpkb" --to-token rp-a
assert_grep "$ERR" "token 'rp-a' is the store's own token"
expect_rc 7 "$RP" key replicate "$T/k1.rpkb" --to-token rp-nowhere
assert_grep "$ERR" "no initialised pkcs11 token labelled 'rp-nowhere'"
expect_rc 3 "$RP" key replicate "$T/k1.rpkb" --to-token rp-c
assert_grep "$ERR" "token 'rp-c' has no backup key"
assert_eq "$(objects_of rp-c "$K1")" 0 "objects of the key on rp-c"
expect_rc 2 "$RP" key replicate "$T/k1.rpkb"
assert_grep "$ERR" "replicate needs --to-token LABEL"
expect_rc 2 "$RP" key restore "$T/k1.rpkb" --to-token rp-b
# a store of the same world (rebuilt from its shares) without the key
expect_rc 0 "$RP" world backup --shares 2 --threshold 2 -o "$T/w"
expect_rc 0 env REPROTECT_STORE="$T/rebuilt" "$RP" init --from-shares \
	"$T/w-1.share" "$T/w-2.share" --backend pkcs11 \
	--pkcs11-module "$MOD" --pkcs11-token rp-a
expect_rc 4 env REPROTECT_STORE="$T/rebuilt" "$RP" key replicate \
	"$T/k1.rpkb" --to-token rp-b
assert_grep "$ERR" "is not in the store: 'reprotect key restore FILE'"
# a soft store's key
expect_rc 0 env REPROTECT_STORE="$T/soft" "$RP" init
expect_rc 0 env REPROTECT_STORE="$T/soft" "$RP" key create --activate
_soft=$(cut -d' ' -f1 "$OUT")
expect_rc 0 env REPROTECT_STORE="$T/soft" "$RP" key backup "$_soft" \
	-o "$T/soft.rpkb"
expect_rc 2 env REPROTECT_STORE="$T/soft" "$RP" key replicate \
	"$T/soft.rpkb" --to-token rp-b
assert_grep "$ERR" "is on the soft keystore"
expect_rc 0 "$RP" key show "$K1"
assert_grep "$OUT" "replicas:    rp-b"

# shares_ok: key.usage of the last run of K1 counts its unwraps per
# token: both served, each 40-60%, N in all
shares_ok() {
	"$RP" audit --key "$K1" --json >"$T/audit.json"
	if py - "$T/audit.json" "$N" <<'PY'; then pass; else fail "$(tail -c 600 "$T/audit.json")"; fi
import json, sys
recs = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
u = [r for r in recs if r["op"] == "key.usage" and "command=run " in r["detail"]][-1]
f = dict(x.split("=", 1) for x in u["detail"].split())
tokens = dict(t.rsplit(":", 1) for t in f["unwrap_tokens"].split(","))
tokens = {k: int(v) for k, v in tokens.items()}
print("unwraps per token:", tokens, file=sys.stderr)
assert sorted(tokens) == ["rp-a", "rp-b"], tokens
assert sum(tokens.values()) == int(f["unwrap"]) >= n, (tokens, f)
for v in tokens.values():
    assert 0.4 * n <= v <= 0.6 * n + 10, tokens
PY
}

expect_rc 0 "$RP" rekey --alg rsa2048
K2=$(grep '^active:' "$OUT" | awk '{print $2}')
if [ $HOOKS = 1 ]; then
	case_ "each token busy above 100/s: the rates add up (0.9-1.0 x 200/s)"
	REPROTECT_TEST_BUSY=100:0x90 expect_rc 0 "$RP" run "$T/c" --in-place \
		--quiet --report "$T/r1.json"
	busy_rate_ok "$T/r1.json" 200 "$N"
	cat "$ERR" >&2
else
	case_ "a run spreads the unwraps over both tokens"
	expect_rc 0 "$RP" run "$T/c" --in-place --quiet --report "$T/r1.json"
	assert_json "$T/r1.json" '["outcomes"]["moved"]["documents"]' $N
fi
shares_ok
expect_rc 0 "$RP" verify "$T/c" --quiet

case_ "a replica token away: a run stops (exit 8), the document untouched"
# a token is away when its folder is: SoftHSM2 reads the folder at load
_bdir=$(dirname "$(grep -l rp-b "$T"/tokens/*/token.object)")
mv "$_bdir" "$T/away"
cp "$T/o/one.age" "$T/one.before"
expect_rc 8 "$RP" run "$T/o" --in-place --quiet
assert_grep "$ERR" "replica token 'rp-b' is unavailable"
assert_same "$T/o/one.age" "$T/one.before"

case_ "a replica token away: revoke, restore, destroy and purge say so"
expect_rc 7 "$RP" key revoke "$K1" --yes
assert_grep "$ERR" "key $(printf %.16s "$K1")'s material is left on token 'rp-b' until 'reprotect key revoke"
assert_eq "$(objects_of rp-a "$K1")" 0 "objects of the key on rp-a"
expect_rc 0 "$RP" key show "$K1"
assert_grep "$OUT" "state:       revoked"
assert_grep "$OUT" "left on:     rp-b"
expect_rc 7 "$RP" key restore "$T/k1.rpkb"
assert_grep "$ERR" "its revoke could not erase it from token 'rp-b' yet"
expect_rc 7 "$RP" key destroy "$K1" --without-census --yes
assert_grep "$ERR" "left on token 'rp-b' until 'reprotect key purge'"
expect_rc 0 "$RP" key show "$K1"
assert_grep "$OUT" "state:       destroyed"
assert_grep "$OUT" "left on:     rp-b (to erase: 'reprotect key purge')"
expect_rc 7 "$RP" key purge
assert_grep "$ERR" "left on token 'rp-b'"
mv "$T/away" "$_bdir"
assert_gt "$(objects_of rp-b "$K1")" 0 "objects of the key on rp-b, back"

case_ "the token back: key purge erases the key there"
expect_rc 0 "$RP" key purge
assert_grep "$OUT" "erased $K1 from token 'rp-b'"
assert_eq "$(objects_of rp-b "$K1")" 0 "objects of the key left on rp-b"
assert_eq "$(objects_of rp-a "$K1")" 0 "objects of the key left on rp-a"
expect_rc 0 "$RP" key list --json
assert_json "$OUT" '[0]["replicas"]' '[]'
expect_rc 0 "$RP" audit --key "$K1"
assert_grep "$OUT" "token=rp-b"
assert_grep "$OUT" "key.erase"
expect_rc 0 "$RP" audit verify

case_ "revoke erases from both tokens, restore brings back the token's own"
expect_rc 0 "$RP" key backup "$K2" -o "$T/k2.rpkb"
expect_rc 0 "$RP" key replicate "$T/k2.rpkb" --to-token rp-b
expect_rc 0 "$RP" rekey --alg rsa2048
expect_rc 0 "$RP" run "$T/c" --in-place --quiet
expect_rc 0 "$RP" key revoke "$K2" --yes
assert_eq "$(objects_of rp-a "$K2")" 0 "objects of K2 left on rp-a"
assert_eq "$(objects_of rp-b "$K2")" 0 "objects of K2 left on rp-b"
expect_rc 0 "$RP" key restore "$T/k2.rpkb"
assert_gt "$(objects_of rp-a "$K2")" 0 "objects of K2 on rp-a"
assert_eq "$(objects_of rp-b "$K2")" 0 "objects of K2 on rp-b"
expect_rc 0 "$RP" key show "$K2"
if grep -q "replicas:" "$OUT"; then fail "K2 still lists a replica"; else pass; fi

if [ $HOOKS = 1 ]; then
	case_ "a retired key's purge erases it from both tokens"
	expect_rc 0 "$RP" key replicate "$T/k2.rpkb" --to-token rp-b
	expect_rc 0 "$RP" census "$T/c" --quiet --report "$T/census.txt"
	expect_rc 0 "$RP" key retire "$K2" --census "$T/census.txt" \
		--root "$T/c"
	assert_gt "$(objects_of rp-b "$K2")" 0 "objects of K2 on rp-b"
	expect_rc 0 env REPROTECT_TEST_CLOCK_SKEW=$((8 * 86400)) "$RP" \
		key purge
	assert_grep "$OUT" "destroyed $K2"
	assert_eq "$(objects_of rp-a "$K2")" 0 "objects of K2 left on rp-a"
	assert_eq "$(objects_of rp-b "$K2")" 0 "objects of K2 left on rp-b"
	expect_rc 0 env REPROTECT_TEST_CLOCK_SKEW=$((8 * 86400)) "$RP" \
		verify "$T/c" --quiet
fi

it_done
