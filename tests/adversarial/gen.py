#!/usr/bin/env python3
"""Hostile documents for tests/it_adversarial.sh, built from real ones.

    gen.py docs OUTDIR KEYS.json   writes OUTDIR/<case>.age for every case
                                   of CASES and OUTDIR/cases.tsv (one line
                                   per case: the expected outcomes)
    gen.py table                   prints CASES as a Markdown table

KEYS.json names the real inputs the test made with the reprotect binary:
    {"a": doc under key A (RSA, archived), "a2": another one under A,
     "b": doc under B (RSA, active), "x": doc under X (X25519, archived),
     "r": doc under R (revoked), "u": doc from another store,
     "apem"/"bpem"/"rpem"/"upem": the RSA private keys A, B, R (revoked in
     the store) and U (not in the store), all PEM}
A and B documents must be plain (not compressed), 100,000 bytes of
plaintext (two STREAM chunks).

The header and license are rebuilt from their parts; where a case needs a
license that is validly signed (so that the one fault it carries is the
only one), it is re-signed with an RSA key through `openssl` (RSA-PSS,
SHA-256, salt 32) and the header MAC is recomputed from the file key (the
ssh-rsa stanza unwrapped with `openssl pkeyutl`). Standard library only.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

# --------------------------------------------------------------- age header


def b64enc(b):
    return base64.b64encode(b).rstrip(b"=")


def b64dec(s):
    return base64.b64decode(s + b"=" * (-len(s) % 4))


def body_lines(body):
    """the age way: 64-char lines, then a short (maybe empty) one"""
    e = b64enc(body)
    full = len(e) // 64 * 64
    return b"".join(e[i:i + 64] + b"\n" for i in range(0, full, 64)) + \
        e[full:] + b"\n"


def stanza(args, body):
    return b"-> " + b" ".join(args) + b"\n" + body_lines(body)


def parse(doc):
    """(stanzas [(args, body, raw)], mac line, payload) of a real doc"""
    lines = doc.split(b"\n")
    assert lines[0] == b"age-encryption.org/v1"
    pos = len(lines[0]) + 1
    stanzas = []
    i = 1
    while not lines[i].startswith(b"---"):
        start = pos
        args = lines[i][3:].split(b" ")
        pos += len(lines[i]) + 1
        i += 1
        b = b""
        while True:
            b += lines[i]
            pos += len(lines[i]) + 1
            i += 1
            if len(lines[i - 1]) < 64:
                break
        stanzas.append((args, b64dec(b), doc[start:pos]))
    mac = lines[i] + b"\n"
    pos += len(mac)
    return stanzas, mac, doc[pos:]


def find(stanzas, typ):
    return [s for s in stanzas if s[0][0] == typ][0]


def hkdf(ikm, salt, info, n=32):
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:n]


def assemble(raws, file_key=None, mac_line=None):
    """version line, stanza raw bytes, then a MAC line: recomputed from
    file_key, or mac_line as given"""
    h = b"age-encryption.org/v1\n" + b"".join(raws) + b"---"
    if file_key is not None:
        mk = hkdf(file_key, b"", b"header")
        mac_line = b" " + b64enc(hmac.new(mk, h, hashlib.sha256).digest()) \
            + b"\n"
        return h + mac_line
    return h + mac_line[3:]


# ------------------------------------------------------------------ license

SIG = 0x20


def tlv_dec(b):
    out = []
    i = 0
    while i < len(b):
        t, n = b[i], struct.unpack(">H", b[i + 1:i + 3])[0]
        out.append([t, b[i + 3:i + 3 + n]])
        i += 3 + n
    return out


def tlv_enc(fields):
    return b"".join(bytes([t]) + struct.pack(">H", len(v)) + v
                    for t, v in fields)


class License:
    def __init__(self, body):
        self.top = tlv_dec(body)
        self.sig = tlv_dec(self.get(SIG))

    def get(self, tag):
        return [v for t, v in self.top if t == tag][0]

    def set(self, tag, v):
        for f in self.top:
            if f[0] == tag:
                f[1] = v

    def sget(self, tag):
        return [v for t, v in self.sig if t == tag][0]

    def sset(self, tag, v):
        for f in self.sig:
            if f[0] == tag:
                f[1] = v

    def tbs(self):
        return tlv_enc([f for f in self.top if f[0] != SIG])

    def encode(self):
        self.set(SIG, tlv_enc(self.sig))
        return tlv_enc(self.top)


# ----------------------------------------------------------------- openssl


def ossl(args, data=None, inflag="-in"):
    if data is None:
        return subprocess.run(["openssl"] + args, capture_output=True,
                              check=True).stdout
    with tempfile.TemporaryDirectory() as d:
        inp = os.path.join(d, "in")
        with open(inp, "wb") as f:
            f.write(data)
        return ossl(args + ([inflag] if inflag else []) + [inp])


KEY_IDS = {}


def key_id(pem):
    if pem not in KEY_IDS:
        KEY_IDS[pem] = hashlib.sha256(ossl(["pkey", "-in", pem, "-pubout",
                                            "-outform", "DER"])).digest()
    return KEY_IDS[pem]


def unwrap_rsa(pem, body):
    label = b"age-encryption.org/v1/ssh-rsa".hex()
    return ossl(["pkeyutl", "-decrypt", "-inkey", pem,
                 "-pkeyopt", "rsa_padding_mode:oaep",
                 "-pkeyopt", "rsa_oaep_md:sha256",
                 "-pkeyopt", "rsa_mgf1_md:sha256",
                 "-pkeyopt", "rsa_oaep_label:" + label], body)


def sign_rsa(pem, msg):
    return ossl(["dgst", "-sha256", "-sign", pem,
                 "-sigopt", "rsa_padding_mode:pss",
                 "-sigopt", "rsa_pss_saltlen:32",
                 "-sigopt", "rsa_mgf1_md:sha256"], msg, inflag=None)


def root_msg(n, root):
    return b"reprotect/v1 license batch\x00" + struct.pack(">I", n) + root


def sign_license(lic, pem):
    """a batch of one, signed by pem (RSA-PSS), signer id = pem's key id"""
    lic.sset(0x21, b"\x01")
    lic.sset(0x22, key_id(pem))
    lic.sset(0x23, struct.pack(">I", 1))
    lic.sset(0x24, struct.pack(">I", 0))
    lic.sset(0x25, b"")
    root = hashlib.sha256(b"\x00" + lic.tbs()).digest()
    lic.sset(0x26, sign_rsa(pem, root_msg(1, root)))


