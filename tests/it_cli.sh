#!/bin/sh
# it_cli.sh: the command line of reprotect, end to end: store life
# (init, passphrase), key commands, protect/unprotect/inspect options,
# output files (atomic, 0600, no temp files left), help and usage errors.
# Usage: sh tests/it_cli.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need python3 age

# umask 022 so that "created 0600" is the program's doing, not ours
umask 022
ST=$T/store
PW=correct-horse
printf '%s\n' "$PW" >"$T/pass.txt"

# --- help and usage errors (no store, no passphrase needed) ---------------
case_ "help"
expect_rc 0 "$RP" --help
assert_grep "$OUT" "protect"
assert_grep "$OUT" "--store"
expect_rc 0 "$RP" help
expect_rc 0 "$RP" --version
assert_grep "$OUT" "reprotect "
expect_rc 0 "$RP" version

# check_help ARGS WORD...: `reprotect ARGS --help` exits 0, names each WORD
check_help() {
	_args=$1
	shift
	case_ "help: $_args"
	# shellcheck disable=SC2086
	expect_rc 0 "$RP" $_args --help
	for _w in "$@"; do
		assert_grep "$OUT" "$_w"
	done
	if [ -s "$ERR" ]; then
		fail "--help wrote to stderr"
	else
		pass
	fi
}
check_help init --store --passphrase-file "Exit codes"
check_help key create import list --alg --activate --exportable --json \
	rsa2048 rsa3072 rsa4096 x25519
check_help "key create" --alg --activate --exportable
check_help "key list" --json
check_help protect "IN..." -o --output --suffix --owner --template \
	--compress --force --store --passphrase-file
check_help unprotect -o --output --allow-unlicensed --force "-o -"
check_help inspect --json "FILE" "header MAC"
case_ "help: inspect (short)"
expect_rc 0 "$RP" inspect -h
assert_grep "$OUT" "--json"

case_ "usage errors"
expect_rc 2 "$RP"
expect_rc 2 "$RP" frobnicate
assert_grep "$ERR" "frobnicate"
expect_rc 2 "$RP" --frobnicate init
expect_rc 2 "$RP" --store
expect_rc 2 "$RP" key list --store
expect_rc 2 "$RP" init --frobnicate
expect_rc 2 "$RP" init extra-arg
expect_rc 2 "$RP" key
expect_rc 2 "$RP" key frob
expect_rc 2 "$RP" key create --alg rsa1024
expect_rc 2 "$RP" key create --bogus
expect_rc 2 "$RP" key import
expect_rc 2 "$RP" key list extra
expect_rc 2 "$RP" protect
expect_rc 2 "$RP" protect --bogus x
expect_rc 2 "$RP" unprotect
expect_rc 2 "$RP" unprotect a.age b.age
expect_rc 2 "$RP" unprotect --compress x.age
expect_rc 2 "$RP" inspect
expect_rc 2 "$RP" inspect --force x.age
expect_rc 2 "$RP" protect --suffix '' x
expect_rc 2 "$RP" protect -o - x
expect_rc 2 "$RP" protect -o y --suffix .z x

# --- store life ------------------------------------------------------------
case_ "missing store"
export REPROTECT_PASSPHRASE="$PW"
expect_rc 7 "$RP" --store "$ST" key list
assert_grep "$ERR" "no store"
assert_grep "$ERR" "reprotect init"
assert_absent "$ST"
expect_rc 7 "$RP" key list --store "$ST"
assert_grep "$ERR" "$ST"
# the default folders: $XDG_DATA_HOME/reprotect, else ~/.local/share
expect_rc 7 env XDG_DATA_HOME="$T/xdg" "$RP" key list
assert_grep "$ERR" "$T/xdg/reprotect"
expect_rc 7 "$RP" key list
assert_grep "$ERR" "$HOME/.local/share/reprotect"
expect_rc 7 env REPROTECT_STORE='' "$RP" key list
assert_grep "$ERR" "$HOME/.local/share/reprotect"
export REPROTECT_STORE="$ST"
expect_rc 7 "$RP" key list
assert_grep "$ERR" "no store"
assert_grep "$ERR" "$ST"

case_ "no passphrase"
unset REPROTECT_PASSPHRASE
expect_rc 7 "$RP" init
assert_grep "$ERR" "passphrase"
assert_absent "$ST"
case_ "empty passphrase"
: >"$T/empty.txt"
expect_rc 7 "$RP" --passphrase-file "$T/empty.txt" init
assert_absent "$ST/keyring"

