#!/bin/sh
# it_tamper.sh: every kind of damage to a protected document is caught.
# For an RSA-3072 document, an X25519 document and a compressed one, each
# tamper must give exit 3 (or 4 where a changed key id names a key the
# store does not have), exactly one line on stderr naming the file and the
# fault, and no output file or temp file. `inspect --json` must name the
# check that fails. (The compressed document skips the header cases that
# do not depend on the payload encoding.)
# Usage: sh tests/it_tamper.sh PATH/TO/reprotect
set -eu
. "$(dirname "$0")/it_lib.sh"
need age openssl python3 base64 awk

export REPROTECT_STORE="$T/store"
export REPROTECT_PASSPHRASE=tamper-pass
expect_rc 0 "$RP" init
W=$T/w
mkdir "$W"

# --- documents ----------------------------------------------------------------
# 200,000 random bytes: four STREAM chunks (64 KiB, 64 KiB, 64 KiB, 3,392 B)
mkfile "$T/plain" 200000
openssl genrsa -traditional -out "$T/rsa.pem" 3072 2>/dev/null
expect_rc 0 "$RP" key import "$T/rsa.pem" --activate
# rsa: A and B (B gives a license to splice); zst: compressed, same key
expect_rc 0 "$RP" protect "$T/plain" -o "$T/rsa.age"
expect_rc 0 "$RP" protect "$T/plain" -o "$T/rsa-b.age"
expect_rc 0 "$RP" protect "$T/plain" -o "$T/zst.age" --compress
expect_rc 0 "$RP" protect "$T/plain" -o "$T/zst-b.age" --compress
expect_rc 0 "$RP" key create --alg x25519 --activate
expect_rc 0 "$RP" protect "$T/plain" -o "$T/x.age"
expect_rc 0 "$RP" protect "$T/plain" -o "$T/x-b.age"
for d in rsa x zst; do
	case_ "$d: untouched"
	expect_rc 0 "$RP" unprotect "$T/$d.age" -o "$T/$d.plain"
	assert_same "$T/$d.plain" "$T/plain"
	rm -f "$T/$d.plain"
done
case_ "documents as expected"
check "rsa stanza" grep -aq '^-> ssh-rsa ' "$T/rsa.age"
check "x stanza" grep -aq '^-> X25519 ' "$T/x.age"
expect_rc 0 "$RP" inspect --json "$T/zst.age"
assert_json "$OUT" '["license"]["encoding"]' zstd
# 3072-bit: 384-byte body, 8 full lines and an empty one
_l=$(grep -a -n -m 1 '^-> ssh-rsa' "$T/rsa.age" | cut -d: -f1)
_e=$(sed -n "$((_l + 9))p" "$T/rsa.age")
if [ -z "$_e" ]; then pass; else fail "RSA-3072 body has no empty line"; fi

# --- header surgery -----------------------------------------------------------
# header_of F / payload_of F: the header text / the nonce and chunks
header_of() {
	head -c "$(header_len "$1")" "$1"
}
payload_of() {
	tail -c +"$(($(header_len "$1") + 1))" "$1"
}
# stanza_of F TYPE: the lines of the first TYPE stanza (arg line and body)
stanza_of() {
	header_of "$1" | awk -v t="-> $2 " '
		on && (/^-> / || /^---/) { exit }
		index($0 " ", t) == 1 { on = 1 }
		on { print }'
}
# mac_of F: the MAC line
mac_of() {
	header_of "$1" | grep -a '^--- '
}
# line_off F N: byte offset of line N (from 1)
line_off() {
	head -n "$(($2 - 1))" "$1" | wc -c | tr -d ' '
}
# line_of F PREFIX: number of the first line that starts with PREFIX
line_of() {
	grep -a -n -m 1 "^$2" "$1" | cut -d: -f1
}

# b64_sub SRC DST OFFSET: DST = SRC with the base64 character at OFFSET
# changed to another base64 character (A, or B for an A): the text still
# parses, the bytes it encodes differ.
b64_sub() {
	cp "$1" "$2"
	if [ "$(byte_at "$1" "$3")" -eq 65 ]; then
		put_byte "$2" "$3" 66
	else
		put_byte "$2" "$3" 65
	fi
}

