"""rpsecrets.py: the helper of tests/it_secrets.sh (standard library only).

It computes the secrets a reprotect process handles, from what the test
knows (the passphrase, the tenant private keys it generated), and looks
for them in a live process's memory and in an strace log.

    rpsecrets.py x25519 IDENTITY_FILE NAME
        the age identity's secrets: NAME.scalar (32 bytes), NAME.ident
        (the AGE-SECRET-KEY-1 string, upper and lower case), NAME.ed_seed
        (the Ed25519 seed reprotect derives from it, ks_soft.c)
    rpsecrets.py rsa PEM NAME
        chunks of d, p and q (big-endian, as in DER, and little-endian, as
        in an OpenSSL BIGNUM's limbs on x86-64) and a line of the PEM text
    rpsecrets.py world STORE PASSFILE
        the passphrase, the scrypt KEK, the world key and the keys derived
        from it (keyring MAC, audit MAC, soft keystore encryption)
    rpsecrets.py doc FILE NAME KEYFILE...
        the document's file key, header MAC key and payload key: the
        recipient stanza is unwrapped with the first KEYFILE (an age
        identity file or an RSA PEM) that opens it, checked against the
        header MAC
    rpsecrets.py plain FILE NAME
        8 windows of 32 bytes spread over a plaintext file
    rpsecrets.py scan PID NEEDLES...
        reads every readable mapping of PID (/proc/PID/mem) and prints one
        line per needle found: "FOUND NAME in MAPPING"; then "scanned N
        bytes". Mappings of 1 TiB or more (the ASan shadow, which holds
        only shadow bytes) and mappings with nothing resident are skipped.
    rpsecrets.py strace LOG NEEDLES...
        in an `strace -f -xx -y` log: "FOUND NAME in CALL" for each needle
        in a buffer written (write, pwrite64, writev, pwritev, sendto,
        sendmsg); "MODE PATH MODE" for every file or directory created with
        a mode other than 0600 (0700 for a directory); "COPY SRC -> DST"
        for each copy_file_range/sendfile; "WROTE PATH BYTES" per file
        written; and "CREATED N" at the end.

A needle file (the NEEDLES arguments) has lines "NAME HEX".
"""
import base64
import hashlib
import hmac
import os
import re
import subprocess
import sys

# ---------------------------------------------------------------- crypto


def hkdf(ikm, salt, info, n=32):
    prk = hmac.new(salt if salt else bytes(32), ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


P25519 = 2**255 - 19


def x25519(k, u):
    k = bytearray(k)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    k = int.from_bytes(k, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        kt = (k >> t) & 1
        swap ^= kt
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = kt
        a, b = (x2 + z2) % P25519, (x2 - z2) % P25519
        aa, bb = a * a % P25519, b * b % P25519
        e = (aa - bb) % P25519
        c, d = (x3 + z3) % P25519, (x3 - z3) % P25519
        da, cb = d * a % P25519, c * b % P25519
        x3 = (da + cb) ** 2 % P25519
        z3 = x1 * (da - cb) ** 2 % P25519
        x2 = aa * bb % P25519
        z2 = e * (aa + 121665 * e) % P25519
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P25519 - 2, P25519) % P25519).to_bytes(32, "little")