case_ "init"
expect_rc 0 "$RP" init --passphrase-file "$T/pass.txt"
assert_exists "$ST/keyring"
_m=$(stat -c %a "$ST")
if [ "$_m" = 700 ]; then pass; else fail "store folder mode $_m, want 700"; fi
_bad=$(find "$ST" -type f ! -perm 600)
if [ -z "$_bad" ]; then pass; else fail "store files not 0600: $_bad"; fi
cp -p "$ST/keyring" "$T/keyring.before"

case_ "init twice"
export REPROTECT_PASSPHRASE="$PW"
expect_rc 7 "$RP" init
assert_grep "$ERR" "already"
assert_same "$ST/keyring" "$T/keyring.before"
expect_rc 7 "$RP" --store "$ST" init --passphrase-file "$T/pass.txt"

case_ "wrong passphrase"
expect_rc 7 env REPROTECT_PASSPHRASE=wrong-horse "$RP" key list
assert_grep "$ERR" "passphrase"
printf 'wrong\n' >"$T/wrong.txt"
expect_rc 7 "$RP" key list --passphrase-file "$T/wrong.txt"
# the file wins over the environment
expect_rc 0 env REPROTECT_PASSPHRASE=wrong-horse "$RP" key list \
	--passphrase-file "$T/pass.txt"
expect_rc 0 "$RP" key list
printf '%s\r\n' "$PW" >"$T/pass-crlf.txt"
expect_rc 0 "$RP" key list --passphrase-file "$T/pass-crlf.txt"
expect_rc 0 "$RP" key list --store "$ST"
expect_rc 7 "$RP" key list --store "$T/elsewhere"

case_ "empty key list"
expect_rc 0 "$RP" key list --json
json_ok "$OUT"
assert_json "$OUT" '.__len__()' 0

# --- keys --------------------------------------------------------------------
case_ "protect with no key"
printf 'no key yet\n' >"$T/nokey.txt"
expect_rc 7 "$RP" protect "$T/nokey.txt"
assert_grep "$ERR" "active"
assert_absent "$T/nokey.txt.age"
assert_no_tmp

case_ "key create (pending)"
expect_rc 0 "$RP" key create --alg x25519
K1=$(cut -d' ' -f1 "$OUT")
assert_grep "$OUT" "x25519 pending"
case_ "protect with only a pending key"
expect_rc 7 "$RP" protect "$T/nokey.txt"
assert_absent "$T/nokey.txt.age"
assert_no_tmp

case_ "key create --activate"
expect_rc 0 "$RP" key create --alg x25519 --activate
K2=$(cut -d' ' -f1 "$OUT")
assert_grep "$OUT" "x25519 active"
expect_rc 0 "$RP" key create --alg rsa2048 --activate --exportable
K3=$(cut -d' ' -f1 "$OUT")
assert_grep "$OUT" "rsa2048 active"
expect_rc 0 "$RP" key list --json
cp "$OUT" "$T/keys.json"
json_ok "$T/keys.json"
assert_json "$T/keys.json" '.__len__()' 3
# key_field ID FIELD: FIELD of the key ID in keys.json
key_field() {
	py -c 'import json, sys
ks = [k for k in json.load(open(sys.argv[1])) if k["id"] == sys.argv[2]]
print(ks[0][sys.argv[3]] if len(ks) == 1 else "<%d keys>" % len(ks))' \
		"$T/keys.json" "$1" "$2"
}
# check_key ID ALG STATE
check_key() {
	_a=$(key_field "$1" alg)
	_s=$(key_field "$1" state)
	if [ "$_a $_s" = "$2 $3" ]; then
		pass
	else
		fail "key $1: '$_a $_s', want '$2 $3'"
	fi
}
check_key "$K1" x25519 pending
check_key "$K2" x25519 archived
check_key "$K3" rsa2048 active
_e=$(key_field "$K3" exportable)
if [ "$_e" = True ]; then pass; else fail "K3 exportable=$_e"; fi
_e=$(key_field "$K2" exportable)
if [ "$_e" = False ]; then pass; else fail "K2 exportable=$_e"; fi
case_ "key list (table)"
expect_rc 0 "$RP" key list
assert_grep "$OUT" "$(echo "$K3" | cut -c1-16)"
assert_grep "$OUT" "archived"