# -------------------------------------------------------------------- cases
# Each case: name, description, unprotect exit code, words (one of them in
# the one stderr line of unprotect, after the file name), inspect exit
# code, `run --in-place` outcome, words (one in the run report's reason),
# `verify` outcome. "-" for words: nothing to check. Outcome "moved": the
# document is valid after all and the run moves it (the only cases where
# the file may change).

CASES = []


def case(name, desc, up_rc, up_words, in_rc, run_outcome, run_words,
         verify_outcome):
    def deco(fn):
        CASES.append((name, desc, up_rc, up_words, in_rc, run_outcome,
                      run_words, verify_outcome, fn))
        return fn
    return deco


BAD = "failed-bad-document"
HDR = "header|stanza|too|limit|malformed|line"


class Ctx:
    def __init__(self, keys):
        self.k = keys
        self.doc = {}
        for n in ("a", "a2", "b", "x", "r", "u"):
            with open(keys[n], "rb") as f:
                self.doc[n] = f.read()

    def parts(self, n):
        return parse(self.doc[n])

    def file_key(self, n, pem):
        st, _, _ = self.parts(n)
        return unwrap_rsa(pem, find(st, b"ssh-rsa")[1])

    def forge(self, n="a", edit=None, signer="apem", recip=None,
              payload=None, unwrap="apem"):
        """doc n with its license edited (edit(lic)), re-signed by signer,
        bound to recip (raw stanza; default its own) and to the payload's
        nonce, and a valid MAC; payload: other nonce and chunks"""
        st, _, pay = self.parts(n)
        fk = self.file_key(n, self.k[unwrap])
        r = recip or find(st, b"ssh-rsa")[2]
        pay = pay if payload is None else payload
        lic = License(find(st, b"rp-license")[1])
        lic.set(0x09, hashlib.sha256(r).digest())
        lic.set(0x0a, pay[:16])
        if edit:
            edit(lic)
        sign_license(lic, self.k[signer])
        ls = stanza([b"rp-license", b"1"], lic.encode())
        return assemble([r, ls], fk) + pay

    def relic(self, n, edit, mac=True):
        """doc n with its license body edited (edit(bytes) -> bytes),
        no new signature; the MAC recomputed when the doc is RSA"""
        st, macl, pay = self.parts(n)
        rt = b"ssh-rsa" if n != "x" else b"X25519"
        r = find(st, rt)[2]
        body = edit(find(st, b"rp-license")[1])
        ls = stanza([b"rp-license", b"1"], body)
        if n == "x":
            return assemble([r, ls], mac_line=macl) + pay
        return assemble([r, ls], self.file_key(n, self.k["apem"] if n != "b"
                                               else self.k["bpem"])) + pay

    def with_stanzas(self, n, extra, where=1):
        st, macl, pay = self.parts(n)
        raws = [s[2] for s in st]
        raws[where:where] = extra
        return assemble(raws, mac_line=macl) + pay