# flip_body SRC DST TYPE BYTE [MASK]: DST = SRC with byte BYTE of the
# decoded body of its TYPE stanza xor MASK (default 1), re-encoded the age
# way (64-char lines, no padding, a short or empty last line).
flip_body() {
	_h=$(header_len "$1")
	head -c "$_h" "$1" >"$T/.hdr"
	_s=$(grep -a -n -m 1 "^-> $3 " "$T/.hdr" | cut -d: -f1)
	if [ -z "$_s" ]; then
		echo "$IT_NAME: no $3 stanza in $1" >&2
		exit 1
	fi
	_z=$(awk -v s="$_s" 'NR > s && (/^-> / || /^---/) { print NR; exit }' \
		"$T/.hdr")
	sed -n "$((_s + 1)),$((_z - 1))p" "$T/.hdr" | tr -d '\n' >"$T/.b64"
	case $(($(file_size "$T/.b64") % 4)) in
	2) printf '==' >>"$T/.b64" ;;
	3) printf '=' >>"$T/.b64" ;;
	esac
	base64 -d <"$T/.b64" >"$T/.body"
	flip_byte "$T/.body" "$T/.body2" "$4" "${5:-1}"
	{
		head -n "$_s" "$T/.hdr"
		base64 -w 64 "$T/.body2" | tr -d '='
		if [ $(($(file_size "$T/.body2") % 48)) -eq 0 ]; then
			echo
		fi
		sed -n "$_z,\$p" "$T/.hdr"
		tail -c +"$((_h + 1))" "$1"
	} >"$2"
}

# body_len F TYPE: decoded length of the TYPE stanza body
body_len() {
	flip_body "$1" "$T/.same" "$2" 0 0
	file_size "$T/.body"
}

case_ "harness: a no-op rewrite is byte-exact"
for d in rsa x zst; do
	flip_body "$T/$d.age" "$T/$d.same" rp-license 0 0
	assert_same "$T/$d.same" "$T/$d.age"
done
flip_body "$T/rsa.age" "$T/rsa.same" ssh-rsa 0 0
assert_same "$T/rsa.same" "$T/rsa.age"
flip_body "$T/x.age" "$T/x.same" X25519 0 0
assert_same "$T/x.same" "$T/x.age"
{
	sed -n 1p "$T/rsa.age"
	stanza_of "$T/rsa.age" ssh-rsa
	stanza_of "$T/rsa.age" rp-license
	stanza_of "$T/rsa.age" rp-pad
	mac_of "$T/rsa.age"
	payload_of "$T/rsa.age"
} >"$T/rsa.same"
assert_same "$T/rsa.same" "$T/rsa.age"

# --- assertions -----------------------------------------------------------------
# tampered DOC NAME RC WORD...: $W/DOC-NAME.age (already made) must fail
# `unprotect` (default output: the name without .age) with RC, one stderr
# line naming the file and holding one of the WORDs; no output, no temp.
tampered() {
	_f="$W/$1-$2.age"
	_rc=$3
	shift 3
	case_ "$(basename "$_f")"
	if cmp -s "$_f" "$T/$1.age"; then
		fail "the tamper changed nothing"
	fi
	expect_rc "$_rc" "$RP" unprotect "$_f"
	assert_err_line "$(basename "$_f")" "$@"
	if [ -n "${IT_DEBUG:-}" ]; then cat "$ERR" >&2; fi
	assert_absent "${_f%.age}"
	assert_no_tmp
}

# quiet_stdout DOC NAME RC: with -o -, the same failure and not one byte
# of plaintext (every header check comes before any output).
quiet_stdout() {
	_f="$W/$1-$2.age"
	expect_rc "$3" "$RP" unprotect "$_f" -o -
	if [ -s "$OUT" ]; then
		fail "-o - wrote $(file_size "$OUT") bytes before failing"
	else
		pass
	fi
}

# inspect_says DOC NAME RC CHECK STATUS: inspect --json exits RC and gives
# CHECK the STATUS word.
inspect_says() {
	_f="$W/$1-$2.age"
	expect_rc "$3" "$RP" inspect --json "$_f"
	json_ok "$OUT"
	assert_json "$OUT" "[\"checks\"][\"$4\"][\"status\"]" "$5"
}

# inspect_rejects DOC NAME: the header does not parse: inspect exits 3 with
# one stderr line naming the file and prints nothing.
inspect_rejects() {
	_f="$W/$1-$2.age"
	expect_rc 3 "$RP" inspect --json "$_f"
	assert_err_line "$(basename "$_f")" "$3"
	if [ -s "$OUT" ]; then fail "inspect printed a report"; else pass; fi
}