case_ "key import"
openssl genrsa -out "$T/imp.pem" 2048 2>/dev/null
expect_rc 0 "$RP" key import "$T/imp.pem"
K4=$(cut -d' ' -f1 "$OUT")
assert_grep "$OUT" "rsa2048 pending"
expect_rc 7 "$RP" key import "$T/imp.pem"
printf 'not a key\n' >"$T/junk.pem"
run_rp "$RP" key import "$T/junk.pem"
if [ "$LAST_RC" -ne 0 ]; then pass; else fail "junk key imported"; fi
expect_rc 6 "$RP" key import "$T/does-not-exist.pem"
expect_rc 0 "$RP" key list --json
cp "$OUT" "$T/keys.json"
assert_json "$T/keys.json" '.__len__()' 4
check_key "$K4" rsa2048 pending
check_key "$K3" rsa2048 active
_e=$(key_field "$K4" imported)
if [ "$_e" = True ]; then pass; else fail "K4 imported=$_e"; fi

# --- protect: outputs ---------------------------------------------------------
mkdir "$T/d"
mkfile "$T/d/a.bin" 70000
printf 'bee\n' >"$T/d/b.txt"
: >"$T/d/empty"

case_ "protect default suffix"
expect_rc 0 "$RP" protect "$T/d/a.bin"
assert_exists "$T/d/a.bin.age"
assert_mode600 "$T/d/a.bin.age"
case_ "unprotect strips .age"
mv "$T/d/a.bin" "$T/a.bin.orig"
expect_rc 0 "$RP" unprotect "$T/d/a.bin.age"
assert_same "$T/d/a.bin" "$T/a.bin.orig"
assert_mode600 "$T/d/a.bin"
case_ "unprotect needs .age or -o"
expect_rc 2 "$RP" unprotect "$T/d/b.txt"
expect_rc 2 "$RP" unprotect .age

case_ "unprotect -o -"
expect_rc 0 "$RP" unprotect "$T/d/a.bin.age" -o -
assert_same "$OUT" "$T/a.bin.orig"
expect_rc 0 "$RP" unprotect -o - "$T/d/a.bin.age"
assert_same "$OUT" "$T/a.bin.orig"
assert_absent "$T/d/-"
assert_absent "./-"

case_ "protect --suffix and -o"
expect_rc 0 "$RP" protect "$T/d/b.txt" --suffix .sealed
assert_exists "$T/d/b.txt.sealed"
assert_absent "$T/d/b.txt.age"
expect_rc 0 "$RP" protect "$T/d/empty" -o "$T/d/empty.out"
assert_mode600 "$T/d/empty.out"
expect_rc 0 "$RP" unprotect "$T/d/empty.out" -o "$T/d/empty.back"
assert_same "$T/d/empty.back" "$T/d/empty"
expect_rc 0 "$RP" unprotect "$T/d/b.txt.sealed" -o "$T/d/b.back"
assert_same "$T/d/b.back" "$T/d/b.txt"

case_ "-o with two inputs"
expect_rc 2 "$RP" protect "$T/d/b.txt" "$T/d/empty" -o "$T/d/two.age"
assert_absent "$T/d/two.age"
assert_absent "$T/d/b.txt.age"
assert_absent "$T/d/empty.age"

case_ "several inputs, one missing"
mkdir "$T/m"
printf one >"$T/m/1"
printf two >"$T/m/2"
expect_rc 1 "$RP" protect "$T/m/1" "$T/m/missing" "$T/m/2"
assert_err_line "$T/m/missing" "no such file" "cannot open"
assert_exists "$T/m/1.age"
assert_exists "$T/m/2.age"
assert_absent "$T/m/missing.age"
assert_no_tmp
expect_rc 0 "$RP" unprotect "$T/m/2.age" -o -
if [ "$(cat "$OUT")" = two ]; then pass; else fail "m/2 opened wrong"; fi
case_ "several inputs, all fail"
expect_rc 1 "$RP" protect "$T/m/x" "$T/m/y"
case_ "one input, missing"
expect_rc 6 "$RP" protect "$T/m/missing"
assert_absent "$T/m/missing.age"
case_ "output folder missing"
expect_rc 6 "$RP" protect "$T/m/1" -o "$T/nodir/1.age"
assert_absent "$T/nodir"

case_ "existing output refused"
printf 'precious\n' >"$T/m/keep.age"
printf 'keep\n' >"$T/m/keep"
expect_rc 7 "$RP" protect "$T/m/keep"
assert_err_line "keep" "exists"
if [ "$(cat "$T/m/keep.age")" = precious ]; then
	pass
else
	fail "existing output was changed"