def at(body, tag, nested=False):
    """offset of the length of tag in a license body"""
    i = 0
    while i < len(body):
        t, n = body[i], struct.unpack(">H", body[i + 1:i + 3])[0]
        if t == tag:
            return i + 1
        if t == SIG and nested:
            i += 3
            continue
        i += 3 + n
    raise KeyError(tag)


def put_len(tag, n, nested=False):
    def f(b):
        o = at(b, tag, nested)
        return b[:o] + struct.pack(">H", n) + b[o + 2:]
    return f


# -- header and stanza sizes ------------------------------------------------

@case("hdr-8mib", "8 MiB of stanza lines (an unknown stanza, 174,763 body "
      "lines) between the recipient and license stanzas",
      3, HDR, 3, BAD, HDR, BAD)
def _(c):
    return c.with_stanzas("a", [stanza([b"junk"], b"\0" * (8 << 20))])


@case("hdr-stanzas-5000", "5,000 empty unknown stanzas in the header",
      3, HDR, 3, BAD, HDR, BAD)
def _(c):
    return c.with_stanzas("a", [b"-> s%d\n\n" % i for i in range(5000)])


@case("hdr-arg-100k", "a stanza argument of 100,000 bytes",
      3, HDR, 3, BAD, HDR, BAD)
def _(c):
    return c.with_stanzas("a", [b"-> junk " + b"A" * 100000 + b"\n\n"])


@case("hdr-args-10000", "a stanza line of 10,000 arguments",
      3, HDR, 3, BAD, HDR, BAD)
def _(c):
    return c.with_stanzas("a", [b"-> junk" + b" a" * 10000 + b"\n\n"])


@case("hdr-line-1mib", "a body line of 1 MiB of base64 (limit: 64 chars)",
      3, HDR, 3, BAD, HDR, BAD)
def _(c):
    return c.with_stanzas("a", [b"-> junk\n" + b"A" * (1 << 20) + b"\n"])


@case("hdr-no-lf-8mib", "the version line, then 8 MiB without a line end",
      3, HDR, 3, BAD, HDR, BAD)
def _(c):
    return b"age-encryption.org/v1\n-> " + b"A" * (8 << 20)


@case("hdr-body-65537", "an unknown stanza whose body is 65,537 bytes "
      "(limit 65,536)", 3, HDR, 3, BAD, HDR, BAD)
def _(c):
    return c.with_stanzas("a", [stanza([b"junk"], b"\0" * 65537)])


@case("hdr-recip-body-huge", "the ssh-rsa stanza body replaced by 60 KiB "
      "(not a 256-byte OAEP block)", 3, "recipient|stanza|ssh-rsa|body|bound",
      3, BAD, "recipient|stanza|ssh-rsa|body|bound", BAD)
