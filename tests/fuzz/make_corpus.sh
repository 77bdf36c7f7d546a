#!/bin/sh
# make_corpus.sh [REPROTECT]: regenerates the seed corpora of the fuzz
# harnesses, tests/fuzz/corpus/<name>/seed-*, from real files that the
# reprotect binary (default build/reprotect) and stock age write, plus
# hand-made edge cases. Every run makes new keys, so new bytes; the
# harnesses rely on no fixed seed content. Files not named seed-* (the
# crash-* and regress-* inputs that fuzzing found) are left alone.
#
# Needs: age, age-keygen, zstd, python3 with the `cryptography` package
# (the STREAM model of tests/vectors/age_stream/gen_vectors.py, which that
# script checks against stock age).
#
# The fixed keys below are the harnesses' (fuzz_age_recip.c's identity,
# fuzz_age_stream.c's file key, fuzz_keyring.c's MAC key, the test world of
# fuzz_key_backup.c): keep them in step.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
R=${1:-$TOP/build/reprotect}
case $R in
/*) ;;
*) R=$(pwd)/$R ;;
esac
for t in age age-keygen zstd python3; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "make_corpus.sh: '$t' is not installed" >&2
		exit 1
	fi
done
if [ ! -x "$R" ]; then
	echo "make_corpus.sh: no reprotect binary at '$R'" >&2
	exit 1
fi

FUZZ_IDENTITY=AGE-SECRET-KEY-14R44QNVX3A066EU0UQV0KEZMUL3WDE93C4JERUEVHHCH9MWK9KAQ435HEG
VEC=$TOP/tests/vectors/age_header
C=$HERE/corpus

T=$(mktemp -d "${TMPDIR:-/tmp}/rp-corpus.XXXXXX")
trap 'rm -rf "$T"' EXIT
umask 077
export REPROTECT_STORE="$T/store" REPROTECT_PASSPHRASE="fuzz corpus"

for d in age_header age_recip age_stream b64 keyring license shares zcodec \
	key_backup audit journal key_import census report; do
	(umask 022 && mkdir -p "$C/$d")
	rm -f "$C/$d"/seed-*
done

# ---- real files: stock age ----------------------------------------------
printf '%s\n' "$FUZZ_IDENTITY" >"$T/fuzz.key"
FUZZ_RECIP=$(age-keygen -y "$T/fuzz.key")
printf 'a fuzz seed document\n' >"$T/plain.txt"
age -r "$FUZZ_RECIP" -o "$T/age-x25519.age" "$T/plain.txt"
age -R "$VEC/rsa2048.pub" -o "$T/age-rsa2048.age" "$T/plain.txt"
age -R "$VEC/rsa4096.pub" -o "$T/age-rsa4096.age" "$T/plain.txt"
age -r "$FUZZ_RECIP" -R "$VEC/rsa3072.pub" -o "$T/age-multi.age" \
	"$T/plain.txt"
age -a -r "$FUZZ_RECIP" -o "$T/age-armor.age" "$T/plain.txt"
: >"$T/empty.txt"
age -r "$FUZZ_RECIP" -o "$T/age-empty.age" "$T/empty.txt"
age-keygen -o "$T/other.key" 2>/dev/null

# ---- real files: reprotect ----------------------------------------------
cd "$T"
"$R" init >/dev/null
"$R" key create --alg x25519 --activate --exportable >/dev/null
"$R" template create confidential --rights view,print >/dev/null
printf 'a protected document\n' >doc1.txt
printf 'another one, owned by someone else\n' >doc2.txt
head -c 3000 /dev/zero | tr '\0' 'z' >doc3.txt
"$R" protect doc1.txt --owner finance@example.org \
	--template confidential >/dev/null
# three in one batch: licenses with a Merkle audit path
"$R" protect doc2.txt doc3.txt plain.txt --owner 'Zoë Müller' \
	--suffix .b.age >/dev/null
"$R" protect doc3.txt --compress -o doc3.zst.age >/dev/null
XID=$("$R" key list --json | python3 -c \
	'import json,sys; print([k["id"] for k in json.load(sys.stdin)][0])')
"$R" key export "$XID" -o x25519.identity >/dev/null
cp "$REPROTECT_STORE/keyring" keyring-1
"$R" rekey --alg rsa2048 >/dev/null
printf 'under the rsa key\n' >doc4.txt
"$R" protect doc4.txt --compress --template confidential >/dev/null
"$R" key backup "$XID" -o x.rpkb >/dev/null
"$R" key revoke "$XID" --yes >/dev/null
cp "$REPROTECT_STORE/keyring" keyring-2
"$R" world backup --shares 3 --threshold 2 -o w >/dev/null
mkdir w5
(cd w5 && REPROTECT_STORE=$T/store5 "$R" init >/dev/null &&
	REPROTECT_STORE=$T/store5 "$R" world backup --shares 5 --threshold 5 \
		-o w >/dev/null)
# the compressed payload, as reprotect wrote it under the age layer
age -d -i x25519.identity doc3.zst.age >doc3.payload.zst
# frames from the zstd CLI: sized, unsized (from a pipe), a 1 MiB bomb
zstd -q -1 -c plain.txt >zstd-1.zst
zstd -q -19 --no-check -c plain.txt >zstd-19-nocheck.zst
cat plain.txt doc1.txt | zstd -q -c >zstd-stream.zst
head -c 1048576 /dev/zero | zstd -q -c >zstd-zeros.zst
cat zstd-1.zst zstd-1.zst >zstd-two-frames.zst
printf 'P*M\030\004\000\000\000skip' >zstd-skippable.zst
# a key backup of each algorithm (the x25519 one is x.rpkb, above)
RID=$("$R" key list --json | python3 -c \
	'import json,sys; print([k["id"] for k in json.load(sys.stdin)
	 if k["state"] == "active"][0])')
"$R" key backup "$RID" -o rsa.rpkb >/dev/null
# run journals: every kind of line, and names that need escaping
mkdir tree
cp doc1.txt.age doc4.txt.age doc2.txt.b.age age-x25519.age tree/
cp doc4.txt.age "tree/tab	back\\slash.age"
cp plain.txt "tree/new
line"
cp plain.txt "tree/$(printf 'ctl\001\177')"
cp plain.txt "tree/Zoë Müller.txt"
head -c 300 doc4.txt.age >tree/torn.age
ln -s doc4.txt.age tree/link.age
"$R" rekey --alg x25519 >/dev/null
"$R" run tree --dry-run --journal journal-dry-run >/dev/null || true
"$R" run tree --in-place --journal journal-in-place >/dev/null || true
# census statements: whole, one shard and a merge of three (the tree has
# names that need escaping, a torn document and a link)
"$R" rekey >/dev/null
"$R" census tree --quiet --report census-all >/dev/null || true
for i in 0 1 2; do
	"$R" census tree --quiet --shard $i/3 --report census-shard$i \
		>/dev/null || true
done
"$R" census merge census-shard0 census-shard1 census-shard2 \
	--report census-merged >/dev/null
# run reports of three shards (report merge)
"$R" rekey >/dev/null
for i in 0 1 2; do
	"$R" run tree --in-place --quiet --shard $i/3 --report report-shard$i \
		>/dev/null || true
done
cp "$REPROTECT_STORE/audit.log" "$REPROTECT_STORE/audit.head" .

# ---- corpora ------------------------------------------------------------
umask 022
FUZZ_C=$C FUZZ_T=$T FUZZ_TOP=$TOP python3 - <<'PY'
import base64, hashlib, hmac, os, re, struct, sys

C, T, TOP = os.environ["FUZZ_C"], os.environ["FUZZ_T"], os.environ["FUZZ_TOP"]
sys.path.insert(0, os.path.join(TOP, "tests/vectors/age_stream"))
from gen_vectors import stream_seal  # the model checked against stock age


def put(corpus, name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(C, corpus, "seed-" + name), "wb") as f:
        f.write(data)


def read(name):
    with open(os.path.join(T, name), "rb") as f:
        return f.read()


def b64(data):
    return base64.b64encode(data).decode().rstrip("=")


def stanza_body(doc, kind):
    """The decoded body of the first stanza of type `kind` in an age file."""
    lines = doc[:doc.index(b"\n--- ") + 1].decode().split("\n")
    for i, line in enumerate(lines):
        if line.split(" ")[:2] == ["->", kind]:
            body = ""
            for b in lines[i + 1:]:
                body += b
                if len(b) < 64:
                    return base64.b64decode(body + "=" * (-len(body) % 4))
    raise SystemExit("no %s stanza" % kind)


def mac_line(text):
    return text + "--- " + b64(bytes(range(32))) + "\n"


V = "age-encryption.org/v1\n"
SHARE = b64(bytes(range(32)))

# age_header and age_recip: real files, then hand-made edge cases
real = {
    "age-x25519.age": "stock-x25519", "age-rsa2048.age": "stock-rsa2048",
    "age-rsa4096.age": "stock-rsa4096", "age-multi.age": "stock-multi",
    "age-armor.age": "stock-armored", "age-empty.age": "stock-empty",
    "doc1.txt.age": "rp-x25519", "doc2.txt.b.age": "rp-batch",
    "doc3.zst.age": "rp-compressed", "doc4.txt.age": "rp-rsa2048",
}
for f, name in real.items():
    put("age_header", name + ".age", read(f))
    put("age_recip", name + ".age", read(f))
edge = {
    "empty-body": V + "-> X25519 " + SHARE + "\n\n",
    "full-line-body": V + "-> a\n" + b64(bytes(48)) + "\n\n",
    "max-args": V + "-> " + " ".join("a%d" % i for i in range(8)) + "\nAA\n",
    "too-many-args": V + "-> " + " ".join("a%d" % i for i in range(9))
    + "\nAA\n",
    "arg-255": V + "-> " + "x" * 255 + "\n\n",
    "arg-256": V + "-> " + "x" * 256 + "\n\n",
    "max-stanzas": V + "-> s\n\n" * 16,
    "too-many-stanzas": V + "-> s\n\n" * 17,
    "scrypt": V + "-> scrypt " + b64(bytes(16)) + " 18\n" + b64(bytes(32))
    + "\n",
    "scrypt-beside": V + "-> scrypt " + b64(bytes(16)) + " 18\n"
    + b64(bytes(32)) + "\n-> X25519 " + SHARE + "\n" + b64(bytes(32))
    + "\n",
    "noncanonical-body": V + "-> a\nAB\n",
    "crlf": (V + "-> a\n\n").replace("\n", "\r\n"),
    "no-space": V + "->a\n\n",
    "double-space": V + "-> a  b\n\n",
    "no-short-line": V + "-> a\n" + b64(bytes(48)) + "\n",
    "ssh-rsa-256": V + "-> ssh-rsa AAAAAA\n" + "\n".join(
        b64(bytes(256))[i:i + 64] for i in range(0, 342, 64)) + "\n",
    "x25519-low-order": V + "-> X25519 " + b64(bytes(32)) + "\n"
    + b64(bytes(32)) + "\n",
}
for name, text in edge.items():
    put("age_header", name + ".age", mac_line(text) + "0123456789abcdef")
    put("age_recip", name + ".age", mac_line(text))
put("age_header", "truncated.age", V + "-> a\n\n--- ")
put("age_header", "mac-two-args.age", V + "-> a\n\n--- a b\n")
put("age_header", "max-body.age", mac_line(
    V + "-> a\n" + "\n".join(b64(bytes(65535))[i:i + 64]
                             for i in range(0, 87380, 64)) + "\n"))

# age_recip: key strings
ident = read("fuzz.key").decode().strip()
put("age_recip", "identity-file", read("other.key"))
put("age_recip", "identity", ident)
put("age_recip", "identity-lower", ident.lower())
put("age_recip", "export", read("x25519.identity"))
recips = [l.split(": ")[1] for l in read("other.key").decode().split("\n")
          if l.startswith("# public key: ")]
put("age_recip", "recipient", recips[0])
put("age_recip", "recipient-upper", recips[0].upper())
put("age_recip", "recipient-mixed", recips[0][:10] + recips[0][10:].upper())

# license: bodies of real rp-license stanzas, then hand-made TLVs
lics = {
    "x25519-owner-template": stanza_body(read("doc1.txt.age"), "rp-license"),
    "batch": stanza_body(read("doc2.txt.b.age"), "rp-license"),
    "batch-leaf1": stanza_body(read("doc3.txt.b.age"), "rp-license"),
    "compressed": stanza_body(read("doc3.zst.age"), "rp-license"),
    "rsa2048": stanza_body(read("doc4.txt.age"), "rp-license"),
}
for name, body in lics.items():
    put("license", name, body)


def tlv(tag, val):
    return bytes([tag]) + struct.pack(">H", len(val)) + val


def license(template=b"", owner=b"", batch=1, leaf=0, path=0, sig=64,
            alg=2, extra=b""):
    tbs = (tlv(1, b"\x01") + tlv(2, bytes(16)) + tlv(3, bytes(32))
           + tlv(4, template) + tlv(5, owner) + tlv(6, bytes(8))
           + tlv(7, b"\x00") + tlv(8, bytes(8)) + tlv(9, bytes(32))
           + tlv(10, bytes(16)))
    sb = (tlv(0x21, bytes([alg])) + tlv(0x22, bytes(32))
          + tlv(0x23, struct.pack(">I", batch))
          + tlv(0x24, struct.pack(">I", leaf)) + tlv(0x25, bytes(32 * path))
          + tlv(0x26, bytes(sig)))
    return tbs + tlv(0x20, sb) + extra


put("license", "hand-minimal", license())
put("license", "hand-max-batch", license(batch=1 << 20, leaf=(1 << 20) - 1,
                                         path=20, sig=512, alg=1))
put("license", "hand-max-text", license(template=b"t" * 64,
                                        owner="é".encode() * 127 + b"x"))
put("license", "hand-utf8-4byte", license(owner="𝄞 ok".encode()))
put("license", "hand-trailing-byte", license(extra=b"\x00"))
put("license", "hand-c1-control", license(owner=b"\xc2\x85"))
put("license", "hand-overlong", license(owner=b"\xc0\xaf"))

# age_stream: control byte, nonce, payload under the harness's fixed key
KEY = bytes(range(16))
NONCE = bytes(range(16, 32))
for n in (0, 5, 1000, 65537):
    plain = bytes((i * 31 + 7) % 251 for i in range(n))
    put("age_stream", "open-%d" % n,
        bytes([n % 64]) + NONCE + stream_seal(KEY, NONCE, plain))
sealed = stream_seal(KEY, NONCE, b"hello")
put("age_stream", "open-flipped", b"\x00" + NONCE + sealed[:-1]
    + bytes([sealed[-1] ^ 1]))
put("age_stream", "open-short", b"\x00" + NONCE + bytes(15))
two = stream_seal(KEY, NONCE, bytes(65536 + 10))
put("age_stream", "open-final-dropped", b"\x00" + NONCE + two[:65552])
full = stream_seal(KEY, NONCE, bytes(65536))
put("age_stream", "open-extended", b"\x00" + NONCE + full + b"x")
# seal, damage, open: ctl 0x80 | damage << 4 | 32 KiB units; 2-byte param
for ctl, param, name in ((0x80, 0, "roundtrip"), (0x83, 1, "roundtrip-4x"),
                         (0x92, 65552, "truncate"), (0xa1, 3, "flip"),
                         (0xb2, 100, "append")):
    put("age_stream", "seal-" + name, bytes([ctl]) + NONCE
        + struct.pack(">H", param % 65536) + b"plaintext seed")

# zcodec: control byte, max_out (3 bytes), then a zstd frame
frame = read("doc3.payload.zst")
put("zcodec", "rp-compressed", b"\x00" + struct.pack(">I", 3000)[1:] + frame)
put("zcodec", "rp-compressed-max-short",
    b"\x05" + struct.pack(">I", 2999)[1:] + frame)
for name in ("zstd-1", "zstd-19-nocheck", "zstd-stream", "zstd-zeros",
             "zstd-two-frames", "zstd-skippable"):
    put("zcodec", name, b"\x03\xff\xff\xff" + read(name + ".zst"))
put("zcodec", "roundtrip-text", b"\x81\x00\x00\x00" + read("plain.txt"))
put("zcodec", "roundtrip-zeros", b"\x86\x00\x00\x00" + bytes(2000))
put("zcodec", "garbage", b"\x00\x00\x10\x00" + b"\x28\xb5\x2f\xfd\xff\xff")
# a frame that declares a 128 MiB window (2^27, zstd's default limit) for
# 1000 bytes of output: one raw block
put("zcodec", "window-128m", b"\x00\x00\x03\xe8" + b"\x28\xb5\x2f\xfd\x00\x88"
    + b"\x41\x1f\x00" + b"A" * 1000)

# keyring: real keyrings without their MAC (the harness adds one), one
# with a MAC under the harness's key, and hand-made variants
MAC_KEY = b"keyring fuzz mac key 0123456789!"
k1, k2 = read("keyring-1")[:-32], read("keyring-2")[:-32]
put("keyring", "x25519-active-template", k1)
put("keyring", "rsa-active-x25519-revoked", k2)
put("keyring", "maced", k2 + hmac.new(MAC_KEY, k2, hashlib.sha256).digest())
put("keyring", "pkcs11-conf", k1[:13] + b"\x02" + k1[14:])
put("keyring", "empty", b"RPKR\x01" + bytes(8) + b"\x01\x00\x00\x00\x00"
    + bytes(8))
put("keyring", "two-active", k2.replace(b"\x04\x04\x01", b"\x04\x02\x01", 1))

# shares: lines of real share files
sh = [read("w-%d.share" % i) for i in (1, 2, 3)]
sh5 = [read("w5/w-%d.share" % i) for i in range(1, 6)]
put("shares", "2-of-3", sh[0] + sh[2])
put("shares", "3-of-3", sh[2] + sh[1] + sh[0])
put("shares", "below-threshold", sh[1])
put("shares", "5-of-5", b"".join(sh5))
put("shares", "4-of-5", b"".join(sh5[:4]))
put("shares", "other-world", sh[0] + sh5[0])
put("shares", "duplicate", sh[0] + sh[0])
put("shares", "crlf", sh[0].replace(b"\n", b"\r\n") + sh[1])

# b64: what the formats carry in base64 and hex
line = sh[0].decode().split(" ")[1].strip()
put("b64", "share", line)
put("b64", "x25519-share", SHARE)
put("b64", "mac", b64(bytes(range(32))))
put("b64", "body-line", b64(bytes(range(48))))
put("b64", "rem2", "AB")
put("b64", "rem2-noncanonical", "AC")
put("b64", "rem3", "ABC")
put("b64", "rem1", "ABCDE")
put("b64", "padded", "AB==")
put("b64", "key-id-hex", hashlib.sha256(b"k").hexdigest())
put("b64", "key-id-hex-upper", hashlib.sha256(b"k").hexdigest().upper())

# key_backup: real blobs (of another world), their records as the harness
# frames them, a blob of the harness's test world, and damaged ones
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

WORLD_KEY = b"key backup fuzz world key 01234\0"
WORLD_ID = b"fuzz world id 01"
bmac = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
            info=b"reprotect/v1 key backup mac").derive(WORLD_KEY)


def test_world(record):
    blob = b"RPKB\x01" + WORLD_ID + record
    return blob + hmac.new(bmac, blob, hashlib.sha256).digest()


for alg, f in (("x25519", "x.rpkb"), ("rsa2048", "rsa.rpkb")):
    blob = read(f)
    rec = blob[21:-32]
    put("key_backup", "blob-" + alg, blob)
    put("key_backup", "record-" + alg, rec)
    put("key_backup", "test-world-" + alg, test_world(rec))
rec = read("x.rpkb")[21:-32]
wl = rec.index(b"RPSK") - 4  # the u32 length of the wrapped key file
put("key_backup", "record-truncated", rec[:-1])
put("key_backup", "record-trailing-byte", rec + b"\0")
put("key_backup", "record-wrapped-len-max", rec[:wl] + b"\xff" * 4
    + rec[wl + 4:])
put("key_backup", "record-id-mismatch", bytes([rec[0] ^ 1]) + rec[1:])
put("key_backup", "record-bad-state", rec[:33] + b"\x09" + rec[34:])
put("key_backup", "record-pub-len-0", rec[:84] + b"\0\0" + rec[86:])
put("key_backup", "test-world-bad-mac", test_world(rec)[:-1] + b"\0")
put("key_backup", "test-world-version-2",
    b"RPKB\x02" + test_world(rec)[5:])
put("key_backup", "short", b"RPKB\x01" + WORLD_ID + bytes(31))

# key_import: `key import` files: age identity files, PEM RSA keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

put("key_import", "age-keygen", read("other.key"))
put("key_import", "export-x25519", read("x25519.identity"))
put("key_import", "identity-crlf", read("other.key").replace(b"\n", b"\r\n"))
put("key_import", "identity-lower", ident.lower() + "\n")
put("key_import", "identity-prefix-only", "# x\nAGE-SECRET-KEY-\nAGE-SECRET-KEY-1\n")
with open(os.path.join(TOP, "tests/vectors/age_header/rsa2048.pem"), "rb") as f:
    pem = f.read()
put("key_import", "rsa2048-vector", pem)
k = serialization.load_pem_private_key(pem, None)
put("key_import", "rsa2048-pkcs1", k.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption()))
put("key_import", "rsa2048-encrypted", k.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
    serialization.BestAvailableEncryption(b"pw")))
put("key_import", "rsa1024", rsa.generate_private_key(65537, 1024)
    .private_bytes(serialization.Encoding.PEM,
                   serialization.PrivateFormat.PKCS8,
                   serialization.NoEncryption()))
put("key_import", "pem-truncated", pem[:len(pem) // 2])

# audit: the real log and head (under another key), the log's record
# texts (the harness chains a MAC onto each), and hand-made records
log = read("audit.log")
put("audit", "log", log)
put("audit", "head", read("audit.head"))
texts = [l.rsplit(b"\t", 1)[0] for l in log.split(b"\n") if l]
put("audit", "records", b"".join(t + b"\n" for t in texts))
put("audit", "records-last", texts[-1] + b"\n")
put("audit", "tail", log[-200:])
T0 = "2024-01-02T03:04:05Z\tuser\thost\t"


def rec_line(seq, rest):
    return "%s\t%s%s\n" % (seq, T0, rest)


put("audit", "escapes", rec_line(1, "op\\t\\n\\r\\\\\\q\t-\ta\\tb\\"))
put("audit", "long-detail", rec_line(1, "op\t-\t" + "d" * 3900))
put("audit", "over-long", rec_line(1, "op\t-\t" + "d" * 4100))
put("audit", "fields-6", "1\t" + T0 + "op\n")
put("audit", "fields-8", rec_line(1, "op\t-\tdetail\textra"))
put("audit", "seq-gap", rec_line(1, "a\t-\t-") + rec_line(3, "b\t-\t-"))
put("audit", "seq-plus", rec_line("+1", "a\t-\t-"))
put("audit", "seq-zero-pad", rec_line("01", "a\t-\t-"))
put("audit", "crlf", rec_line(1, "a\t-\t-\r"))
put("audit", "empty-line", "\n")
put("audit", "nul", rec_line(1, "a\0b\t-\t-"))

# journal: real journals of a dry run and an in-place run, and hand-made
# lines
for f in ("journal-dry-run", "journal-in-place"):
    j = read(f)
    put("journal", f[8:], j)
    for i, l in enumerate(j.split(b"\n")[:3]):
        put("journal", "%s-line%d" % (f[8:], i), l)
K = "0123456789abcdef"
edge = {
    "escapes": "skipped-not-age\t-\t2\td/\\x09\\x0a\\x5c\\x7f\\x01\tr",
    "utf8": "failed-io\t" + K + "\t5\tZoë\tcannot read 'Zoë': é",
    "size-max": "failed-io\t-\t18446744073709551615\tp\tr",
    "size-over": "failed-io\t-\t18446744073709551616\tp\tr",
    "size-zero-pad": "failed-io\t-\t007\tp\tr",
    "upper-hex-escape": "failed-io\t-\t1\tp\\x0A\tr",
    "needless-escape": "failed-io\t-\t1\tp\\x41\tr",
    "nul-escape": "failed-io\t-\t1\tp\\x00\tr",
    "short-escape": "failed-io\t-\t1\tp\tr\\x5",
    "raw-control": "failed-io\t-\t1\tp\x01\tr",
    "fields-6": "failed-io\t-\t1\tp\tr\tx",
    "fields-4": "failed-io\t-\t1\tp",
    "key-short": "moved\t" + K[:15] + "\t1\tp\t-",
    "key-upper": "moved\t" + K.upper() + "\t1\tp\t-",
    "empty-reason": "failed-io\t-\t1\tp\t",
    "empty-path": "failed-io\t-\t1\t\t-",
    "unknown-outcome": "unknown\t-\t1\tp\t-",
}
for name, line in edge.items():
    put("journal", name, line)

# census: real statements, and each cut at a line, a line doubled, the
# signature line dropped
for f in ("census-all", "census-shard1", "census-merged"):
    c = read(f)
    put("census", f[7:], c)
    lines = c.split(b"\n")
    put("census", f[7:] + "-no-sig", b"\n".join(lines[:-2]) + b"\n")
    put("census", f[7:] + "-cut", b"\n".join(lines[: len(lines) // 2]))
    put("census", f[7:] + "-dup", b"\n".join(lines[:3] + lines[2:]))
put("census", "magic-only", b"reprotect-census/v1\n")

# report: shard reports joined by NUL (the harness splits there): all
# three, one, one missing, one twice, and one cut short or with its run
# identity changed
r = [read("report-shard%d" % i) for i in range(3)]
put("report", "shards", b"\0".join(r))
put("report", "one", r[1])
put("report", "missing", r[0] + b"\0" + r[2])
put("report", "twice", r[0] + b"\0" + r[0] + b"\0" + r[1] + b"\0" + r[2])
put("report", "cut", r[0] + b"\0" + r[1][: len(r[1]) // 2])
put("report", "other-target", r[0] + b"\0" +
    r[1].replace(b'"target_key": "', b'"target_key": "0'))
put("report", "no-run", r[0].replace(b'"run":', b'"nur":'))
big = [re.sub(rb'"documents_seen": [0-9]+',
              b'"documents_seen": 9223372036854775807', x) for x in r]
put("report", "sum-overflows", b"\0".join(big))
PY
echo "make_corpus.sh: $(find "$C" -type f -name 'seed-*' | wc -l) seeds," \
	"$(find "$C" -type f -exec cat {} + | wc -c) bytes in $C"
