#!/bin/sh
# it_lifecycle.sh: the tenant key life cycle end to end, on the soft
# keystore and (when the build has it) on a SoftHSM2 token: create, rights
# templates, backup, rekey, revoke, restore, export, destroy, security
# world shares, keyring and audit log tampering; then the store lock under
# concurrent commands, and (in builds with test hooks) a crash at each
# life-cycle step.
# Usage: sh tests/it_lifecycle.sh PATH/TO/reprotect
set -eu
# shellcheck source=tests/it_lib.sh
. "$(dirname "$0")/it_lib.sh"
need python3 openssl

export REPROTECT_PASSPHRASE='it-lifecycle passphrase'
unset REPROTECT_PKCS11_PIN REPROTECT_TEST_CRASH SOFTHSM2_CONF

# Fixture RSA keys, made once here (fast: not under the sanitizers).
for _f in fx-c fx-k1 fx-cc; do
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$T/$_f.pem" 2>/dev/null
done

# ---------------------------------------------------------------- helpers

# rp ARGS...: the binary on the current store ($REPROTECT_STORE)
# shellcheck disable=SC2317 # called through expect_rc
rp() {
	"$RP" "$@"
}

# first_field: the first word of the last command's stdout (a key id)
first_field() {
	head -n 1 "$OUT" | cut -d' ' -f1
}

# rekey_active: the new active key id from `rekey` output in $OUT
rekey_active() {
	sed -n 's/^active: *\([0-9a-f]*\).*/\1/p' "$OUT"
}

# states [STORE]: one "ID STATE" line per key, sorted by id
states() {
	REPROTECT_STORE=${1:-$REPROTECT_STORE} "$RP" key list --json \
		2>/dev/null | python3 -c 'import json, sys
for k in sorted(json.load(sys.stdin), key=lambda k: k["id"]):
    print(k["id"], k["state"])' 2>/dev/null || echo "<key list failed>"
}

# state_of ID: the key's state, from key show --json
state_of() {
	"$RP" key show "$1" --json 2>/dev/null | python3 -c 'import json, sys
print(json.load(sys.stdin)["state"])' 2>/dev/null || echo "<no key $1>"
}

# count_state STATE: how many keys are in STATE
count_state() {
	states | grep -c " $1\$" || true
}

# assert_state ID STATE
assert_state() {
	_s=$(state_of "$1")
	if [ "$_s" = "$2" ]; then pass; else fail "key $1 is '$_s', want '$2'"; fi
}

# assert_eq GOT WANT DESC

# doc_key DOC: the key id in DOC's license (inspect --json)
doc_key() {
	"$RP" inspect "$1" --json 2>/dev/null >"$T/.insp" || true
	json_get "$T/.insp" '["license"]["key_id"]'
}

# opens DOC PLAIN: DOC unprotects (exit 0) to exactly PLAIN's bytes
opens() {
	rm -f "$T/.plain"
	expect_rc 0 "$RP" unprotect "$1" -o "$T/.plain"
	assert_same "$T/.plain" "$2"
	rm -f "$T/.plain"
}

# refused DOC CODE TEXT...: unprotect exits CODE, writes nothing, and its
# stderr holds each TEXT
refused() {
	_doc=$1
	_code=$2
	shift 2
	rm -f "$T/.plain"
	expect_rc "$_code" "$RP" unprotect "$_doc" -o "$T/.plain"
	assert_absent "$T/.plain"
	for _w in "$@"; do
		assert_grep "$ERR" "$_w"
	done
}

# no_store_tmp DIR: no atomic-write leftover (*.rp-tmp-*) in the store DIR
no_store_tmp() {
	_left=$(find "$1" -name '*.rp-tmp-*' 2>/dev/null | head -n 5)
	if [ -n "$_left" ]; then
		fail "temp files left in the store: $(echo "$_left" | tr '\n' ' ')"
	else
		pass
	fi
}

# audit_ok: `audit verify` exits 0 and says intact
audit_ok() {
	expect_rc 0 "$RP" audit verify
	assert_grep "$OUT" "audit log intact"
}

# audit_bad WORD...: `audit verify` exits 3 and stderr names each WORD
audit_bad() {
	expect_rc 3 "$RP" audit verify
	for _w in "$@"; do
		assert_grep "$ERR" "$_w"
	done
}

# sha256_of_spki PEM: the key id reprotect gives an RSA key
sha256_of_spki() {
	openssl pkey -in "$1" -pubout -outform DER 2>/dev/null |
		openssl dgst -sha256 -r | cut -d' ' -f1
}

# ------------------------------------------------------- the life cycle

