#!/bin/sh
# it_interop.sh: reprotect and stock age (1.1.1) read each other's files.
#  - reprotect output under imported RSA-2048/3072/4096 keys (PKCS#1 and
#    PKCS#8 PEM) opens with `age -d -i KEY.pem`; under an imported
#    age-keygen identity with `age -d -i id.txt`; with --compress,
#    `age -d | zstd -d` gives the bytes back. Payload sizes around the
#    64 KiB chunk edges.
#  - files made by `age -R key.pub` / `age -r age1...` open with
#    `reprotect unprotect --allow-unlicensed` once the key is imported, and
#    are refused (exit 3, no output) without the flag; a file for a key not
#    in the store gives exit 4.
# Usage: sh tests/it_interop.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need age age-keygen zstd ssh-keygen openssl python3

export REPROTECT_STORE="$T/store"
export REPROTECT_PASSPHRASE=interop-pass
expect_rc 0 "$RP" init

# --- keys: made once, by openssl and age-keygen ----------------------------
# k<bits>.pem is PKCS#1 (genrsa -traditional), k<bits>p8.pem another key in
# PKCS#8; the 4096-bit ones in the background (slow).
openssl genrsa -traditional -out k4096.pem 4096 2>/dev/null &
pid1=$!
openssl genrsa -out k4096p8.pem 4096 2>/dev/null &
pid2=$!
for b in 2048 3072; do
	openssl genrsa -traditional -out "k$b.pem" "$b" 2>/dev/null
	openssl genrsa -out "k${b}p8.pem" "$b" 2>/dev/null
done
openssl genrsa -traditional -out stranger.pem 2048 2>/dev/null
wait "$pid1"
wait "$pid2"
age-keygen -o id.txt 2>/dev/null
age-keygen -o stranger.txt 2>/dev/null

case_ "key files"
for b in 2048 3072 4096; do
	check "k$b.pem is PKCS#1" grep -q 'BEGIN RSA PRIVATE KEY' "k$b.pem"
	check "k${b}p8.pem is PKCS#8" grep -q 'BEGIN PRIVATE KEY' "k${b}p8.pem"
done

# --- plaintexts ---------------------------------------------------------------
SIZES="0 1 65535 65536 65537 1048579"
for n in $SIZES; do
	mkfile "p$n" "$n"
done
# compressible: 1 MiB + 3 of text
i=0
: >ptext
while [ $i -lt 16 ]; do
	printf 'line %05d of a compressible text file for zstd\n' $i >>ptext
	i=$((i + 1))
done
while [ "$(file_size ptext)" -lt 1048579 ]; do
	cat ptext ptext >ptext2
	mv ptext2 ptext
done
head -c 1048579 ptext >ptext2
mv ptext2 ptext
INPUTS=""
for n in $SIZES; do
	INPUTS="$INPUTS p$n"
done
INPUTS="$INPUTS ptext"

# first_stanza FILE: the first stanza line of an age header
first_stanza() {
	sed -n 2p "$1" | cut -d' ' -f1-2
}

# --- reprotect -> age ---------------------------------------------------------
# to_age KEYFILE TAG TYPE: import KEYFILE (active), protect every input with
# and without --compress, open each with stock age.
to_age() {
	_key=$1
	_tag=$2
	_type=$3
	case_ "import $_key"
	expect_rc 0 "$RP" key import "$_key" --activate
	assert_grep "$OUT" " active"
	case_ "protect under $_key"
	# shellcheck disable=SC2086
	expect_rc 0 "$RP" protect $INPUTS --suffix ".$_tag.age" --owner "$_tag"
	# shellcheck disable=SC2086
	expect_rc 0 "$RP" protect $INPUTS --suffix ".$_tag.zst.age" --compress
	for _p in $INPUTS; do
		case_ "age -d -i $_key, $_p"
		_s=$(first_stanza "$_p.$_tag.age")
		if [ "$_s" = "-> $_type" ]; then
			pass
		else
			fail "first stanza '$_s', want '-> $_type'"
		fi
		# (to stdout: age -o makes no file for an empty plaintext)
		if age -d -i "$_key" "$_p.$_tag.age" >out 2>age.err; then
			assert_same out "$_p"
		else
			fail "age -d failed: $(cat age.err)"
		fi
		case_ "age -d -i $_key | zstd -d, $_p"
		# two steps, so that a failing age is not hidden by the pipe
		if ! age -d -i "$_key" "$_p.$_tag.zst.age" >out.zst 2>age.err
		then
			fail "age -d failed: $(cat age.err)"
		elif ! [ -s out.zst ]; then
			fail "age -d gave no zstd frame"
		elif zstd -d -q -c out.zst >out 2>age.err; then
			assert_same out "$_p"
		else
			fail "zstd -d failed: $(cat age.err)"
		fi
	done
}

