#!/usr/bin/env python3
"""Make the known-answer vectors for tests/test_age_stream.c.

Two kinds, written to vectors.txt next to this script:

  age <file> <plain_len> <file_key_hex>
      <file> holds the payload (16-byte nonce, then the chunks) of a file
      that stock `age -e` made from pattern(plain_len). age never shows the
      file key, so we encrypt to a fresh X25519 identity and unwrap the
      stanza here. The test opens <file> and must get pattern(plain_len),
      and sealing pattern(plain_len) with that key and nonce must give
      <file> byte for byte.

  model <plain_len> <file_key_hex> <nonce_hex> <sealed_len> <sha256_hex>
      SHA-256 of the chunks that this script's own STREAM model seals from
      pattern(plain_len). The model is first checked against every age
      file above. The largest case has more than 256 chunks, so the
      counter's second byte is used.

Needs age, age-keygen and the Python `cryptography` package. Run it from
anywhere: python3 tests/vectors/age_stream/gen_vectors.py
"""
import hashlib
import hmac
import os
import subprocess
import sys
import tempfile
import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey, X25519PublicKey)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK = 65536
HERE = os.path.dirname(os.path.abspath(__file__))
AGE_SIZES = [0, 5, 65536, 65537]
MODEL_SIZES = [0, 1, 65535, 65536, 65537, 131072, 257 * CHUNK + 1]
MODEL_KEY = bytes(range(16))
MODEL_NONCE = bytes(range(16, 32))


def pattern(n):
    """Byte i is (i * 31 + 7) % 251; the C test makes the same bytes."""
    period = bytes((i * 31 + 7) % 251 for i in range(251))
    return (period * (n // 251 + 1))[:n]


def hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                info=info).derive(ikm)


def chunk_nonce(i, is_final):
    return i.to_bytes(11, "big") + (b"\x01" if is_final else b"\x00")


def stream_seal(file_key, nonce, plain):
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    chunks = [plain[i:i + CHUNK] for i in range(0, len(plain), CHUNK)]
    chunks = chunks or [b""]
    return b"".join(aead.encrypt(chunk_nonce(i, i == len(chunks) - 1), c,
                                 None) for i, c in enumerate(chunks))


def stream_open(file_key, nonce, sealed):
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    out, i, pos = [], 0, 0
    while True:
        c = sealed[pos:pos + CHUNK + 16]
        pos += len(c)
        is_final = pos == len(sealed)
        out.append(aead.decrypt(chunk_nonce(i, is_final), c, None))
        if is_final:
            return b"".join(out)
        i += 1


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32_decode(s):
    s = s.lower()
    hrp, data = s[:s.rindex("1")], [BECH32.index(c) for c in
                                   s[s.rindex("1") + 1:]]
    gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]
    chk = 1
    for v in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] \
            + data:
        top = chk >> 25
        chk = (chk & 0x1ffffff) << 5 ^ v
        for j in range(5):
            chk ^= gen[j] if (top >> j) & 1 else 0
    assert chk == 1, "bad bech32 checksum"
    acc, bits, out = 0, 0, bytearray()
    for v in data[:-6]:
        acc, bits = acc << 5 | v, bits + 5
        if bits >= 8:
            bits -= 8
            out.append(acc >> bits & 0xff)
    return bytes(out)


def b64(s):
    return base64.b64decode(s + "=" * (-len(s) % 4))


def unwrap_file_key(data, identity):
    """Parse an age header, return (file key, payload after the header)."""
    end = data.index(b"\n--- ") + 1
    header_end = data.index(b"\n", end) + 1
    lines = data[:end].decode().split("\n")[1:-1]
    mac = b64(data[end + 4:header_end - 1].decode())
    file_key = None
    pub = identity.public_key().public_bytes_raw()
    for i, line in enumerate(lines):
        args = line.split(" ")
        if args[:2] != ["->", "X25519"]:
            continue
        share = b64(args[2])
        body = b""
        for b in lines[i + 1:]:
            body += b64(b)
            if len(b) < 64:
                break
        shared = identity.exchange(X25519PublicKey.from_public_bytes(share))
        wrap = hkdf(shared, share + pub, b"age-encryption.org/v1/X25519")
        file_key = ChaCha20Poly1305(wrap).decrypt(bytes(12), body, None)
    assert file_key and len(file_key) == 16
    want = hmac.new(hkdf(file_key, b"", b"header"), data[:end + 3],
                    hashlib.sha256).digest()
    assert hmac.compare_digest(want, mac), "header MAC does not verify"
    return file_key, data[header_end:]


def main():
    lines = ["# made by gen_vectors.py; see its docstring"]
    with tempfile.TemporaryDirectory() as tmp:
        key_path = os.path.join(tmp, "key.txt")
        subprocess.run(["age-keygen", "-o", key_path], check=True,
                       capture_output=True)
        secret = [l for l in open(key_path).read().split("\n")
                  if l.startswith("AGE-SECRET-KEY-1")][0]
        identity = X25519PrivateKey.from_private_bytes(bech32_decode(secret))
        recipient = subprocess.run(["age-keygen", "-y", key_path],
                                   check=True, capture_output=True,
                                   text=True).stdout.strip()
        for n in AGE_SIZES:
            plain = os.path.join(tmp, "plain")
            enc = os.path.join(tmp, "enc.age")
            with open(plain, "wb") as f:
                f.write(pattern(n))
            subprocess.run(["age", "-e", "-r", recipient, "-o", enc, plain],
                           check=True)
            data = open(enc, "rb").read()
            file_key, payload = unwrap_file_key(data, identity)
            nonce, sealed = payload[:16], payload[16:]
            assert stream_open(file_key, nonce, sealed) == pattern(n)
            assert stream_seal(file_key, nonce, pattern(n)) == sealed
            name = "age_%d.payload" % n
            with open(os.path.join(HERE, name), "wb") as f:
                f.write(payload)
            lines.append("age %s %d %s" % (name, n, file_key.hex()))
    for n in MODEL_SIZES:
        sealed = stream_seal(MODEL_KEY, MODEL_NONCE, pattern(n))
        assert stream_open(MODEL_KEY, MODEL_NONCE, sealed) == pattern(n)
        lines.append("model %d %s %s %d %s" % (
            n, MODEL_KEY.hex(), MODEL_NONCE.hex(), len(sealed),
            hashlib.sha256(sealed).hexdigest()))
    with open(os.path.join(HERE, "vectors.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