def _(c):
    st, macl, pay = c.parts("a")
    r = find(st, b"ssh-rsa")
    return assemble([stanza(r[0], b"\x01" * 61440),
                     find(st, b"rp-license")[2]], mac_line=macl) + pay


# -- license TLV lengths ------------------------------------------------------

LIC = "license"


@case("lic-len-ffff", "license field 0x02 (document id) with length 0xffff",
      3, LIC, 3, BAD, LIC, BAD)
def _(c):
    return c.relic("a", put_len(0x02, 0xffff))


@case("lic-len-zero", "license field 0x03 (key id) with length 0",
      3, LIC, 3, BAD, LIC, BAD)
def _(c):
    return c.relic("a", put_len(0x03, 0))


@case("lic-sigblock-ffff", "signature block (0x20) with length 0xffff",
      3, LIC, 3, BAD, LIC, BAD)
def _(c):
    return c.relic("a", put_len(SIG, 0xffff))


@case("lic-sig-ffff", "root signature (0x26) with length 0xffff",
      3, LIC, 3, BAD, LIC, BAD)
def _(c):
    return c.relic("a", put_len(0x26, 0xffff, nested=True))


@case("lic-4097", "a license body of 4,097 bytes (valid license, then "
      "zeros; limit 4,096)", 3, LIC, 3, BAD, LIC, BAD)
def _(c):
    return c.relic("a", lambda b: b + b"\0" * (4097 - len(b)))


@case("lic-trailing", "one byte after the signature block",
      3, LIC, 3, BAD, LIC, BAD)
def _(c):
    return c.relic("a", lambda b: b + b"\0")


@case("lic-empty", "an empty license stanza body", 3, LIC, 3, BAD, LIC, BAD)
def _(c):
    return c.relic("a", lambda b: b"")


@case("lic-size-max", "plaintext size 2^64-1 (-1 as a signed integer), "
      "validly signed", 3, "size|truncated|extended|payload|license", 3,
      BAD, "size|truncated|extended|payload|license|plaintext", BAD)
def _(c):
    return c.forge(edit=lambda l: l.set(0x08, b"\xff" * 8))


@case("lic-size-neg", "plaintext size 2^63 (the most negative int64), "
      "validly signed", 3, "size|truncated|extended|payload|license", 3,
      BAD, "size|truncated|extended|payload|license|plaintext", BAD)
def _(c):
    return c.forge(edit=lambda l: l.set(0x08, b"\x80" + b"\0" * 7))


@case("lic-issued-neg", "issued-at 2^63 (negative as int64), validly signed: "
      "nothing else is wrong", 0, "-", 0, "moved", "-", "verified")
def _(c):
    return c.forge(edit=lambda l: l.set(0x06, b"\x80" + b"\0" * 7))


@case("lic-owner-esc", "owner holding ESC [2J and a newline, validly signed",
      3, "owner|license|text|utf", 3, BAD, "owner|license|text|utf", BAD)
def _(c):
    return c.forge(edit=lambda l: l.set(0x05, b"a\x1b[2J\nb"))


@case("lic-owner-utf8", "owner of invalid UTF-8 (a lone 0xff), validly "
      "signed", 3, "owner|license|text|utf", 3, BAD,
      "owner|license|text|utf", BAD)
def _(c):
    return c.forge(edit=lambda l: l.set(0x05, b"a\xffb"))


@case("lic-owner-256", "an owner of 256 bytes (limit 255), validly signed",
      3, "owner|license", 3, BAD, "owner|license", BAD)
def _(c):
    return c.forge(edit=lambda l: l.set(0x05, b"o" * 256))


# -- signature block ------------------------------------------------------------

@case("lic-batch-huge", "batch size 0xffffffff (limit 2^20)",
      3, "batch|license", 3, BAD, "batch|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(
        b, {0x23: struct.pack(">I", 0xffffffff)}))