for b in 2048 3072 4096; do
	to_age "k$b.pem" "r$b" ssh-rsa
	to_age "k${b}p8.pem" "r${b}p8" ssh-rsa
done
to_age id.txt x25519 X25519

case_ "age checks the key (the checks above can fail)"
if age -d -i stranger.pem p1.r2048.age >out 2>age.err; then
	fail "age opened a file with the wrong key"
else
	pass
fi
if age -d -i stranger.txt p1.x25519.age >out 2>age.err; then
	fail "age opened a file with the wrong identity"
else
	pass
fi

case_ "payload layout"
# 16 + P + 16 * max(1, ceil(P / 65536)) bytes after the header
for n in $SIZES; do
	_f="p$n.x25519.age"
	_h=$(header_len "$_f")
	_c=$(((n + 65535) / 65536))
	[ "$_c" -eq 0 ] && _c=1
	_want=$((_h + 16 + n + 16 * _c))
	_got=$(file_size "$_f")
	if [ "$_got" -eq "$_want" ]; then
		pass
	else
		fail "$_f: $_got bytes, want $_want"
	fi
done

case_ "compression shrinks text"
_a=$(file_size ptext.x25519.age)
_z=$(file_size ptext.x25519.zst.age)
if [ "$_z" -lt $((_a / 4)) ]; then pass; else fail "zst $_z vs $_a"; fi

case_ "reprotect opens its own files (all keys archived but one)"
for t in r2048 r3072p8 r4096 x25519; do
	for p in p0 p65537 ptext; do
		rm -f out
		expect_rc 0 "$RP" unprotect "$p.$t.age" -o out
		assert_same out "$p"
		rm -f out
		expect_rc 0 "$RP" unprotect "$p.$t.zst.age" -o out
		assert_same out "$p"
	done
done

case_ "PKCS#1 and PKCS#8 forms give one key id"
openssl pkey -in k2048.pem -out k2048-as-p8.pem 2>/dev/null
check "converted to PKCS#8" grep -q 'BEGIN PRIVATE KEY' k2048-as-p8.pem
expect_rc 7 "$RP" key import k2048-as-p8.pem
assert_grep "$ERR" "already"
expect_rc 0 "$RP" --store "$T/store2" init
expect_rc 0 "$RP" --store "$T/store2" key import k2048-as-p8.pem
ID_A=$(cut -d' ' -f1 "$OUT")
expect_rc 0 "$RP" key list --json
if grep -q "\"$ID_A\", \"alg\": \"rsa2048\"" "$OUT"; then
	pass
else
	fail "key id $ID_A of the PKCS#8 form is not in the first store"
fi
if age -d -i k2048-as-p8.pem p65537.r2048.age >out 2>age.err; then
	assert_same out p65537
else
	fail "age -d with the PKCS#8 form: $(cat age.err)"
fi