fi
assert_no_tmp
# several inputs: the existing one fails, the other is made
printf three >"$T/m/3"
expect_rc 1 "$RP" protect "$T/m/keep" "$T/m/3"
assert_exists "$T/m/3.age"
if [ "$(cat "$T/m/keep.age")" = precious ]; then pass; else fail "changed"; fi
case_ "--force replaces"
expect_rc 0 "$RP" protect "$T/m/keep" --force
assert_mode600 "$T/m/keep.age"
expect_rc 0 "$RP" unprotect "$T/m/keep.age" -o -
if [ "$(cat "$OUT")" = keep ]; then pass; else fail "forced output wrong"; fi
assert_no_tmp

case_ "unprotect: existing output refused"
printf 'old\n' >"$T/m/1"
expect_rc 7 "$RP" unprotect "$T/m/1.age"
assert_err_line "1.age" "exists"
if [ "$(cat "$T/m/1")" = old ]; then pass; else fail "output changed"; fi
assert_no_tmp
case_ "unprotect --force replaces"
chmod 644 "$T/m/1"
expect_rc 0 "$RP" unprotect "$T/m/1.age" --force
if [ "$(cat "$T/m/1")" = one ]; then pass; else fail "not replaced"; fi
assert_mode600 "$T/m/1"

case_ "symlinks at the output are not written through"
printf 'target\n' >"$T/m/target"
ln -s "$T/m/target" "$T/m/link.age"
ln -s "$T/m/dangling" "$T/m/dead.age"
expect_rc 7 "$RP" protect "$T/m/1" -o "$T/m/link.age"
expect_rc 7 "$RP" protect "$T/m/1" -o "$T/m/dead.age"
assert_absent "$T/m/dangling"
expect_rc 0 "$RP" protect "$T/m/1" -o "$T/m/link.age" --force
if [ "$(cat "$T/m/target")" = target ] && [ ! -L "$T/m/link.age" ]; then
	pass
else
	fail "--force wrote through the symlink"
fi
assert_no_tmp

case_ "quiet success"
expect_rc 0 "$RP" protect "$T/m/1" -o "$T/m/quiet.age"
if [ -s "$ERR" ] || [ -s "$OUT" ]; then fail "protect printed"; else pass; fi
expect_rc 0 "$RP" unprotect "$T/m/quiet.age" -o "$T/m/quiet"
if [ -s "$ERR" ] || [ -s "$OUT" ]; then fail "unprotect printed"; else pass; fi

case_ "unprotect: missing input"
expect_rc 6 "$RP" unprotect "$T/m/nothere.age"
assert_err_line "nothere.age" "no such file" "cannot open"
assert_absent "$T/m/nothere"

case_ "unprotect: wrong passphrase"
rm -f "$T/m/2"
expect_rc 7 env REPROTECT_PASSPHRASE=nope "$RP" unprotect "$T/m/2.age"
assert_absent "$T/m/2"
assert_no_tmp

# --- license fields through inspect ----------------------------------------
OWNER='Zoë "the boss" \ 日本 <x>'
TEMPLATE='tmpl/read-only"v2"'
case_ "inspect --json owner/template"
printf 'licensed\n' >"$T/lic.txt"
expect_rc 7 "$RP" protect "$T/lic.txt" --template "$TEMPLATE"
assert_absent "$T/lic.txt.age"
expect_rc 0 "$RP" template create "$TEMPLATE" --rights view,print
expect_rc 0 "$RP" protect "$T/lic.txt" --owner "$OWNER" --template "$TEMPLATE"
expect_rc 0 "$RP" inspect --json "$T/lic.txt.age"
cp "$OUT" "$T/lic.json"
json_ok "$T/lic.json"
assert_json "$T/lic.json" '["license"]["owner"]' "$OWNER"
assert_json "$T/lic.json" '["license"]["template"]' "$TEMPLATE"
assert_json "$T/lic.json" '["license"]["key_id"]' "$K3"
assert_json "$T/lic.json" '["license"]["plaintext_size"]' 9
assert_json "$T/lic.json" '["license"]["encoding"]' none
assert_json "$T/lic.json" '["licensed"]' true
assert_json "$T/lic.json" '["recipient"]["type"]' ssh-rsa
assert_json "$T/lic.json" '["key"]["state"]' active
assert_json "$T/lic.json" '["file"]' "$T/lic.txt.age"
for _c in license key stanza_binding nonce_binding signature header_mac \
	payload_end; do
	assert_json "$T/lic.json" "[\"checks\"][\"$_c\"][\"status\"]" ok