# --- the tampers ------------------------------------------------------------------
# full: run the header cases that do not depend on the payload encoding
# (the compressed document gets the rest)
full() {
	[ "$D" != zst ]
}
for D in rsa x zst; do
	A=$T/$D.age
	B=$T/$D-b.age
	# the recipient stanza's type: ssh-rsa (rsa, zst) or X25519 (x)
	RT=$(sed -n 2p "$A" | cut -d' ' -f2)
	HL=$(header_len "$A")
	SZ=$(file_size "$A")
	# chunk i starts at HL + 16 + 65552 i (compressed: a few bytes more)
	C0=$((HL + 16))
	NCH=$(((SZ - HL - 16 + 65551) / 65552))

	# version line
	flip_byte "$A" "$W/$D-version.age" 4
	tampered "$D" version 3 "version"
	inspect_rejects "$D" version "version"
	if full; then
		{
			printf 'age-encryption.org/v1\r\n'
			tail -n +2 "$A"
		} >"$W/$D-version-crlf.age"
		tampered "$D" version-crlf 3 "version"
	fi

	# recipient stanza: argument
	R=$(line_of "$A" "-> $RT ")
	ROFF=$(($(line_off "$A" "$R") + 3 + ${#RT} + 1))
	b64_sub "$A" "$W/$D-recip-arg.age" $((ROFF + 1))
	if [ "$D" = rsa ]; then
		# another tag: the stanza is not for the license's key
		tampered "$D" recip-arg 3 "recipient stanza"
		inspect_says "$D" recip-arg 3 key format
	else
		# another share: the license is bound to the old stanza
		tampered "$D" recip-arg 3 "bound" "recipient"
		inspect_says "$D" recip-arg 3 stanza_binding auth
	fi
	quiet_stdout "$D" recip-arg 3
	if full; then
		flip_byte "$A" "$W/$D-recip-type.age" $(($(line_off "$A" "$R") + 3)) 32
		tampered "$D" recip-type 3 "recipient" "stanza"
	fi
	# recipient stanza: body (first and last byte)
	flip_body "$A" "$W/$D-recip-body.age" "$RT" 0
	tampered "$D" recip-body 3 "bound" "recipient"
	inspect_says "$D" recip-body 3 stanza_binding auth
	if full; then
		n=$(body_len "$A" "$RT")
		flip_body "$A" "$W/$D-recip-body2.age" "$RT" $((n - 1)) 128
		tampered "$D" recip-body2 3 "bound" "recipient"
		inspect_says "$D" recip-body2 3 stanza_binding auth
	fi

	# license body. Layout (no owner, no template): 0 version tag,
	# 3 version, 7 document id, 26 key id, 67 issued-at, 78 encoding,
	# 82 plaintext size, 93 stanza digest, 128 nonce, 144 sig block,
	# 154 signing key id, 206 root signature .. end.
	if full; then
		flip_body "$A" "$W/$D-lic-tag.age" rp-license 0
		tampered "$D" lic-tag 3 "license"
		inspect_says "$D" lic-tag 3 license format
		flip_body "$A" "$W/$D-lic-version.age" rp-license 3
		tampered "$D" lic-version 3 "license"
		inspect_says "$D" lic-version 3 license format
		flip_body "$A" "$W/$D-lic-len.age" rp-license 5
		tampered "$D" lic-len 3 "license"
		flip_body "$A" "$W/$D-lic-docid.age" rp-license 10
		tampered "$D" lic-docid 3 "signature"
		inspect_says "$D" lic-docid 3 signature auth
	fi
	flip_body "$A" "$W/$D-lic-keyid.age" rp-license 30
	tampered "$D" lic-keyid 4 "not in this store"
	inspect_says "$D" lic-keyid 4 key nokey
	if full; then
		flip_body "$A" "$W/$D-lic-issued.age" rp-license 74
		tampered "$D" lic-issued 3 "signature"
		inspect_says "$D" lic-issued 3 signature auth
	fi
	flip_body "$A" "$W/$D-lic-encoding.age" rp-license 78
	tampered "$D" lic-encoding 3 "signature" "encoding" "license"
	flip_body "$A" "$W/$D-lic-size.age" rp-license 89
	tampered "$D" lic-size 3 "signature"
	inspect_says "$D" lic-size 3 signature auth
	flip_body "$A" "$W/$D-lic-digest.age" rp-license 100
	tampered "$D" lic-digest 3 "bound" "recipient"
	inspect_says "$D" lic-digest 3 stanza_binding auth
	flip_body "$A" "$W/$D-lic-nonce.age" rp-license 140
	tampered "$D" lic-nonce 3 "nonce"
	inspect_says "$D" lic-nonce 3 nonce_binding auth
	if full; then
		flip_body "$A" "$W/$D-lic-signer.age" rp-license 160
		tampered "$D" lic-signer 4 "signing key"
		inspect_says "$D" lic-signer 4 signature nokey
	fi
	flip_body "$A" "$W/$D-lic-sig.age" rp-license 210
	tampered "$D" lic-sig 3 "signature"
	inspect_says "$D" lic-sig 3 signature auth
	quiet_stdout "$D" lic-sig 3
	if full; then
		n=$(body_len "$A" rp-license)
		flip_body "$A" "$W/$D-lic-last.age" rp-license $((n - 1)) 128
		tampered "$D" lic-last 3 "signature"
		inspect_says "$D" lic-last 3 signature auth
		# the MAC covers the license too: it fails on its own as well
		assert_json "$OUT" '["checks"]["header_mac"]["status"]' auth
	fi

	# MAC line
	M=$(line_of "$A" "--- ")
	MOFF=$(line_off "$A" "$M")
	b64_sub "$A" "$W/$D-mac.age" $((MOFF + 4 + 20))
	tampered "$D" mac 3 "MAC"
	inspect_says "$D" mac 3 header_mac auth
	quiet_stdout "$D" mac 3
	if full; then
		flip_byte "$A" "$W/$D-mac-dash.age" "$MOFF"
		tampered "$D" mac-dash 3 "MAC" "header"
	fi

	# payload nonce
	flip_byte "$A" "$W/$D-nonce.age" $((HL + 7))
	tampered "$D" nonce 3 "nonce"
	inspect_says "$D" nonce 3 nonce_binding auth
	quiet_stdout "$D" nonce 3

	# payload chunks: first, middle, last
	flip_byte "$A" "$W/$D-chunk-first.age" $((C0 + 5))
	tampered "$D" chunk-first 3 "chunk" "payload"
	quiet_stdout "$D" chunk-first 3
	flip_byte "$A" "$W/$D-chunk-mid.age" $((C0 + 65552 + 30000))
	tampered "$D" chunk-mid 3 "chunk" "payload"
	flip_byte "$A" "$W/$D-chunk-last.age" $((SZ - 20))
	tampered "$D" chunk-last 3 "chunk" "payload"
	flip_byte "$A" "$W/$D-chunk-tag.age" $((SZ - 1))
	tampered "$D" chunk-tag 3 "chunk" "payload"
	# -o - releases only chunks that authenticated: a prefix of the
	# plaintext, never the damaged chunk (compressed: a prefix, not all)
	for c in mid last; do
		expect_rc 3 "$RP" unprotect "$W/$D-chunk-$c.age" -o -
		n=$(file_size "$OUT")
		head -c "$n" "$T/plain" >"$T/.prefix"
		if [ "$D" = zst ]; then
			max=199999
		elif [ "$c" = mid ]; then
			max=65536
		else
			max=196608
		fi
		if [ "$n" -le "$max" ] && cmp -s "$OUT" "$T/.prefix"; then
			pass
		else
			fail "-o - released $n bytes (max $max)"
		fi
	done

	# truncation
	if full; then
		head -c $((HL / 2)) "$A" >"$W/$D-cut-header.age"
		tampered "$D" cut-header 3 "truncated" "header"
		inspect_rejects "$D" cut-header "header"
		head -c $((HL - 1)) "$A" >"$W/$D-cut-mac.age"
		tampered "$D" cut-mac 3 "truncated" "header" "MAC" "nonce"
	fi
	head -c $((HL + 9)) "$A" >"$W/$D-cut-nonce.age"
	tampered "$D" cut-nonce 3 "nonce"
	head -c $((HL + 16)) "$A" >"$W/$D-cut-nochunk.age"
	tampered "$D" cut-nochunk 3 "truncated" "payload" "chunk"
	head -c $((C0 + 65552 + 100)) "$A" >"$W/$D-cut-mid.age"
	tampered "$D" cut-mid 3 "truncated" "payload" "chunk"
	head -c $((C0 + 65552 * 2)) "$A" >"$W/$D-cut-edge.age"
	tampered "$D" cut-edge 3 "truncated" "final" "chunk"
	head -c $((C0 + 65552 * (NCH - 1) + 10)) "$A" >"$W/$D-cut-short.age"
	tampered "$D" cut-short 3 "truncated" "payload" "chunk"
	head -c $((SZ - 1)) "$A" >"$W/$D-cut-last.age"
	tampered "$D" cut-last 3 "truncated" "payload" "chunk"
	# inspect reads the payload's end: a cut or an extension is caught
	# there (by the license's length, or compressed, by the last chunk's
	# tag); damage in a middle chunk is verify's to find
	if [ "$D" = zst ]; then _end=auth; else _end=format; fi
	inspect_says "$D" cut-last 3 payload_end "$_end"
	inspect_says "$D" chunk-tag 3 payload_end auth
	if [ "$D" != zst ]; then
		inspect_says "$D" chunk-mid 0 payload_end ok
	fi

	# appended bytes
	{
		cat "$A"
		printf 'x'
	} >"$W/$D-append1.age"
	tampered "$D" append1 3 "payload" "chunk" "trailing" "after" "extended"
	inspect_says "$D" append1 3 payload_end "$_end"
	{
		cat "$A"
		head -c 16 /dev/zero
	} >"$W/$D-append16.age"
	tampered "$D" append16 3 "payload" "chunk" "trailing" "after" "extended"
	{
		cat "$A"
		tail -c 65552 "$A"
	} >"$W/$D-append-chunk.age"
	tampered "$D" append-chunk 3 "payload" "chunk" "trailing" "after" "extended"

	# a second rp-license stanza (ours again, then B's)
	if full; then
		{
			sed -n 1p "$A"
			stanza_of "$A" "$RT"
			stanza_of "$A" rp-license
			stanza_of "$A" rp-license
			mac_of "$A"
			payload_of "$A"
		} >"$W/$D-lic-twice.age"
		tampered "$D" lic-twice 3 "rp-license"
		inspect_rejects "$D" lic-twice "rp-license"
	fi
	{
		sed -n 1p "$A"
		stanza_of "$A" "$RT"
		stanza_of "$A" rp-license
		stanza_of "$B" rp-license
		mac_of "$A"
		payload_of "$A"
	} >"$W/$D-lic-second.age"
	tampered "$D" lic-second 3 "rp-license"

	# B's license in A: validly signed, bound to another document
	{
		sed -n 1p "$A"
		stanza_of "$A" "$RT"
		stanza_of "$B" rp-license
		mac_of "$A"
		payload_of "$A"
	} >"$W/$D-splice.age"
	tampered "$D" splice 3 "bound"
	inspect_says "$D" splice 3 stanza_binding auth
	assert_json "$OUT" '["checks"]["nonce_binding"]["status"]' auth
	assert_json "$OUT" '["checks"]["signature"]["status"]' ok
	assert_json "$OUT" '["checks"]["header_mac"]["status"]' auth
	quiet_stdout "$D" splice 3
	# ... with B's MAC line too
	if full; then
		{
			sed -n 1p "$A"
			stanza_of "$A" "$RT"
			stanza_of "$B" rp-license
			mac_of "$B"
			payload_of "$A"
		} >"$W/$D-splice-mac.age"
		tampered "$D" splice-mac 3 "bound"
		inspect_says "$D" splice-mac 3 header_mac auth
	fi
	# B's whole header on A's payload: only the nonce tells
	{
		header_of "$B"
		payload_of "$A"
	} >"$W/$D-swap-header.age"
	tampered "$D" swap-header 3 "nonce"
	inspect_says "$D" swap-header 3 nonce_binding auth
	assert_json "$OUT" '["checks"]["stanza_binding"]["status"]' ok
	assert_json "$OUT" '["checks"]["signature"]["status"]' ok
	quiet_stdout "$D" swap-header 3

	# stanzas reordered: the MAC covers the order
	if full; then
		{
			sed -n 1p "$A"
			stanza_of "$A" rp-license
			stanza_of "$A" "$RT"
			mac_of "$A"
			payload_of "$A"
		} >"$W/$D-reorder.age"
		tampered "$D" reorder 3 "MAC"
		inspect_says "$D" reorder 3 header_mac auth
	fi

	# a third, unknown stanza
	if full; then
		{
			sed -n 1p "$A"
			stanza_of "$A" "$RT"
			stanza_of "$A" rp-license
			printf -- '-> junk-stanza abc\n\n'
			mac_of "$A"
			payload_of "$A"
		} >"$W/$D-extra.age"
		tampered "$D" extra 3 "exactly one" "stanza"
		inspect_says "$D" extra 3 license format
	fi

	# the pad (rp-pad, FORMAT.md 4a) anywhere but last, or twice
	if full; then
		{
			sed -n 1p "$A"
			stanza_of "$A" "$RT"
			stanza_of "$A" rp-pad
			stanza_of "$A" rp-license
			mac_of "$A"
			payload_of "$A"
		} >"$W/$D-pad-first.age"
		tampered "$D" pad-first 3 "rp-pad"
		{
			sed -n 1p "$A"
			stanza_of "$A" "$RT"
			stanza_of "$A" rp-license
			stanza_of "$A" rp-pad
			stanza_of "$A" rp-pad
			mac_of "$A"
			payload_of "$A"
		} >"$W/$D-pad-twice.age"
		tampered "$D" pad-twice 3 "rp-pad"
	fi

	# the license stripped: unlicensed, and even with --allow-unlicensed
	# the MAC (which covered the license) fails
	{
		sed -n 1p "$A"
		stanza_of "$A" "$RT"
		mac_of "$A"
		payload_of "$A"
	} >"$W/$D-nolicense.age"
	tampered "$D" nolicense 3 "license"
	case_ "$D-nolicense, --allow-unlicensed"
	expect_rc 3 "$RP" unprotect --allow-unlicensed "$W/$D-nolicense.age"
	assert_err_line "$D-nolicense.age" "MAC"
	assert_absent "$W/$D-nolicense"
	inspect_says "$D" nolicense 3 license unlicensed
	assert_json "$OUT" '["checks"]["header_mac"]["status"]' auth
done

# a plaintext of whole chunks: the final chunk is full, so bytes after it
# must be refused as such (not merely fail to open)
mkfile "$T/p128k" 131072
expect_rc 0 "$RP" protect "$T/p128k" -o "$T/whole.age"
SZ=$(file_size "$T/whole.age")
_h=$(header_len "$T/whole.age")
if [ "$SZ" -eq $((_h + 16 + 2 * 65552)) ]; then
	pass
else
	fail "131072 bytes: $SZ bytes, want two full chunks after the header"
fi
{
	cat "$T/whole.age"
	printf 'x'
} >"$W/whole-append1.age"
tampered whole append1 3 "payload" "chunk" "trailing" "after" "extended"
{
	cat "$T/whole.age"
	head -c 16 /dev/zero
} >"$W/whole-append16.age"
tampered whole append16 3 "payload" "chunk" "trailing" "after" "extended"
head -c $((_h + 16 + 65552)) "$T/whole.age" >"$W/whole-cut-edge.age"
tampered whole cut-edge 3 "truncated" "final" "chunk"
# an empty plaintext: one empty final chunk (a bare 16-byte tag)
: >"$T/p0"
expect_rc 0 "$RP" protect "$T/p0" -o "$T/empty.age"
_h=$(header_len "$T/empty.age")
if [ "$(file_size "$T/empty.age")" -eq $((_h + 32)) ]; then
	pass
else
	fail "empty plaintext: $(file_size "$T/empty.age") bytes"
fi
flip_byte "$T/empty.age" "$W/empty-tag.age" $((_h + 20))
tampered empty tag 3 "payload" "chunk"
{
	cat "$T/empty.age"
	head -c 16 /dev/zero
} >"$W/empty-append16.age"
tampered empty append16 3 "payload" "chunk" "trailing" "after" "extended"

case_ "rsa and x25519 swapped licenses"
{
	sed -n 1p "$T/rsa.age"
	stanza_of "$T/rsa.age" ssh-rsa
	stanza_of "$T/x.age" rp-license
	mac_of "$T/rsa.age"
	payload_of "$T/rsa.age"
} >"$W/mix-lic.age"
tampered mix lic 3 "recipient"
inspect_says mix lic 3 key format

case_ "no temp files anywhere"
assert_no_tmp "$T"
find "$W" -mindepth 1 ! -name '*.age' >"$T/.extra"
if [ -s "$T/.extra" ]; then
	fail "files left beside the tampered documents: $(tr '\n' ' ' <"$T/.extra")"
else
	pass
fi

it_done