@case("lic-batch-zero", "batch size 0", 3, "batch|license", 3, BAD,
      "batch|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {0x23: b"\0\0\0\0"}))


@case("lic-leaf-oob", "leaf index 1 in a batch of 1 (out of range)",
      3, "leaf|index|license", 3, BAD, "leaf|index|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {0x24: b"\0\0\0\1"}))


@case("lic-leaf-max", "leaf index 0xffffffff in a batch of 1,048,576 with "
      "a 20-hash path", 3, "leaf|index|license", 3, BAD,
      "leaf|index|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {
        0x23: struct.pack(">I", 1 << 20), 0x24: b"\xff" * 4,
        0x25: b"\x11" * 640}))


@case("lic-path-short", "leaf 5 of a batch of 1,024 with 9 path hashes "
      "(needs 10)", 3, "path|license", 3, BAD, "path|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {
        0x23: struct.pack(">I", 1024), 0x24: struct.pack(">I", 5),
        0x25: b"\x22" * 32 * 9}))


@case("lic-path-long", "a batch of 1 with one path hash (needs none)",
      3, "path|license", 3, BAD, "path|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {0x25: b"\x33" * 32}))


@case("lic-path-ragged", "an audit path of 33 bytes (not a multiple of 32)",
      3, "path|license", 3, BAD, "path|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {
        0x23: struct.pack(">I", 2), 0x25: b"\x44" * 33}))


@case("lic-path-21", "a batch of 2^20+1 (over the limit) with a 21-hash "
      "path", 3, "batch|path|license", 3, BAD, "batch|path|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {
        0x23: struct.pack(">I", (1 << 20) + 1), 0x25: b"\x55" * 32 * 21}))


def _sig_edit(body, vals):
    lic = License(body)
    for t, v in vals.items():
        lic.sset(t, v)
    return lic.encode()


# -- licenses that do not belong -----------------------------------------------

@case("lic-dup", "the license stanza twice", 3, "rp-license|license|stanza",
      3, BAD, "rp-license|license|stanza", BAD)
def _(c):
    st, macl, pay = c.parts("a")
    lic = find(st, b"rp-license")[2]
    return assemble([s[2] for s in st] + [lic], mac_line=macl) + pay


@case("lic-dup-other", "a second license stanza, copied from another "
      "document under the same key", 3, "rp-license|license|stanza", 3, BAD,
      "rp-license|license|stanza", BAD)
def _(c):
    st, macl, pay = c.parts("a")
    lic = find(c.parts("a2")[0], b"rp-license")[2]
    return assemble([s[2] for s in st] + [lic], mac_line=macl) + pay


@case("lic-other-doc", "the license of another document under the same key "
      "(valid signature, wrong binding)", 3, "bound", 3, BAD,
      "bound|binding|recipient|nonce", BAD)
def _(c):
    st, macl, pay = c.parts("a")
    return assemble([find(st, b"ssh-rsa")[2],
                     find(c.parts("a2")[0], b"rp-license")[2]],
                    mac_line=macl) + pay


@case("lic-other-doc-mac", "the license of another document, the MAC "
      "recomputed with this document's file key (only the bindings fail)",
      3, "bound", 3, BAD, "bound|binding|recipient|nonce", BAD)
def _(c):
    st, _, pay = c.parts("a")
    return assemble([find(st, b"ssh-rsa")[2],
                     find(c.parts("a2")[0], b"rp-license")[2]],
                    c.file_key("a", c.k["apem"])) + pay


@case("sig-revoked", "a license for key A (archived) validly signed by "
      "key R, which is revoked; everything else valid", 5, "revoked", 5,
      "skipped-revoked-key", "revoked", "skipped-revoked-key")
def _(c):
    return c.forge(signer="rpem")


@case("sig-unknown", "a license for key A validly signed by a key the store "
      "does not have (the tenant key is in the store)", 4, "signing key", 4,
      BAD, "signing key", BAD)
def _(c):
    return c.forge(signer="upem")


def _owner_edit(body):
    lic = License(body)
    lic.set(0x05, b"mallory@example.org")
    return lic.encode()