def chacha20_block(key, counter, nonce):
    def rotl(v, c):
        return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))

    def qr(s, a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF
        s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF
        s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF
        s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF
        s[b] = rotl(s[b] ^ s[c], 7)

    st = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    st += [int.from_bytes(key[i : i + 4], "little") for i in range(0, 32, 4)]
    st += [counter] + [int.from_bytes(nonce[i : i + 4], "little")
                       for i in range(0, 12, 4)]
    w = list(st)
    for _ in range(10):
        qr(w, 0, 4, 8, 12)
        qr(w, 1, 5, 9, 13)
        qr(w, 2, 6, 10, 14)
        qr(w, 3, 7, 11, 15)
        qr(w, 0, 5, 10, 15)
        qr(w, 1, 6, 11, 12)
        qr(w, 2, 7, 8, 13)
        qr(w, 3, 4, 9, 14)
    return b"".join(((w[i] + st[i]) & 0xFFFFFFFF).to_bytes(4, "little")
                    for i in range(16))


def chacha20_xor(key, nonce, data, counter=1):
    out = bytearray()
    for i in range(0, len(data), 64):
        ks = chacha20_block(key, counter + i // 64, nonce)
        out += bytes(a ^ b for a, b in zip(data[i : i + 64], ks))
    return bytes(out)


def mgf1(seed, n):
    out, c = b"", 0
    while len(out) < n:
        out += hashlib.sha256(seed + c.to_bytes(4, "big")).digest()
        c += 1
    return out[:n]


def rsa_oaep_decrypt(n, d, ct, label):
    k = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(ct, "big"), d, n).to_bytes(k, "big")
    hl = 32
    mseed, mdb = em[1 : 1 + hl], em[1 + hl :]
    seed = bytes(a ^ b for a, b in zip(mseed, mgf1(mdb, hl)))
    db = bytes(a ^ b for a, b in zip(mdb, mgf1(seed, k - hl - 1)))
    if em[0] != 0 or db[:hl] != hashlib.sha256(label).digest():
        return None
    rest = db[hl:].lstrip(b"\0")
    return rest[1:] if rest[:1] == b"\x01" else None


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32_decode(s):
    s = s.lower()
    pos = s.rfind("1")
    data = [BECH32.index(c) for c in s[pos + 1 :]][:-6]
    acc, bits, out = 0, 0, bytearray()
    for v in data:
        acc = (acc << 5) | v
        bits += 5
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return bytes(out)


def b64d(s):
    return base64.b64decode(s + "=" * (-len(s) % 4))


# ---------------------------------------------------------------- keys


def read_identity(path):
    for line in open(path, encoding="ascii"):
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-1"):
            return line
    sys.exit("no AGE-SECRET-KEY-1 line in " + path)


def rsa_numbers(pem):
    txt = subprocess.run(["openssl", "rsa", "-in", pem, "-noout", "-text"],
                         check=True, capture_output=True, text=True).stdout
    nums, cur = {}, None
    for line in txt.splitlines():
        m = re.match(r"^(\w+):\s*(\S*)", line)
        if m and not line.startswith(" "):
            cur = m.group(1)
            nums[cur] = m.group(2) if ":" not in m.group(2) else ""
            if m.group(2) and ":" not in m.group(2):
                nums[cur] = m.group(2).split()[0]
                cur = None
        elif cur and line.startswith(" "):
            nums[cur] += line.strip()
    out = {}
    for k, v in nums.items():
        v = v.replace(":", "")
        if re.fullmatch(r"[0-9a-f]+", v or "x"):
            out[k] = int(v, 16)
    return out


def chunk(b, n=32):
    mid = len(b) // 2
    return b[mid - n // 2 : mid + n // 2]


def cmd_x25519(path, name):
    ident = read_identity(path)
    scalar = bech32_decode(ident)
    seed = hkdf(scalar, b"", b"reprotect/v1 x25519 key: ed25519 signing seed")
    print(name + ".scalar", scalar.hex())
    print(name + ".ident", ident.encode().hex())
    print(name + ".ident_lc", ident.lower().encode().hex())
    print(name + ".ed_seed", seed.hex())


def cmd_rsa(pem, name):
    nums = rsa_numbers(pem)
    for k in ("privateExponent", "prime1", "prime2"):
        v = nums[k]
        be = v.to_bytes((v.bit_length() + 7) // 8, "big")
        print("%s.%s_be" % (name, k), chunk(be).hex())
        print("%s.%s_le" % (name, k), chunk(be[::-1]).hex())
    lines = [l.strip() for l in open(pem, encoding="ascii")
             if l.strip() and not l.startswith("-----")]
    print(name + ".pem_line", lines[len(lines) // 2].encode().hex())


def cmd_world(store, passfile):
    pw = open(passfile, "rb").read().rstrip(b"\r\n")
    f = open(os.path.join(store, "world.key"), "rb").read()
    if len(f) != 106 or f[:4] != b"RPWK":
        sys.exit("not a world.key file")
    log_n = f[5]
    r = int.from_bytes(f[6:10], "big")
    p = int.from_bytes(f[10:14], "big")
    salt, nonce, ct = f[30:46], f[46:58], f[58:90]
    kek = hashlib.scrypt(pw, salt=salt, n=1 << log_n, r=r, p=p,
                         maxmem=1 << 30, dklen=32)
    # AES-256-GCM's keystream for the first block is CTR from nonce||2
    wk = subprocess.run(["openssl", "enc", "-d", "-aes-256-ctr", "-nopad",
                         "-K", kek.hex(), "-iv", nonce.hex() + "00000002"],
                        input=ct, check=True, capture_output=True).stdout
    print("passphrase", pw.hex())
    print("world.kek", kek.hex())
    print("world.key", wk.hex())
    for tag, info in (("mac_key", b"reprotect/v1 keyring mac"),
                      ("audit_key", b"reprotect/v1 audit log mac"),
                      ("ks_enc_key",
                       b"reprotect/v1 soft keystore: key encryption")):
        print("world." + tag, hkdf(wk, b"", info).hex())


def parse_header(data):
    end = data.index(b"\n--- ")
    lines = data[: end + 1].split(b"\n")
    stanzas, i = [], 1
    while i < len(lines) and lines[i].startswith(b"-> "):
        args = lines[i][3:].decode().split(" ")
        body = ""
        i += 1
        while True:
            body += lines[i].decode()
            i += 1
            if len(lines[i - 1]) < 64:
                break
        stanzas.append((args, b64d(body)))
    mac_line = data[end + 5 : data.index(b"\n", end + 5)]
    hdr_len = data.index(b"\n", end + 5) + 1
    return stanzas, data[: end + 4], b64d(mac_line.decode()), hdr_len


def unwrap(args, body, keyfile):
    text = open(keyfile, encoding="ascii").read()
    if args[0] == "X25519" and "AGE-SECRET-KEY-1" in text:
        scalar = bech32_decode(read_identity(keyfile))
        share = b64d(args[1])
        pub = x25519(scalar, (9).to_bytes(32, "little"))
        wk = hkdf(x25519(scalar, share), share + pub,
                  b"age-encryption.org/v1/X25519")
        return chacha20_xor(wk, bytes(12), body[:16])
    if args[0] == "ssh-rsa" and "PRIVATE KEY" in text:
        nums = rsa_numbers(keyfile)
        if (nums["modulus"].bit_length() + 7) // 8 != len(body):
            return None
        return rsa_oaep_decrypt(nums["modulus"], nums["privateExponent"],
                                body, b"age-encryption.org/v1/ssh-rsa")
    return None


def cmd_doc(path, name, keyfiles):
    data = open(path, "rb").read()
    stanzas, mac_in, mac, hdr_len = parse_header(data)
    for args, body in stanzas:
        for kf in keyfiles:
            fk = unwrap(args, body, kf)
            if not fk or len(fk) != 16:
                continue
            mk = hkdf(fk, b"", b"header")
            if not hmac.compare_digest(
                    hmac.new(mk, mac_in, hashlib.sha256).digest(), mac):
                continue
            nonce = data[hdr_len : hdr_len + 16]
            print(name + ".file_key", fk.hex())
            print(name + ".mac_key", mk.hex())
            print(name + ".payload_key", hkdf(fk, nonce, b"payload").hex())
            return
    sys.exit("rpsecrets: no key opens " + path)


def cmd_plain(path, name):
    data = open(path, "rb").read()
    for i in range(8):
        off = (len(data) - 32) * i // 7
        print("%s.plain@%d" % (name, off), data[off : off + 32].hex())


# ---------------------------------------------------------------- scanning


def load_needles(files):
    needles = []
    for f in files:
        for line in open(f, encoding="ascii"):
            parts = line.split()
            if len(parts) == 2 and parts[1]:
                needles.append((parts[0], bytes.fromhex(parts[1])))
    if not needles:
        sys.exit("rpsecrets: no needles")
    return needles


def regions(pid):
    cur, out = None, []
    with open("/proc/%s/smaps" % pid, encoding="ascii", errors="replace") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$",
                         line)
            if m:
                cur = [int(m.group(1), 16), int(m.group(2), 16), m.group(3),
                       m.group(4), 0]
                out.append(cur)
            elif line.startswith(("Rss:", "Swap:")) and cur:
                cur[4] += int(line.split()[1])
    return out


def cmd_scan(pid, files):
    needles = load_needles(files)
    longest = max(len(n) for _, n in needles)
    found, total = {}, 0
    step = 8 << 20
    with open("/proc/%s/mem" % pid, "rb", buffering=0) as mem:
        for lo, hi, perms, what, resident in regions(pid):
            if (perms[0] != "r" or resident == 0 or hi - lo >= 1 << 40 or
                    what in ("[vvar]", "[vsyscall]")):
                continue
            prev = b""
            for a in range(lo, hi, step):
                try:
                    mem.seek(a)
                    buf = mem.read(min(step, hi - a))
                except OSError:
                    prev = b""
                    continue
                total += len(buf)
                hay = prev + buf
                for nm, nd in needles:
                    at = hay.find(nd) if nm not in found else -1
                    if at >= 0:
                        found[nm] = "%x-%x %s %s at 0x%x" % (
                            lo, hi, perms, what or "[anon]",
                            a - len(prev) + at)
                prev = buf[-(longest - 1) :] if longest > 1 else b""
    for nm, _ in needles:
        if nm in found:
            print("FOUND %s in %s" % (nm, found[nm]))
    print("scanned %d bytes" % total)


STR_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
FD_RE = re.compile(r"(-?\d+|AT_FDCWD)<((?:\\x[0-9a-f]{2})*)>")
RET_RE = re.compile(r"\)\s+=\s+(-?\d+)(?:<((?:\\x[0-9a-f]{2})*)>)?")
WRITE_CALLS = ("write", "pwrite64", "writev", "pwritev", "pwritev2",
               "sendto", "sendmsg")


def unescape(s):
    return bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", s))


def path_of(esc):
    return unescape(esc).decode("utf-8", "replace")


def whole_calls(log):
    """the trace's lines with each call whole: a call that another
    thread's interrupted is split in two lines, "PID NAME(ARGS <unfinished
    ...>" and "PID <... NAME resumed>REST"; joined at the second"""
    pending = {}
    for line in open(log, encoding="ascii", errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$", line)
        if not m:
            yield line
            continue
        pid, body = m.group(1), m.group(2)
        if body.endswith(" <unfinished ...>"):
            pending[pid] = body[: -len(" <unfinished ...>")]
            continue
        r = re.match(r"^<\.\.\. \w+ resumed>(.*)$", body)
        if r and pid in pending:
            body = pending.pop(pid) + r.group(1)
        yield body


def cmd_strace(log, files):
    """strace -f -xx -y: every string and every fd's path is \\xHH"""
    needles = load_needles(files)
    created, wrote = 0, {}
    for line in whole_calls(log):
        m = re.match(r"^(\w+)\((.*)$", line)
        if not m:
            continue
        call, rest = m.group(1), m.group(2)
        ret = RET_RE.search(rest)
        rv = int(ret.group(1)) if ret else -1
        fds = [path_of(f.group(2)) for f in FD_RE.finditer(rest)]
        if call in WRITE_CALLS:
            path = fds[0] if fds else "?"
            # the buffers: every quoted string before the result
            args = rest[: ret.start()] if ret else rest
            bufs = b"".join(unescape(s) for s in STR_RE.findall(args))
            if rv > 0:
                wrote[path] = wrote.get(path, 0) + rv
            for nm, nd in needles:
                if nd in bufs:
                    print("FOUND %s in %s to %s" % (nm, call, path))
        elif call in ("openat", "open", "creat") and (
                "O_CREAT" in rest or call == "creat"):
            if rv < 0:
                continue
            path = path_of(ret.group(2) or "")
            mode = re.search(r"(?:O_CREAT[^,]*|\"),\s*(0[0-7]*)\)", rest)
            created += 1
            if not mode or mode.group(1) != "0600":
                print("MODE %s %s" % (path, mode.group(1) if mode else "?"))
        elif call in ("mkdir", "mkdirat"):
            mode = re.search(r",\s*(0[0-7]*)\)", rest)
            if rv == 0:
                created += 1
                if not mode or mode.group(1) != "0700":
                    print("MODE dir %s" % (mode.group(1) if mode else "?"))
        elif call in ("copy_file_range", "sendfile"):
            if call == "sendfile":
                fds = fds[::-1]  # sendfile(out, in, ...)
            print("COPY %s" % " -> ".join(fds[:2]))
            if rv > 0 and len(fds) >= 2:
                wrote[fds[1]] = wrote.get(fds[1], 0) + rv
    for path, n in sorted(wrote.items()):
        print("WROTE %s %d" % (path, n))
    print("CREATED %d" % created)


def main():
    a = sys.argv[1:]
    cmds = {
        "x25519": lambda: cmd_x25519(a[1], a[2]),
        "rsa": lambda: cmd_rsa(a[1], a[2]),
        "world": lambda: cmd_world(a[1], a[2]),
        "doc": lambda: cmd_doc(a[1], a[2], a[3:]),
        "plain": lambda: cmd_plain(a[1], a[2]),
        "scan": lambda: cmd_scan(a[1], a[2:]),
        "strace": lambda: cmd_strace(a[1], a[2:]),
    }
    if not a or a[0] not in cmds:
        sys.exit(__doc__)
    cmds[a[0]]()


if __name__ == "__main__":
    main()