# lifecycle BACKEND BALG INIT_ARGS...: the whole scenario on one backend.
# B is the rekey target's algorithm.
lifecycle() {
	BE=$1
	BALG=$2
	shift 2
	W=$T/$BE
	mkdir "$W"
	cd "$W"
	S=$W/store
	export REPROTECT_STORE="$S"

	case_ "$BE: init"
	expect_rc 0 rp init "$@"
	expect_rc 7 rp init "$@"
	assert_grep "$ERR" "already holds a store"

	# --- key A, a template, documents under A
	case_ "$BE: key A"
	expect_rc 0 rp key create --alg rsa2048 --activate
	A=$(first_field)
	A16=$(echo "$A" | cut -c1-16)
	assert_grep "$OUT" "$A rsa2048 active"
	assert_eq "$(count_state active)" 1 "active keys"

	case_ "$BE: template"
	expect_rc 0 rp template create conf --rights view,print
	expect_rc 0 rp template list --json
	assert_json "$OUT" '[0]["name"]' conf
	assert_json "$OUT" '[0]["signer"]' "$A"
	assert_json "$OUT" '[0]["signature"]' ok

	case_ "$BE: protect under A"
	mkfile a1.txt 1000
	mkfile a2.bin 200000
	expect_rc 0 rp protect a1.txt a2.bin --template conf --owner alice@example.org
	assert_eq "$(doc_key a1.txt.age)" "$A" "a1 key"
	assert_eq "$(doc_key a2.bin.age)" "$A" "a2 key"
	assert_json "$T/.insp" '["license"]["template"]' conf
	opens a1.txt.age a1.txt
	opens a2.bin.age a2.bin

	case_ "$BE: backup A"
	expect_rc 0 rp key backup "$(echo "$A" | cut -c1-6)" -o A.bak
	assert_mode600 A.bak
	assert_grep "$OUT" "backed up $A"
	expect_rc 7 rp key backup "$A" -o A.bak
	expect_rc 0 rp key show "$A" --json
	if [ "$(json_get "$OUT" '["backed_up"]')" != - ]; then pass; else
		fail "backed_up not set"
	fi
	expect_rc 2 rp key backup "$A"

	# --- rekey to B
	case_ "$BE: rekey to B ($BALG)"
	expect_rc 0 rp rekey --alg "$BALG"
	B=$(rekey_active)
	B16=$(echo "$B" | cut -c1-16)
	assert_grep "$OUT" "($BALG)"
	assert_grep "$OUT" "archived: $A"
	assert_grep "$OUT" "templates re-signed: 1"
	assert_state "$A" archived
	assert_state "$B" active
	assert_eq "$(count_state active)" 1 "active keys"

	case_ "$BE: protect under B"
	mkfile b1.txt 3000
	mkfile b2.bin 70000
	expect_rc 0 rp protect b1.txt b2.bin --template conf
	assert_eq "$(doc_key b1.txt.age)" "$B" "b1 key"
	assert_eq "$(doc_key b2.bin.age)" "$B" "b2 key"
	assert_eq "$(doc_key a1.txt.age)" "$A" "a1 key after rekey"
	opens a1.txt.age a1.txt
	opens a2.bin.age a2.bin
	opens b1.txt.age b1.txt
	opens b2.bin.age b2.bin
	expect_rc 0 rp template list --json
	assert_json "$OUT" '[0]["signer"]' "$B"
	assert_json "$OUT" '[0]["signature"]' ok

	# --- revoke A
	case_ "$BE: revoke A"
	expect_rc 2 rp key revoke "$A"
	assert_state "$A" archived
	expect_rc 0 rp key revoke "$A" --yes
	assert_grep "$OUT" "revoked $A"
	assert_state "$A" revoked
	if [ "$BE" = soft ]; then
		assert_absent "$S/keys/$A.key"
	fi
	refused a1.txt.age 5 "$A16" "restore"
	refused a2.bin.age 5 "$A16" "restore"
	expect_rc 5 rp inspect a1.txt.age --json
	assert_json "$OUT" '["key"]["state"]' revoked
	opens b1.txt.age b1.txt
	# revoking again is harmless: it (re)erases the material, state stays
	expect_rc 0 rp key revoke "$A" --yes
	assert_state "$A" revoked
	expect_rc 7 rp key backup "$A" -o A2.bak
	assert_absent A2.bak
	expect_rc 0 rp template list --json
	assert_json "$OUT" '[0]["signature"]' ok

	case_ "$BE: restore A"
	expect_rc 0 rp key restore A.bak
	assert_grep "$OUT" "restored $A: archived"
	assert_state "$A" archived
	assert_state "$B" active
	opens a1.txt.age a1.txt
	opens a2.bin.age a2.bin
	expect_rc 7 rp key restore A.bak
	assert_grep "$ERR" "nothing to restore"
	printf 'not a backup' >junk.bak
	expect_rc 3 rp key restore junk.bak
	flip_byte A.bak A-flipped.bak 60
	expect_rc 0 rp key revoke "$A" --yes
	expect_rc 3 rp key restore A-flipped.bak
	assert_state "$A" revoked
	expect_rc 0 rp key restore A.bak
	opens a1.txt.age a1.txt

	# --- export
	case_ "$BE: export"
	expect_rc 7 rp key export "$A"
	assert_grep "$ERR" "not exportable"
	if [ -s "$OUT" ]; then fail "export printed something"; else pass; fi
	expect_rc 7 rp key export "$B" -o B.pem
	assert_grep "$ERR" "not exportable"
	assert_absent B.pem
	expect_rc 0 rp key create --alg rsa2048 --exportable
	E=$(first_field)
	assert_grep "$OUT" "$E rsa2048 pending"
	expect_rc 0 rp key export "$E" -o E.pem
	assert_mode600 E.pem
	check "exported PEM is a private key" openssl pkey -in E.pem -noout
	assert_eq "$(sha256_of_spki E.pem)" "$E" "exported key's SPKI hash"
	expect_rc 7 rp key export "$E" -o E.pem
	if [ "$BE" = soft ]; then
		expect_rc 0 rp key create --alg x25519 --exportable
		X=$(first_field)
		expect_rc 0 rp key export "$X"
		assert_grep "$OUT" "AGE-SECRET-KEY-1"
		cp "$OUT" X.age-id
		if command -v age-keygen >/dev/null 2>&1; then
			check "age-keygen -y takes the identity" age-keygen -y X.age-id
		fi
		# the same identity imported elsewhere is the same key
		expect_rc 0 env REPROTECT_STORE="$W/xs" "$RP" init
		expect_rc 0 env REPROTECT_STORE="$W/xs" "$RP" key import X.age-id
		assert_grep "$OUT" "$X x25519 pending"
	fi
	expect_rc 0 rp audit --key "$E" --json
	assert_grep "$OUT" '"op": "key.export"'

	# --- destroy
	case_ "$BE: destroy"
	expect_rc 7 rp key destroy "$B" --without-census --yes
	assert_grep "$ERR" "only a revoked key"
	assert_state "$B" active
	expect_rc 0 rp key import "$T/fx-c.pem"
	C=$(first_field)
	assert_eq "$C" "$(sha256_of_spki "$T/fx-c.pem")" "imported key id"
	assert_state "$C" pending
	expect_rc 7 rp rekey --to "$A"
	expect_rc 0 rp rekey --to "$(echo "$C" | cut -c1-8)"
	assert_grep "$OUT" "active:   $C"
	assert_grep "$OUT" "archived: $B"
	assert_state "$B" archived
	expect_rc 7 rp key destroy "$B" --without-census --yes
	assert_state "$B" archived
	mkfile c1.txt 500
	expect_rc 0 rp protect c1.txt
	assert_eq "$(doc_key c1.txt.age)" "$C" "c1 key"
	expect_rc 0 rp key backup "$B" -o B.bak
	expect_rc 0 rp key revoke "$B" --yes
	expect_rc 2 rp key destroy "$B" --without-census
	assert_state "$B" revoked
	# no census can prove yet that no document is left: the operator must
	# say so, and the audit log records it
	expect_rc 2 rp key destroy "$B" --yes
	assert_grep "$ERR" "--without-census"
	assert_state "$B" revoked
	expect_rc 0 rp key destroy "$B" --without-census --yes
	assert_grep "$OUT" "destroyed $B"
	assert_state "$B" destroyed
	expect_rc 0 rp audit --key "$B" --json
	assert_grep "$OUT" '"op": "key.destroy"'
	assert_grep "$OUT" 'census=none'
	refused b1.txt.age 5 "$B16" "destroyed"
	refused b2.bin.age 5 "$B16" "destroyed"
	expect_rc 7 rp key restore B.bak
	assert_grep "$ERR" "destroyed"
	assert_state "$B" destroyed
	refused b1.txt.age 5 "$B16" "destroyed"
	expect_rc 7 rp key revoke "$B" --yes
	expect_rc 7 rp key destroy "$B" --without-census --yes
	expect_rc 7 rp rekey --to "$B"
	if [ "$BE" = soft ]; then
		assert_absent "$S/keys/$B.key"
	fi
	opens a1.txt.age a1.txt
	opens c1.txt.age c1.txt
	assert_eq "$(count_state active)" 1 "active keys"
	expect_rc 0 rp template list --json
	assert_json "$OUT" '[0]["signer"]' "$C"
	assert_json "$OUT" '[0]["signature"]' ok

	# --- security world shares
	case_ "$BE: world shares"
	expect_rc 0 rp world show
	WID=$(sed -n 's/^world \([0-9a-f]*\).*/\1/p' "$OUT")
	expect_rc 2 rp world backup --shares 3 --threshold 4 -o ws
	expect_rc 0 rp world backup --shares 3 --threshold 2 -o ws
	for _i in 1 2 3; do
		assert_exists "ws-$_i.share"
		assert_mode600 "ws-$_i.share"
	done
	S2=$W/store2
	expect_rc 3 env REPROTECT_STORE="$S2" "$RP" init "$@" --from-shares ws-2.share
	assert_absent "$S2/world.key"
	expect_rc 3 env REPROTECT_STORE="$S2" "$RP" init "$@" --from-shares ws-2.share ws-2.share
	assert_absent "$S2/world.key"
	expect_rc 0 env REPROTECT_STORE="$S2" "$RP" init "$@" --from-shares ws-3.share ws-1.share
	expect_rc 0 env REPROTECT_STORE="$S2" "$RP" world show
	assert_grep "$OUT" "world $WID"
	assert_eq "$(states "$S2")" "" "keys in the rebuilt store"
	expect_rc 0 env REPROTECT_STORE="$S2" "$RP" key restore A.bak
	assert_grep "$OUT" "restored $A: archived"
	expect_rc 0 env REPROTECT_STORE="$S2" "$RP" unprotect a1.txt.age -o a1.s2
	assert_same a1.s2 a1.txt
	expect_rc 0 env REPROTECT_STORE="$S2" "$RP" unprotect a2.bin.age -o a2.s2
	assert_same a2.s2 a2.bin
	expect_rc 4 env REPROTECT_STORE="$S2" "$RP" unprotect c1.txt.age -o c1.s2
	assert_absent c1.s2
	expect_rc 0 env REPROTECT_STORE="$S2" "$RP" audit verify

	case_ "$BE: unrelated world"
	S3=$W/store3
	expect_rc 0 env REPROTECT_STORE="$S3" "$RP" init "$@"
	expect_rc 3 env REPROTECT_STORE="$S3" "$RP" key restore A.bak
	assert_grep "$ERR" "security world"
	assert_grep "$ERR" "$WID"
	assert_eq "$(states "$S3")" "" "keys in the unrelated store"
	expect_rc 4 env REPROTECT_STORE="$S3" "$RP" unprotect a1.txt.age -o a1.s3
	assert_absent a1.s3
	expect_rc 0 env REPROTECT_STORE="$S3" "$RP" world backup --shares 2 --threshold 2 -o other
	expect_rc 3 env REPROTECT_STORE="$W/store4" "$RP" init "$@" --from-shares ws-1.share other-2.share
	assert_grep "$ERR" "another security world"
	assert_absent "$W/store4/world.key"

	# --- keyring tampering
	case_ "$BE: tampered keyring"
	cp "$S/keyring" keyring.orig
	_len=$(file_size keyring.orig)
	for _off in 0 4 7 20 $((_len / 2)) $((_len - 40)) $((_len - 1)); do
		flip_byte keyring.orig "$S/keyring" "$_off"
		expect_rc 3 rp key list
		expect_rc 3 rp unprotect a1.txt.age -o a1.tk
		assert_absent a1.tk
	done
	cp keyring.orig "$S/keyring"
	expect_rc 0 rp key list
	# a revoked key's state byte flipped back to archived (3)
	expect_rc 0 rp key revoke "$A" --yes
	cp "$S/keyring" keyring.revoked
	_soff=$(python3 -c 'import sys
data = open(sys.argv[1], "rb").read()
print(data.index(bytes.fromhex(sys.argv[2])) + 33)' keyring.revoked "$A")
	assert_eq "$(byte_at keyring.revoked "$_soff")" 4 "state byte of revoked A"
	put_byte "$S/keyring" "$_soff" 3
	expect_rc 3 rp key list
	expect_rc 3 rp unprotect a1.txt.age -o a1.tk
	assert_absent a1.tk
	cp keyring.revoked "$S/keyring"
	assert_state "$A" revoked
	refused a1.txt.age 5 "$A16"
	expect_rc 0 rp key restore A.bak
	opens a1.txt.age a1.txt

	# --- audit log
	case_ "$BE: audit log"
	audit_ok
	expect_rc 0 rp audit --key "$A" --json
	for _op in key.create key.backup key.revoke key.restore key.usage; do
		assert_grep "$OUT" "\"op\": \"$_op\""
	done
	L=$S/audit.log
	cp "$L" audit.orig
	N=$(wc -l <audit.orig | tr -d ' ')
	TL=$(grep -n 'template.create' audit.orig | head -n 1 | cut -d: -f1)
	M=$((N / 2))

	case_ "$BE: audit: changed record"
	sed "${TL}s/rights=view,print/rights=view,print,edit/" audit.orig >"$L"
	if cmp -s "$L" audit.orig; then fail "sed changed nothing"; else pass; fi
	audit_bad "audit record $TL "
	cp audit.orig "$L"
	audit_ok

	case_ "$BE: audit: removed record"
	sed "${M}d" audit.orig >"$L"
	audit_bad "audit record $M "
	cp audit.orig "$L"

	case_ "$BE: audit: inserted copy"
	sed "${M}p" audit.orig >"$L"
	audit_bad "audit record $((M + 1)) "
	cp audit.orig "$L"

	case_ "$BE: audit: swapped records"
	sed -n "$((M + 1))p" audit.orig >swap.line
	sed -e "$((M + 1))d" -e "$((M - 1))r swap.line" audit.orig >"$L"
	assert_eq "$(wc -l <"$L" | tr -d ' ')" "$N" "lines after swap"
	audit_bad "audit record $M "
	cp audit.orig "$L"

	case_ "$BE: audit: last record cut off"
	head -n $((N - 1)) audit.orig >"$L"
	audit_bad "record $((N - 1))" "$N"
	cp audit.orig "$L"
	head -c $(($(file_size audit.orig) - 30)) audit.orig >"$L"
	audit_bad "audit record $N"
	cp audit.orig "$L"

	case_ "$BE: audit: restored"
	audit_ok

	# A crash between appending a record and updating audit.head leaves
	# the log one record past its head: verify accepts that (the record
	# is genuine), and the next append must carry on from it.
	# (a protect appends one record, its key's usage; a key or template
	# operation two: its .begin and its outcome, each with its head)
	case_ "$BE: audit: head one record behind"
	cp "$S/audit.head" head.before
	mkfile half 100
	expect_rc 0 rp protect half
	cp head.before "$S/audit.head"
	audit_ok
	expect_rc 0 rp template create next --rights view
	audit_ok
	N=$(wc -l <"$L" | tr -d ' ')
	expect_rc 0 rp audit --json
	json_ok "$OUT"
	assert_eq "$(json_get "$OUT" '[-1]["seq"]')" "$N" "last seq"
	no_store_tmp "$S"
	unset REPROTECT_STORE
	cd "$T"
}

# ------------------------------------------------------------- soft
lifecycle soft x25519

# ------------------------------------------------------------- pkcs11
P11_MOD=/usr/lib/softhsm/libsofthsm2.so
p11_skip() {
	echo "$IT_NAME: pkcs11: SKIPPED ($*)"
}
if ! command -v softhsm2-util >/dev/null 2>&1; then
	p11_skip "softhsm2-util is not installed"
elif [ ! -e "$P11_MOD" ]; then
	p11_skip "no module $P11_MOD"
else
	HSM=$(mktemp -d "$T/hsm.XXXXXX")
	mkdir -m 700 "$HSM/tokens"
	cat >"$HSM/softhsm2.conf" <<EOF
directories.tokendir = $HSM/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = false
EOF
	export SOFTHSM2_CONF="$HSM/softhsm2.conf"
	export REPROTECT_PKCS11_PIN=1234
	if ! softhsm2-util --init-token --free --label rp-it --pin 1234 \
		--so-pin 5678 </dev/null >"$HSM/init.log" 2>&1; then
		p11_skip "softhsm2-util --init-token failed: $(head -c 200 "$HSM/init.log")"
	else
		# the probe: does this build have a PKCS#11 backend?
		run_rp env REPROTECT_STORE="$HSM/probe" "$RP" init --backend pkcs11 \
			--pkcs11-token rp-it
		if [ "$LAST_RC" -ne 0 ] &&
			grep -q -e "no PKCS#11 backend" -e "$P11_MOD" "$ERR"; then
			p11_skip "$(head -n 1 "$ERR")"
		else
			echo "$IT_NAME: pkcs11: running on SoftHSM2 token rp-it"
			lifecycle pkcs11 rsa3072 --backend pkcs11 --pkcs11-token rp-it
		fi
	fi
	unset REPROTECT_PKCS11_PIN SOFTHSM2_CONF
fi

# ------------------------------------------------------------- concurrency
case_ "concurrency: two rekeys"
CW=$T/conc
mkdir "$CW"
cd "$CW"
export REPROTECT_STORE="$CW/store"
expect_rc 0 rp init
expect_rc 0 rp key create --alg x25519 --activate
K0=$(first_field)
expect_rc 0 rp template create t --rights view
"$RP" rekey --alg x25519 >r1.out 2>r1.err </dev/null &
P1=$!
"$RP" rekey --alg x25519 >r2.out 2>r2.err </dev/null &
P2=$!
RC1=0
wait "$P1" || RC1=$?
RC2=0
wait "$P2" || RC2=$?
assert_eq "$RC1" 0 "first rekey exit ($(cat r1.err))"
assert_eq "$RC2" 0 "second rekey exit ($(cat r2.err))"
K1=$(sed -n 's/^active: *\([0-9a-f]*\).*/\1/p' r1.out)
K2=$(sed -n 's/^active: *\([0-9a-f]*\).*/\1/p' r2.out)
O1=$(sed -n 's/^archived: *//p' r1.out)
O2=$(sed -n 's/^archived: *//p' r2.out)
if [ -n "$K1" ] && [ -n "$K2" ] && [ "$K1" != "$K2" ]; then pass; else
	fail "two rekeys made keys '$K1' and '$K2'"
fi
# one of them ran first (archived K0), the other archived its key
if { [ "$O1" = "$K0" ] && [ "$O2" = "$K1" ]; }; then
	LAST=$K2
	FIRST=$K1
elif { [ "$O2" = "$K0" ] && [ "$O1" = "$K2" ]; }; then
	LAST=$K1
	FIRST=$K2
else
	LAST=
	FIRST=
	fail "rekeys did not serialise: archived '$O1' and '$O2', keys $K0 $K1 $K2"
fi
assert_eq "$(states | wc -l | tr -d ' ')" 3 "keys after two rekeys"
assert_eq "$(count_state active)" 1 "active keys"
assert_eq "$(count_state archived)" 2 "archived keys"
if [ -n "$LAST" ]; then
	assert_state "$LAST" active
	assert_state "$FIRST" archived
	assert_state "$K0" archived
	expect_rc 0 rp template list --json
	assert_json "$OUT" '[0]["signer"]' "$LAST"
	assert_json "$OUT" '[0]["signature"]' ok
fi
audit_ok
expect_rc 0 rp audit --json
assert_eq "$(grep -c '"op": "rekey"' "$OUT")" 2 "rekey audit records"

case_ "concurrency: 4 protects and a rekey"
# Four workers protect while a fifth rekeys, a few commands each, twice:
# protect appends to the audit log without the store lock, so this is
# where a lock holder and an audit writer meet.
mkfile pf 5000
for _r in 1 2; do
	PIDS=
	for _j in 1 2 3 4; do
		(
			_i=0
			while [ "$_i" -lt 6 ]; do
				_i=$((_i + 1))
				"$RP" protect pf -o "p$_r-$_j-$_i.age" </dev/null ||
					echo "protect p$_r-$_j-$_i.age: exit $?"
			done
		) >"w$_j.out" 2>&1 &
		PIDS="$PIDS $!"
	done
	(
		_i=0
		while [ "$_i" -lt 6 ]; do
			_i=$((_i + 1))
			"$RP" rekey --alg x25519 </dev/null >/dev/null ||
				echo "rekey $_i: exit $?"
		done
	) >w5.out 2>&1 &
	PIDS="$PIDS $!"
	for _p in $PIDS; do
		wait "$_p" || true
	done
	for _j in 1 2 3 4 5; do
		if grep -q -e 'exit' -e 'warning' "w$_j.out"; then
			fail "round $_r, worker $_j: $(head -c 400 "w$_j.out")"
		else
			pass
		fi
	done
	assert_eq "$(count_state active)" 1 "active keys (round $_r)"
	assert_eq "$(count_state archived)" $((_r * 6 + 2)) "archived keys (round $_r)"
	for _j in 1 2 3 4; do
		for _i in 1 2 3 4 5 6; do
			opens "p$_r-$_j-$_i.age" pf
		done
	done
	audit_ok
	no_store_tmp "$REPROTECT_STORE"
done
unset REPROTECT_STORE
cd "$T"

# ------------------------------------------------------------- crashes
CR=$T/crash
mkdir "$CR"
cd "$CR"
export REPROTECT_STORE="$CR/store"
expect_rc 0 rp init
expect_rc 0 rp key create --alg x25519 --activate
run_rp env REPROTECT_TEST_CRASH=rekey:before-keyring "$RP" rekey
if [ "$LAST_RC" -ne 137 ]; then
	echo "$IT_NAME: crash tests: SKIP (no test hooks in this build: rekey exited $LAST_RC)"
else
	rm -rf "$CR/store"
	expect_rc 0 rp init
	expect_rc 0 rp key import "$T/fx-k1.pem" --activate
	K1=$(first_field)
	mkfile d1 4000
	expect_rc 0 rp protect d1
	expect_rc 0 rp key backup "$K1" -o k1.bak

	# crash POINT WANT_AFTER CMD...: run CMD killed at POINT (137), then
	# the keyring opens and holds either the states from before or
	# WANT_AFTER ("" for: nothing changes), never two active keys, and
	# the audit log verifies.
	crash() {
		_pt=$1
		_after=$2
		shift 2
		case_ "crash at $_pt"
		SNAP=$(states)
		expect_rc 137 env REPROTECT_TEST_CRASH="$_pt" "$RP" "$@"
		expect_rc 0 rp key list --json
		json_ok "$OUT"
		NOW=$(states)
		if [ "$_after" = "-" ]; then
			CRASH_STATE=unchecked
		elif [ "$NOW" = "$SNAP" ]; then
			CRASH_STATE=before
			pass
		elif [ -n "$_after" ] && [ "$NOW" = "$_after" ]; then
			CRASH_STATE=after
			pass
		else
			CRASH_STATE=other
			fail "states after the crash: $(echo "$NOW" | tr '\n' ';') (before: $(echo "$SNAP" | tr '\n' ';'))"
		fi
		_act=$(count_state active)
		if [ "$_act" -le 1 ]; then pass; else fail "$_act active keys"; fi
		audit_ok
	}

	# touch_store: the next life-cycle command (takes the lock), then no
	# temp file may be left in the store
	touch_store() {
		expect_rc 0 rp template create "t$1" --rights view
		no_store_tmp "$REPROTECT_STORE"
	}

	# active_docs: d1 (K1) and every doc under the active key open
	mkfile d0 100

	for _pt in rekey:after-keygen rekey:before-keyring \
		atomic-write:before-rename:keyring; do
		crash "$_pt" "" rekey --alg x25519
		assert_eq "$CRASH_STATE" before "state after $_pt"
		assert_state "$K1" active
		opens d1.age d1
		touch_store "$(echo "$_pt" | tr -c 'a-z\n' '-')"
		expect_rc 0 rp protect d0 --force
		opens d0.age d0
	done

	# rekey:after-keyring: the keyring was written, so the new key is in
	AFTER=$(printf '%s\n' "$(states)" | sed "s/^$K1 active\$/$K1 archived/")
	crash rekey:after-keyring - rekey --alg x25519
	NOW=$(states)
	NEWK=$(echo "$NOW" | sed -n 's/ active$//p')
	_want=$(printf '%s\n%s active\n' "$AFTER" "$NEWK" | sort)
	assert_eq "$NOW" "$_want" "states after rekey:after-keyring"
	assert_state "$K1" archived
	assert_eq "$(count_state active)" 1 "active keys"
	opens d1.age d1
	touch_store rk-after
	mkfile d2 3000
	expect_rc 0 rp protect d2
	assert_eq "$(doc_key d2.age)" "$NEWK" "d2 key"
	opens d2.age d2

	# revoke:after-keyring: K1 revoked in the keyring, material not erased
	AFTER=$(states | sed "s/^$K1 archived\$/$K1 revoked/")
	crash revoke:after-keyring "$AFTER" key revoke "$K1" --yes
	if [ "$CRASH_STATE" = after ]; then
		refused d1.age 5 "$(echo "$K1" | cut -c1-16)"
		# re-running the revoke finishes it: no key material left
		run_rp rp key revoke "$K1" --yes
		assert_absent "$REPROTECT_STORE/keys/$K1.key"
	else
		opens d1.age d1
		expect_rc 0 rp key revoke "$K1" --yes
	fi
	assert_state "$K1" revoked
	refused d1.age 5
	opens d2.age d2
	touch_store rv-after
	expect_rc 0 rp key restore k1.bak
	opens d1.age d1

	# restore:after-material: the key stays revoked; the restore again works
	expect_rc 0 rp key revoke "$K1" --yes
	crash restore:after-material "" key restore k1.bak
	assert_eq "$CRASH_STATE" before "state after restore:after-material"
	assert_state "$K1" revoked
	refused d1.age 5 "$(echo "$K1" | cut -c1-16)"
	expect_rc 0 rp key restore k1.bak
	assert_state "$K1" archived
	opens d1.age d1
	touch_store rs-after

	# destroy:after-keyring: a revoked key K2 (was active, has documents)
	expect_rc 0 rp rekey --alg x25519
	K3=$(rekey_active)
	K2=$NEWK
	expect_rc 0 rp key backup "$K2" -o k2.bak
	expect_rc 0 rp key revoke "$K2" --yes
	refused d2.age 5
	AFTER=$(states | sed "s/^$K2 revoked\$/$K2 destroyed/")
	crash destroy:after-keyring "$AFTER" key destroy "$K2" --without-census --yes
	if [ "$CRASH_STATE" = after ]; then
		refused d2.age 5 "$(echo "$K2" | cut -c1-16)" destroyed
		expect_rc 7 rp key restore k2.bak
		assert_state "$K2" destroyed
		# re-running the destroy finishes it: no key material left
		run_rp rp key destroy "$K2" --without-census --yes
		assert_absent "$REPROTECT_STORE/keys/$K2.key"
	else
		expect_rc 0 rp key destroy "$K2" --without-census --yes
	fi
	assert_state "$K2" destroyed
	refused d2.age 5 destroyed
	expect_rc 7 rp key restore k2.bak
	assert_state "$K3" active
	opens d1.age d1
	touch_store ds-after
	mkfile d3 100
	expect_rc 0 rp protect d3
	opens d3.age d3
	audit_ok

	# killed after appending an audit record, before its head is replaced
	case_ "crash at atomic-write:before-rename:audit.head"
	mkfile d4 100
	expect_rc 137 env REPROTECT_TEST_CRASH=atomic-write:before-rename:audit.head \
		"$RP" protect d4
	opens d4.age d4
	audit_ok
	touch_store ah-after
	audit_ok
	expect_rc 0 rp protect d4 -o d4b.age
	audit_ok
fi
unset REPROTECT_STORE
cd "$T"

# ------------------------------------------------------- sealed audit log
# An operation whose audit record cannot be written is not done (the
# record goes first): the log made unwritable by a folder in its place
# (root writes through any mode). Each is refused with exit 6 and the
# store, the keys and the documents are as they were; back in place, each
# is done and its ".begin" record precedes its record.
case_ "sealed audit: setup"
W=$T/sealed
mkdir "$W"
cd "$W"
export REPROTECT_STORE=$W/store
expect_rc 0 rp init
expect_rc 0 rp key create --alg x25519 --activate
K1=$(first_field)
mkfile d1 3000
expect_rc 0 rp protect d1
expect_rc 0 rp rekey --alg x25519
expect_rc 0 rp key list --json
cp "$OUT" keys.before
cp d1.age d1.before
mv store/audit.log audit.keep
mkdir store/audit.log
# sealed_refused WHAT ARGS...: exit 6, the one stderr line says why
sealed_refused() {
	case_ "sealed audit: $1 refused"
	shift
	expect_rc 6 rp "$@"
	assert_grep "$ERR" "audit log cannot record"
}
sealed_refused run run d1.age --in-place --quiet
sealed_refused rekey rekey --alg x25519
sealed_refused "key create" key create --alg x25519
sealed_refused "key backup" key backup "$K1" -o k1.rpkb
sealed_refused "key revoke" key revoke "$K1" --yes --force
sealed_refused "template create" template create t1 --rights view
sealed_refused "world backup" world backup --shares 3 --threshold 2 -o w
case_ "sealed audit: nothing changed"
assert_same d1.age d1.before
expect_rc 0 rp key list --json
assert_same "$OUT" keys.before
if [ -e k1.rpkb ] || [ -e w-1.share ]; then
	fail "a refused operation wrote its output"
else
	pass
fi
expect_rc 0 rp template list
if grep -q t1 "$OUT"; then fail "template created"; else pass; fi
case_ "sealed audit: back in place, done and recorded"
rmdir store/audit.log
mv audit.keep store/audit.log
expect_rc 0 rp run d1.age --in-place --quiet
opens d1.age d1
expect_rc 0 rp key backup "$K1" -o k1.rpkb
expect_rc 0 rp key revoke "$K1" --yes
audit_ok
expect_rc 0 rp audit --json
# each one's ".begin" record comes before its own (a run's key usage may
# come between them)
if py - "$OUT" <<'PY'; then
import json, sys
ops = [r["op"] for r in json.load(open(sys.argv[1]))]
last = lambda op: len(ops) - 1 - ops[::-1].index(op)
for op in ("run", "key.backup", "key.revoke"):
    assert op + ".begin" in ops and last(op + ".begin") < last(op), op
PY
	pass
else
	fail "an operation's record without its .begin before it"
fi
unset REPROTECT_STORE
cd "$T"

it_done