@case("active-owner-edit", "a document under the active key B, its "
      "license's owner changed and not signed again (the header MAC made "
      "anew): a run must not take it for current", 3, "signature", 3, BAD,
      "signature", BAD)
def _(c):
    return c.relic("b", _owner_edit)


@case("recip-a-lic-b", "the ssh-rsa stanza for key A, a license naming "
      "key B (validly signed by B, bound to this stanza and nonce)",
      3, "recipient stanza|recipient", 3, BAD, "recipient stanza", BAD)
def _(c):
    kb = key_id(c.k["bpem"])
    return c.forge(edit=lambda l: l.set(0x03, kb), signer="bpem")


@case("recip-x-lic-rsa", "an X25519 stanza with a license naming RSA key A "
      "(validly signed by A, bound to the X25519 stanza)",
      3, "recipient", 3, BAD, "recipient", BAD)
def _(c):
    xs = find(c.parts("x")[0], b"X25519")[2]
    return c.forge(recip=xs)


@case("alg-rsa-on-ed", "an X25519 document whose license claims "
      "RSA-PSS (algorithm 1) for its Ed25519 signing key",
      3, "algorithm|license|signature", 3, BAD,
      "algorithm|license|signature", BAD)
def _(c):
    return c.relic("x", lambda b: _sig_edit(b, {0x21: b"\x01"}))


@case("alg-ed-on-rsa", "an RSA document whose license claims Ed25519 "
      "(algorithm 2) with a 64-byte signature",
      3, "algorithm|license|signature", 3, BAD,
      "algorithm|license|signature", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {0x21: b"\x02",
                                                 0x26: b"\x66" * 64}))


@case("alg-unknown", "signature algorithm 3", 3, "algorithm|license", 3, BAD,
      "algorithm|license", BAD)
def _(c):
    return c.relic("a", lambda b: _sig_edit(b, {0x21: b"\x03"}))


@case("key-revoked", "a real document under key R, revoked in the store",
      5, "revoked", 5, "skipped-revoked-key", "revoked", "skipped-revoked-key")
def _(c):
    return c.doc["r"]


@case("key-unknown", "a real document from another store (its key is not "
      "in this one)", 4, "not in this store", 4, "skipped-unknown-key",
      "not in this store|unknown", "skipped-unknown-key")
def _(c):
    return c.doc["u"]


# -- payload ----------------------------------------------------------------------

PAY = "truncated|payload|chunk|final|size|extended|license gives|plaintext"


@case("pay-cut-mid", "the payload cut in the middle of its first chunk",
      3, PAY, 3, BAD, PAY, BAD)
def _(c):
    d = c.doc["a"]
    return d[:len(d) - len(c.parts("a")[2]) + 16 + 30000]


@case("pay-no-final", "the payload without its final chunk (ends after "
      "chunk 0)", 3, PAY, 3, BAD, PAY, BAD)
def _(c):
    d = c.doc["a"]
    return d[:len(d) - len(c.parts("a")[2]) + 16 + 65552]


@case("pay-nonce-only", "the header and the nonce, no chunk at all",
      3, PAY, 3, BAD, PAY, BAD)
def _(c):
    d = c.doc["a"]
    return d[:len(d) - len(c.parts("a")[2]) + 16]


@case("pay-append", "one byte after the final chunk", 3, PAY, 3, BAD, PAY,
      BAD)
def _(c):
    return c.doc["a"] + b"x"


@case("pay-append-chunk", "chunk 0 again after the final chunk",
      3, PAY, 3, BAD, PAY, BAD)
def _(c):
    p = c.parts("a")[2]
    return c.doc["a"] + p[16:16 + 65552]


@case("pay-no-final-signed", "no final chunk, and a validly signed license "
      "whose size (65,536) matches the one full chunk left",
      3, PAY, 3, BAD, PAY, BAD)
def _(c):
    p = c.parts("a")[2]
    return c.forge(edit=lambda l: l.set(0x08, struct.pack(">Q", 65536)),
                   payload=p[:16 + 65552])


@case("pay-append-signed", "chunk 0 again after the final chunk, and a "
      "validly signed license whose size (165,536) matches",
      3, PAY, 3, BAD, PAY, BAD)