# --- age -> reprotect ---------------------------------------------------------
# from_age "SIZES" TAG AGE-RECIPIENT-ARGS...: age encrypts each size; reprotect
# refuses it without --allow-unlicensed (3, no output), opens it with.
from_age() {
	_sizes=$1
	_tag=$2
	shift 2
	for _n in $_sizes; do
		case_ "age $* -> reprotect, $_n bytes"
		age "$@" -o "a$_n.$_tag.age" "p$_n"
		rm -f "a$_n.$_tag"
		expect_rc 3 "$RP" unprotect "a$_n.$_tag.age"
		assert_err_line "a$_n.$_tag.age" "allow-unlicensed"
		assert_absent "a$_n.$_tag"
		expect_rc 0 "$RP" unprotect --allow-unlicensed "a$_n.$_tag.age"
		assert_same "a$_n.$_tag" "p$_n"
		assert_mode600 "a$_n.$_tag"
		expect_rc 0 "$RP" unprotect --allow-unlicensed -o - \
			"a$_n.$_tag.age"
		assert_same "$OUT" "p$_n"
	done
	case_ "inspect of an age file ($_tag)"
	expect_rc 3 "$RP" inspect --json "a1.$_tag.age"
	json_ok "$OUT"
	assert_json "$OUT" '["licensed"]' false
	assert_json "$OUT" '["checks"]["license"]["status"]' unlicensed
	assert_json "$OUT" '["key"]["in_store"]' true
	assert_json "$OUT" '["checks"]["header_mac"]["status"]' ok
}

for b in 2048 3072 4096; do
	ssh-keygen -y -f "k$b.pem" >"k$b.pub"
	ssh-keygen -y -f "k${b}p8.pem" >"k${b}p8.pub"
	from_age "0 1 65536 65537 1048579" "s$b" -R "k$b.pub"
	from_age "1 65537" "s${b}p8" -R "k${b}p8.pub"
done
from_age "0 1 65536 65537 1048579" x -r "$(age-keygen -y id.txt)"

case_ "several recipients, ours last"
ssh-keygen -y -f stranger.pem >stranger.pub
R_STRANGER=$(age-keygen -y stranger.txt)
R_ID=$(age-keygen -y id.txt)
age -r "$R_STRANGER" -R stranger.pub -R k3072.pub -o multi1.age p65537
expect_rc 0 "$RP" unprotect --allow-unlicensed multi1.age -o out.m1
assert_same out.m1 p65537
age -r "$R_STRANGER" -R stranger.pub -r "$R_ID" -o multi2.age p1
expect_rc 0 "$RP" unprotect --allow-unlicensed multi2.age -o out.m2
assert_same out.m2 p1

case_ "age file for a key not in the store"
age -r "$R_STRANGER" -o nokey-x.age p65537
expect_rc 4 "$RP" unprotect --allow-unlicensed nokey-x.age -o out.nk
assert_err_line "nokey-x.age" "no key"
assert_absent out.nk
expect_rc 3 "$RP" unprotect nokey-x.age -o out.nk
assert_absent out.nk
age -R stranger.pub -o nokey-r.age p1
expect_rc 4 "$RP" unprotect --allow-unlicensed nokey-r.age -o out.nk
assert_err_line "nokey-r.age" "no key"
assert_absent out.nk
age -r "$R_STRANGER" -R stranger.pub -o nokey-2.age p0
expect_rc 4 "$RP" unprotect --allow-unlicensed nokey-2.age -o out.nk
assert_absent out.nk
# inspect reports the first failing check: no license (3)
expect_rc 3 "$RP" inspect --json nokey-x.age
assert_json "$OUT" '["key"]["in_store"]' false
assert_json "$OUT" '["checks"]["key"]["status"]' nokey

case_ "a reprotect file for a key not in the store"
expect_rc 4 "$RP" --store "$T/store2" unprotect p1.x25519.age -o out.nk
assert_absent out.nk

case_ "tampered age file"
# a flipped payload byte in an unlicensed file is still caught
flip_byte a65537.s2048.age bad.age $(($(file_size a65537.s2048.age) - 100))
expect_rc 3 "$RP" unprotect --allow-unlicensed bad.age -o out.bad
assert_absent out.bad

assert_no_tmp
it_done