done
case_ "inspect (text)"
expect_rc 0 "$RP" inspect "$T/lic.txt.age"
assert_grep "$OUT" "$OWNER"
assert_grep "$OUT" "$TEMPLATE"
case_ "owner limits"
_long=$(printf '%0256d' 0)
expect_rc 2 "$RP" protect "$T/lic.txt" -o "$T/long.age" --owner "$_long"
assert_absent "$T/long.age"
_t65=$(printf '%065d' 0)
expect_rc 2 "$RP" protect "$T/lic.txt" -o "$T/long.age" --template "$_t65"
assert_absent "$T/long.age"
_max=$(printf '%0255d' 0)
expect_rc 0 "$RP" protect "$T/lic.txt" -o "$T/max.age" --owner "$_max"
expect_rc 0 "$RP" inspect --json "$T/max.age"
assert_json "$OUT" '["license"]["owner"]' "$_max"
case_ "owner with a newline or bad UTF-8 refused"
run_rp "$RP" protect "$T/lic.txt" -o "$T/nl.age" --owner "$(printf 'a\nb')"
if [ "$LAST_RC" -ne 0 ]; then pass; else fail "newline owner accepted"; fi
assert_absent "$T/nl.age"
run_rp "$RP" protect "$T/lic.txt" -o "$T/bad.age" --owner "$(printf 'a\377b')"
if [ "$LAST_RC" -ne 0 ]; then pass; else fail "invalid UTF-8 accepted"; fi
assert_absent "$T/bad.age"
assert_no_tmp

case_ "--compress"
mkfile "$T/z.bin" 10000
cat "$T/z.bin" "$T/z.bin" "$T/z.bin" "$T/z.bin" >"$T/zz.bin"
expect_rc 0 "$RP" protect --compress "$T/zz.bin" --owner o
expect_rc 0 "$RP" inspect --json "$T/zz.bin.age"
assert_json "$OUT" '["license"]["encoding"]' zstd
assert_json "$OUT" '["license"]["plaintext_size"]' 40000
_sz=$(file_size "$T/zz.bin.age")
if [ "$_sz" -lt 30000 ]; then pass; else fail "compressed size $_sz"; fi
expect_rc 0 "$RP" unprotect "$T/zz.bin.age" -o "$T/zz.back"
assert_same "$T/zz.back" "$T/zz.bin"

case_ "archived key still opens"
expect_rc 0 "$RP" key create --alg x25519 --activate
K5=$(cut -d' ' -f1 "$OUT")
expect_rc 0 "$RP" protect "$T/lic.txt" -o "$T/x.age"
expect_rc 0 "$RP" inspect --json "$T/x.age"
assert_json "$OUT" '["recipient"]["type"]' X25519
assert_json "$OUT" '["license"]["key_id"]' "$K5"
assert_json "$OUT" '["license"]["owner"]' ""
assert_json "$OUT" '["license"]["signature"]["alg"]' ed25519
expect_rc 0 "$RP" key list --json
cp "$OUT" "$T/keys.json"
check_key "$K3" rsa2048 archived
check_key "$K5" x25519 active
expect_rc 0 "$RP" unprotect "$T/lic.txt.age" -o "$T/lic.back"
assert_same "$T/lic.back" "$T/lic.txt"
expect_rc 0 "$RP" inspect --json "$T/lic.txt.age"
assert_json "$OUT" '["key"]["state"]' archived

case_ "another store does not open it"
expect_rc 0 "$RP" --store "$T/store2" init
expect_rc 4 "$RP" --store "$T/store2" unprotect "$T/x.age" -o "$T/x.out"
assert_absent "$T/x.out"
expect_rc 4 "$RP" --store "$T/store2" inspect --json "$T/x.age"
json_ok "$OUT"
assert_json "$OUT" '["key"]["in_store"]' false
assert_json "$OUT" '["checks"]["key"]["status"]' nokey
assert_json "$OUT" '["checks"]["payload_end"]["status"]' not_checked

case_ "inspect: not a document"
expect_rc 3 "$RP" inspect "$T/lic.txt"
assert_err_line "lic.txt" "header" "version" "malformed"
expect_rc 3 "$RP" unprotect "$T/lic.txt" -o "$T/lic.out"
assert_absent "$T/lic.out"
expect_rc 6 "$RP" inspect "$T/nope.age"
run_rp "$RP" inspect "$T/d"
if [ "$LAST_RC" -ne 0 ] && [ "$LAST_RC" -ne 3 ]; then
	pass
else
	fail "inspect of a folder: exit $LAST_RC"
fi

case_ "no temp files anywhere"
assert_no_tmp "$T" "$ST"

it_done