def _(c):
    p = c.parts("a")[2]
    return c.forge(edit=lambda l: l.set(0x08, struct.pack(">Q", 165536)),
                   payload=p + p[16:16 + 65552])


# What `inspect --json` says: "stderr" when the header does not parse (one
# stderr line, no report), else CHECK=STATUS in its report's "checks" ("-":
# every check ok).
INSPECT = {
    "lic-dup": "stderr",
    "lic-dup-other": "stderr",
    "hdr-recip-body-huge": "stanza_binding=auth",
    "lic-other-doc": "stanza_binding=auth",
    "lic-other-doc-mac": "stanza_binding=auth",
    "sig-revoked": "signature=revoked",
    "sig-unknown": "signature=nokey",
    "recip-a-lic-b": "key=format",
    "active-owner-edit": "signature=auth",
    "recip-x-lic-rsa": "key=format",
    "alg-rsa-on-ed": "signature=format",
    "alg-ed-on-rsa": "signature=format",
    "key-revoked": "key=revoked",
    "key-unknown": "key=nokey",
    # the payload's end: its length against the license, or its last tag
    "lic-size-max": "payload_end=format",
    "lic-size-neg": "payload_end=format",
    "pay-cut-mid": "payload_end=format",
    "pay-no-final": "payload_end=format",
    "pay-nonce-only": "payload_end=format",
    "pay-append": "payload_end=format",
    "pay-append-chunk": "payload_end=format",
    "pay-no-final-signed": "payload_end=auth",
    "pay-append-signed": "payload_end=auth",
}


def inspect_check(name, in_rc):
    if name in INSPECT:
        return INSPECT[name]
    if in_rc == 0:
        return "-"
    if name.startswith("lic-") or name.startswith("alg-"):
        return "license=format"
    return "stderr"


# The exact fault each case must be reported with (one of these words in
# the unprotect stderr line and in the run report's reason); the CASES
# words stay the looser check for `verify`, which reads further.
EXACT = {
    "hdr-8mib": "longer than 65536",
    "hdr-stanzas-5000": "more than 16 stanzas",
    "hdr-arg-100k": "longer than 255",
    "hdr-args-10000": "more than 8 arguments",
    "hdr-line-1mib": "header longer than 262144",
    "hdr-no-lf-8mib": "header longer than 262144",
    "hdr-body-65537": "longer than 65536",
    "hdr-recip-body-huge": "not bound to this recipient stanza",
    "lic-len-ffff": "0x02 (document id): length 65535",
    "lic-len-zero": "0x03 (tenant key id): length 0",
    "lic-sigblock-ffff": "0x20 (signature block): truncated",
    "lic-sig-ffff": "0x26 (root signature): length 65535",
    "lic-4097": "4097 bytes, over the maximum 4096",
    "lic-trailing": "trailing bytes",
    "lic-empty": "0x01 (version): missing",
    "lic-size-max": "18446744073709551615|truncated|extended",
    "lic-size-neg": "truncated|extended",
    "lic-owner-esc": "0x05 (owner): control character",
    "lic-owner-utf8": "0x05 (owner): invalid UTF-8",
    "lic-owner-256": "0x05 (owner): length 256",
    "lic-batch-huge": "0x23 (batch size): value 4294967295",
    "lic-batch-zero": "0x23 (batch size): value 0",
    "lic-leaf-oob": "0x24 (leaf index): value 1 not below",
    "lic-leaf-max": "0x24 (leaf index): value 4294967295",
    "lic-path-short": "0x25 (audit path): 9 hashes",
    "lic-path-long": "0x25 (audit path): 1 hashes",
    "lic-path-ragged": "0x25 (audit path): length 33",
    "lic-path-21": "0x23 (batch size): value 1048577",
    "lic-dup": "more than one rp-license",
    "lic-dup-other": "more than one rp-license",
    "lic-other-doc": "not bound to this recipient stanza",
    "lic-other-doc-mac": "not bound to this recipient stanza",
    "sig-unknown": "signing key is not in this store",
    "recip-a-lic-b": "recipient stanza is not for the license's key",
    "recip-x-lic-rsa": "recipient stanza is not for the license's key",
    "alg-rsa-on-ed": "RSA-PSS-SHA256 does not match the key type",
    "alg-ed-on-rsa": "Ed25519 does not match the key type RSA",
    "alg-unknown": "0x21 (algorithm): unknown value 3",
    "key-revoked": "revoked",
    "key-unknown": "not in this store",
    "pay-cut-mid": "truncated",
    "pay-no-final": "truncated",
    "pay-nonce-only": "truncated",
    "pay-append": "extended",
    "pay-append-chunk": "extended",
    "pay-no-final-signed": "chunk 0 is not final|final chunk",
    "pay-append-signed": "chunk 1 failed authentication|final chunk",
}


# Cases whose expectation the current code does not meet: the test reports
# them as XFAIL (ADV_STRICT=1 makes them fail). Each is described in
# tests/adversarial/README.md.
KNOWN_BUGS = {}


# ------------------------------------------------------------------------ main

def cmd_docs(outdir, keysf):
    with open(keysf) as f:
        keys = json.load(f)
    c = Ctx(keys)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "cases.tsv"), "w") as t:
        for name, desc, up, upw, inr, ro, rw, vo, fn in CASES:
            data = fn(c)
            with open(os.path.join(outdir, name + ".age"), "wb") as f:
                f.write(data)
            ex = EXACT.get(name)
            t.write("\t".join([name, str(up), ex or upw, str(inr),
                                inspect_check(name, inr), ro,
                                ex if ex and rw != "-" else rw, vo, rw,
                                KNOWN_BUGS.get(name, "-")]) + "\n")


def cmd_observed(obsf):
    """the table from what a test run saw (it_adversarial.sh, ADV_TABLE)"""
    desc = {c[0]: c[1] for c in CASES}
    print("| input | what it is | unprotect (stderr) | inspect --json | "
          "run --in-place: outcome, reason | verify | after |")
    print("|---|---|---|---|---|---|---|")
    with open(obsf, encoding="utf-8", errors="replace") as f:
        for line in f:
            v = line.rstrip("\n").split("\t")
            name, uprc, uperr, inrc, ininfo, ro, rr, vo, vr, after = v[:10]
            bug = KNOWN_BUGS.get(name)
            def cell(x):
                # the temp dir is not part of the message
                return re.sub(r"'/[^']*/", "'", x).replace("|", "\\|")
            print("| `%s` | %s%s | %s %s | %s %s | %s: %s | %s: %s | %s |" % (
                name, desc.get(name, ""),
                " **(known bug: %s)**" % bug if bug else "", uprc,
                cell(uperr), inrc, cell(ininfo), ro, cell(rr), vo, cell(vr),
                after))


def cmd_table():
    print("| input | what it is | unprotect | inspect --json | run --in-place "
          "(report reason) | verify | file after run |")
    print("|---|---|---|---|---|---|---|")
    for name, desc, up, upw, inr, ro, rw, vo, _ in CASES:
        w = "" if upw == "-" else ": " + upw.replace("|", " / ")
        rr = "" if rw == "-" else ": " + rw.replace("|", " / ")
        ic = inspect_check(name, inr)
        ic = {"stderr": ", one stderr line", "-": ", all checks ok"}.get(
            ic, ", " + ic)
        bug = KNOWN_BUGS.get(name)
        print("| `%s` | %s%s | exit %s%s | exit %s%s | %s%s | %s | %s |" % (
            name, desc, " **(known bug: %s)**" % bug if bug else "", up, w,
            inr, ic, ro, rr, vo,
            "moved (new license)" if ro == "moved" else "untouched"))


if __name__ == "__main__":
    if sys.argv[1] == "docs":
        cmd_docs(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "table" and len(sys.argv) > 2:
        cmd_observed(sys.argv[2])
    elif sys.argv[1] == "table":
        cmd_table()
    else:
        sys.exit("usage: gen.py docs OUTDIR KEYS.json | gen.py table")
