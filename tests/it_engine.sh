#!/bin/sh
# it_engine.sh: the bulk re-protection engine (`reprotect run`) end to end.
# One store, a corpus of some 2,100 mixed documents (1,500 under the
# sanitizers: boundary sizes, up to 6 MiB, compressed or not, nested, odd
# names) in main/, beside odd/OUTCOME/ entries that the run must give
# OUTCOME and otherwise leave alone (revoked key, unknown key, plain age,
# not age, damaged, symlinks in and out of the tree, a FIFO); then: dry
# run and shards, RSA-2048 -> RSA-3072 -> X25519 migrations, SIGTERM and
# kill -9 with resume, --io sync vs uring, --mode reencrypt, --batch 1,
# the audit log. Documents are checked by independent readers (stock age
# opens every one; a Python parser of the header and license in this file
# reads keys, nonces and batches), never by the engine's report alone.
# Usage: sh tests/it_engine.sh PATH/TO/reprotect
set -eu
# shellcheck source=tests/it_lib.sh
. "$(dirname "$0")/it_lib.sh"
need python3 openssl age age-keygen zstd timeout

export REPROTECT_PASSPHRASE='it-engine passphrase'
export REPROTECT_STORE="$T/store"
NL='
'
# the corpus: main/edge (28 documents) and NUM_DIRS folders of PER_DIR
# (under the sanitizers, fewer: the whole stays well under 3 minutes)
NUM_DIRS=14
PER_DIR=150
case $RP in
*/build-asan/*) NUM_DIRS=10 ;;
*) if ldd "$RP" 2>/dev/null | grep -q 'libasan'; then NUM_DIRS=10; fi ;;
esac
AS_ROOT=0
if [ "$(id -u)" = 0 ]; then
	AS_ROOT=1 # then some documents belong to another user
fi

# the checker: reads documents, journals and reports on its own
cat >"$T/chk.py" <<'CHK_EOF'
"""it_engine.sh's checker: reads documents, journals and reports on its own
(it never calls reprotect), so what it finds does not depend on the engine.
Each check prints what is wrong, one line each, and exits 1 if anything
is."""
import base64
import hashlib
import json
import os
import random
import re
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

PROBLEMS = []


def bad(msg):
    PROBLEMS.append(msg)


def done():
    for m in PROBLEMS[:15]:
        print(m)
    if len(PROBLEMS) > 15:
        print("... and %d more" % (len(PROBLEMS) - 15))
    sys.exit(1 if PROBLEMS else 0)


def walk(root):
    """every entry under root (not following symlinks), as rel paths"""
    out = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out.append(os.path.relpath(p, root))
    return sorted(out)


def under(rel, prefixes):
    return not prefixes or any(rel == p or rel.startswith(p + "/")
                               for p in prefixes)


# ---------------------------------------------------------------- corpus

def cmd_corpus(root, num_dirs, per_dir, seed):
    """the main corpus: edge/ (boundary sizes, odd names) and d00.. (mixed,
    nested); writes list-plain, list-zstd, list-owner (NUL separated)"""
    rnd = random.Random(int(seed))
    lists = {"plain": [], "zstd": [], "owner": []}

    def put(rel, data, kind):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        lists[kind].append(p)

    def text(n):
        words = [b"alpha", b"beta", b"gamma", b"delta ", b"\n", b"42"]
        out = bytearray()
        while len(out) < n:
            out += rnd.choice(words)
        return bytes(out[:n])

    K = 65536
    edge = [("empty", 0), ("one", 1), ("k64-1", K - 1), ("k64", K),
            ("k64+1", K + 1), ("k128", 2 * K), ("k128+1", 2 * K + 1),
            ("with space/a b c.txt", 3000),
            ("new\nline.bin", 777), ("caf\u00e9 \u00fc.txt", 123),
            ("-dash.txt", 10), ("big/m1+7", (1 << 20) + 7),
            ("big/m3", 3 << 20), ("big/m6-1", (6 << 20) - 1)]
    for i, (name, n) in enumerate(edge):
        # each size both raw and compressed (text compresses, random not)
        put("edge/raw/" + name, os.urandom(n), "plain")
        put("edge/zstd/" + name, text(n) if i % 2 else os.urandom(n),
            "zstd")
    for d in range(int(num_dirs)):
        for i in range(int(per_dir)):
            sub = "/".join("s%d" % rnd.randrange(3)
                           for _ in range(rnd.randrange(4)))
            rel = "d%02d/%s/f%04d%s" % (d, sub, i,
                                        " x" if i % 17 == 0 else "")
            rel = rel.replace("//", "/")
            n = rnd.choice([0, 1, 15, 16, 17, 100, 1000, 4096, 5000,
                            rnd.randrange(20000), rnd.randrange(70000)])
            kind = ("plain", "zstd", "owner")[i % 3]
            put(rel, text(n) if kind == "zstd" and i % 2 else
                os.urandom(n), kind)
    for k, v in lists.items():
        with open("list-" + k, "wb") as f:
            f.write(b"".join(os.fsencode(os.path.relpath(p, root)) + b"\0"
                             for p in v))
    print(sum(len(v) for v in lists.values()))


def cmd_drop_plain(root):
    """removes the plaintexts protect left beside the documents"""
    for d, _, files in os.walk(root):
        for n in files:
            if not n.endswith(".age"):
                os.unlink(os.path.join(d, n))


def cmd_vary_meta(root, as_root):
    """gives the documents assorted modes, owners and mtimes"""
    modes = [0o600, 0o640, 0o644, 0o400, 0o660, 0o604]
    for i, rel in enumerate(walk(root)):
        p = os.path.join(root, rel)
        if not stat.S_ISREG(os.lstat(p).st_mode):
            continue
        os.chmod(p, modes[i % len(modes)])
        if as_root == "1" and i % 7 == 3:
            os.chown(p, 65534, 65534)
        t = 1500000000 + i * 3607
        os.utime(p, ns=(t * 10**9 + 123456789, t * 10**9 + 987654321))


# ---------------------------------------------------------------- snapshots

def snap(root):
    out = {}
    for rel in walk(root):
        p = os.path.join(root, rel)
        sb = os.lstat(p)
        e = {"mode": "%o" % stat.S_IMODE(sb.st_mode), "uid": sb.st_uid,
             "mtime": sb.st_mtime_ns, "type": stat.S_IFMT(sb.st_mode)}
        if stat.S_ISDIR(sb.st_mode):
            del e["mtime"]  # a folder's entries may come and go
        if stat.S_ISREG(sb.st_mode):
            with open(p, "rb") as f:
                e["sha"] = hashlib.sha256(f.read()).hexdigest()
            e["size"] = sb.st_size
        elif stat.S_ISLNK(sb.st_mode):
            e["link"] = os.readlink(p)
        out[rel] = e
    return out


def cmd_snap(root, out):
    with open(out, "w", encoding="utf-8", errors="surrogateescape") as f:
        json.dump(snap(root), f)


def load(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return json.load(f)


def cmd_same(a, b, *prefixes):
    """every entry under the prefixes is the same in both snapshots: type,
    bytes, mode, owner, mtime, link target"""
    A, B = load(a), load(b)
    ka = {k for k in A if under(k, prefixes)}
    kb = {k for k in B if under(k, prefixes)}
    for k in sorted(ka - kb):
        bad("vanished: %r" % k)
    for k in sorted(kb - ka):
        bad("appeared: %r" % k)
    for k in sorted(ka & kb):
        if A[k] != B[k]:
            diff = [f for f in A[k] if A[k][f] != B[k].get(f)]
            bad("changed: %r (%s)" % (k, ", ".join(diff)))
    print("compared %d entries" % len(ka))
    done()


def cmd_meta(a, b, *prefixes):
    """the regular files under the prefixes kept mode, owner and mtime
    (their bytes may differ); no file appeared or vanished"""
    A, B = load(a), load(b)
    n = 0
    for k in sorted(set(A) | set(B)):
        if not under(k, prefixes) or ".rp-tmp-" in k:
            continue
        if k not in A or k not in B:
            bad("%s: %r" % ("appeared" if k in B else "vanished", k))
            continue
        if A[k]["type"] != stat.S_IFREG:
            continue
        n += 1
        for f in ("mode", "uid", "mtime", "type"):
            if A[k][f] != B[k][f]:
                bad("%r: %s %s -> %s" % (k, f, A[k][f], B[k][f]))
    print("compared metadata of %d files" % n)
    done()


# ---------------------------------------------------------------- documents

B64 = re.compile(rb"^[A-Za-z0-9+/]*$")


def b64d(s):
    if not B64.match(s):
        raise ValueError("bad base64")
    return base64.b64decode(s + b"=" * (-len(s) % 4))


def tlv(b):
    out, i = {}, 0
    while i < len(b):
        t, n = b[i], int.from_bytes(b[i + 1:i + 3], "big")
        out[t] = b[i + 3:i + 3 + n]
        i += 3 + n
    return out


def parse_doc(p):
    with open(p, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines[0] != b"age-encryption.org/v1":
        raise ValueError("not an age file")
    pos = len(lines[0]) + 1
    i, stanzas, hlen = 1, [], None
    while i < len(lines):
        ln = lines[i]
        pos += len(ln) + 1
        i += 1
        if ln.startswith(b"--- "):
            hlen = pos
            break
        if not ln.startswith(b"-> "):
            raise ValueError("bad header line")
        args, body = ln[3:].split(b" "), b""
        while True:
            bl = lines[i]
            pos += len(bl) + 1
            i += 1
            body += b64d(bl)
            if len(bl) < 64:
                break
        stanzas.append((args, body))
    if hlen is None:
        raise ValueError("no MAC line")
    info = {"header": data[:hlen], "stanzas": stanzas,
            "nonce": data[hlen:hlen + 16].hex(),
            "payload": hashlib.sha256(data[hlen:]).hexdigest(),
            "file_size": len(data)}
    recips = [s for s in stanzas if s[0][0] != b"rp-license"]
    lics = [s for s in stanzas if s[0][0] == b"rp-license"]
    if recips:
        info["recip"] = recips[0][0][0].decode()
        info["recip_body"] = len(recips[0][1])
    if lics:
        lic = tlv(lics[0][1])
        sig = tlv(lic[0x20])
        info.update(key=lic[0x03].hex(), enc=lic[0x07][0],
                    size=int.from_bytes(lic[0x08], "big"),
                    owner=lic[0x05].decode("utf-8", "replace"),
                    doc_id=lic[0x02].hex(),
                    lic_nonce=lic[0x0a].hex(), sig_key=sig[0x22].hex(),
                    batch=int.from_bytes(sig[0x23], "big"),
                    leaf=int.from_bytes(sig[0x24], "big"),
                    root_sig=sig[0x26].hex())
    return info


def scan(root, prefixes):
    out = {}
    for rel in walk(root):
        p = os.path.join(root, rel)
        if (not under(rel, prefixes) or not rel.endswith(".age") or
                not stat.S_ISREG(os.lstat(p).st_mode)):
            continue
        try:
            d = parse_doc(p)
            d.pop("header")
            d["bodies"] = b"".join(s[1] for s in d.pop("stanzas")).hex()
            out[rel] = d
        except (ValueError, KeyError, IndexError) as e:
            out[rel] = {"error": str(e)}
    return out


def cmd_scan(root, out, *prefixes):
    with open(out, "w", encoding="utf-8", errors="surrogateescape") as f:
        json.dump(scan(root, prefixes), f)


def cmd_keys(scanf, want, alg, *args):
    """every document of the scan is licensed to key `want` and signed by
    it, its recipient stanza is for a key of `alg`, its license binds the
    nonce that follows the header, and no stanza names an --old key"""
    S = load(scanf)
    old = [bytes.fromhex(a) for a in args]
    if not S:
        bad("no documents in the scan")
    for rel, d in sorted(S.items()):
        if "error" in d:
            bad("%r: unreadable: %s" % (rel, d["error"]))
            continue
        if d.get("key") != want or d.get("sig_key") != want:
            bad("%r: key %s signed by %s, want %s" %
                (rel, d.get("key", "-")[:16], d.get("sig_key", "-")[:16],
                 want[:16]))
        if (alg == "x25519") != (d.get("recip") == "X25519") or (
                alg.startswith("rsa") and
                d.get("recip_body") != int(alg[3:]) // 8):
            bad("%r: recipient %s (%s bytes), want %s" %
                (rel, d.get("recip"), d.get("recip_body"), alg))
        if d.get("lic_nonce") != d["nonce"]:
            bad("%r: the license binds another nonce" % rel)
        bodies = bytes.fromhex(d["bodies"])
        for o in old:
            if o in bodies:
                bad("%r: still names key %s" % (rel, o.hex()[:16]))
    print("checked %d documents" % len(S))
    done()


def cmd_payload(before, after, how):
    """rewrap: the nonce and payload bytes are unchanged; reencrypt: the
    nonce and the payload both changed; same documents, same document ids,
    owners and sizes"""
    A, B = load(before), load(after)
    if set(A) != set(B):
        bad("document sets differ: %r" % sorted(set(A) ^ set(B))[:5])
    for rel in sorted(set(A) & set(B)):
        a, b = A[rel], B[rel]
        for f in ("doc_id", "owner", "size", "enc"):
            if a.get(f) != b.get(f):
                bad("%r: license %s %r -> %r" % (rel, f, a.get(f),
                                                  b.get(f)))
        if how == "same" and (a["payload"] != b["payload"]):
            bad("%r: the payload changed in a rewrap" % rel)
        if how == "differ" and (a["nonce"] == b["nonce"] or
                                a["payload"] == b["payload"]):
            bad("%r: nonce/payload unchanged in a reencrypt" % rel)
    print("compared %d documents" % len(A))
    done()


def cmd_batches(scanf, key, how):
    """each batch signed by `key` is whole: as many documents share a root
    signature as its batch size says, with leaf indices 0..size-1. `one`:
    every batch size is 1; `multi`: most documents are in batches of more
    than one"""
    S = {r: d for r, d in load(scanf).items() if d.get("sig_key") == key}
    groups = {}
    for rel, d in S.items():
        groups.setdefault(d["root_sig"], []).append(d)
    multi = 0
    for sig, g in groups.items():
        sizes = {d["batch"] for d in g}
        leaves = sorted(d["leaf"] for d in g)
        if len(sizes) != 1 or leaves != list(range(len(g))) or \
                sizes != {len(g)}:
            bad("batch %s: sizes %s, %d documents, leaves %s" %
                (sig[:12], sorted(sizes), len(g), leaves[:8]))
        if len(g) > 1:
            multi += len(g)
    mx = max((d["batch"] for d in S.values()), default=0)
    if not S:
        bad("no document signed by %s" % key[:16])
    if how == "one" and mx != 1:
        bad("a batch size %d with --batch 1" % mx)
    if how == "multi" and (mx < 2 or multi * 2 < len(S)):
        bad("default batching: largest batch %d, %d of %d documents in "
            "batches of more than one" % (mx, multi, len(S)))
    print("%d documents, %d batches, largest %d" % (len(S), len(groups), mx))
    done()


def one_open(job):
    orig, doc, ident = job
    try:
        d = parse_doc(doc)
    except (OSError, ValueError, KeyError, IndexError) as e:
        return "%r: cannot parse: %s" % (doc, e)
    r = subprocess.run(["age", "-d", "-i", ident, doc],
                       capture_output=True)
    if r.returncode != 0:
        return "%r: age -d: %s" % (doc, r.stderr.decode()[:200].strip())
    data = r.stdout
    if d.get("enc") == 1:
        r = subprocess.run(["zstd", "-d", "-c", "-q"], input=data,
                           capture_output=True)
        if r.returncode != 0:
            return "%r: zstd -d failed" % doc
        data = r.stdout
    with open(orig, "rb") as f:
        want = f.read()
    if data != want:
        return "%r: opens to other bytes (%d, want %d)" % (doc, len(data),
                                                          len(want))
    if d.get("size") != len(want):
        return "%r: license size %s, want %d" % (doc, d.get("size"),
                                                  len(want))
    return None


def cmd_open(orig, docs, ident, *prefixes):
    """stock age (an independent reader) opens every document under
    docs/PREFIX (given the tenant key) to its original under orig/PREFIX;
    and there is no other document there"""
    jobs = []
    for rel in walk(orig):
        if under(rel, prefixes) and os.path.isfile(os.path.join(orig, rel)):
            jobs.append((os.path.join(orig, rel),
                         os.path.join(docs, rel + ".age"), ident))
    want = {j[1] for j in jobs}
    for rel in walk(docs):
        p = os.path.join(docs, rel)
        if under(rel, prefixes) and not os.path.isdir(p) and p not in want:
            bad("unexpected file %r" % p)
    with ThreadPoolExecutor(max_workers=4) as ex:
        for r in ex.map(one_open, jobs):
            if r:
                bad(r)
    print("opened %d documents" % len(jobs))
    if not jobs:
        bad("no documents to open")
    done()


# ---------------------------------------------------------------- journals

def unescape(b):
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), b)


def journal(path):
    """[(outcome, key16, size, path, reason)], paths unescaped"""
    out = []
    with open(path, "rb") as f:
        for ln in f.read().split(b"\n"):
            if not ln:
                continue
            f5 = ln.split(b"\t")
            if len(f5) != 5:
                bad("journal %s: bad line %r" % (path, ln[:200]))
                continue
            out.append((f5[0].decode(), f5[1].decode(), int(f5[2]),
                        os.fsdecode(unescape(f5[3])),
                        os.fsdecode(unescape(f5[4]))))
    return out


def rel_to(p, root):
    if not p.startswith(root + "/"):
        bad("journal path %r is not under %r" % (p, root))
        return p
    return p[len(root) + 1:]


def cmd_jset(jpath, root, out):
    """writes the journal's (outcome, path below root) set as JSON"""
    s = sorted([o, rel_to(p, root)] for o, _, _, p, _ in journal(jpath))
    with open(out, "w", encoding="utf-8", errors="surrogateescape") as f:
        json.dump(s, f)
    done()


def cmd_jsame(a, b):
    A, B = load(a), load(b)
    if A != B:
        sa, sb = {tuple(x) for x in A}, {tuple(x) for x in B}
        bad("outcome sets differ: only in first %r, only in second %r" %
            (sorted(sa - sb)[:4], sorted(sb - sa)[:4]))
    print("%d documents" % len(A))
    done()


def cmd_shards(full, *parts):
    """the shards' journals are disjoint and together hold the full one"""
    F = journal(full)
    fs = {(o, p) for o, _, _, p, _ in F}
    seen = {}
    for i, jp in enumerate(parts):
        J = journal(jp)
        if not any(o == "would-move" for o, *_ in J):
            bad("shard %d: nothing would move" % i)
        for o, _, _, p, _ in J:
            if p in seen:
                bad("%r in shard %d and shard %d" % (p, seen[p], i))
            seen[p] = i
            if (o, p) not in fs:
                bad("shard %d: %s %r not in the full plan" % (i, o, p))
    for o, p in sorted(fs):
        if p not in seen:
            bad("%s %r in no shard" % (o, p))
    if len(F) != len(fs):
        bad("the full journal lists a path twice")
    print("%d documents in %d shards" % (len(seen), len(parts)))
    done()


def cmd_wouldmove(dry, real):
    """the dry run's would-move set is the real run's moved set, except
    for documents that only a full check finds bad (the dry run reads
    headers only): those must have failed-bad-document in the real run"""
    D = {p for o, _, _, p, _ in journal(dry) if o == "would-move"}
    R = {p: o for o, _, _, p, _ in journal(real)}
    M = {p for p, o in R.items() if o == "moved"}
    for p in sorted(M - D):
        bad("moved but not in the plan: %r" % p)
    for p in sorted(D - M):
        if R.get(p) != "failed-bad-document":
            bad("planned but %s: %r" % (R.get(p), p))
    print("%d planned, %d moved" % (len(D), len(M)))
    done()


def cmd_expect(report, jpath, root, main_outcome, cur_outcome):
    """the run over root (main/ and odd/<outcome>/...) gave each document
    the outcome its folder names: the journal says so, the report counts
    agree with the journal, and the report lists every skipped or failed
    document with its real path; nothing outside root was listed"""
    R = load(report)
    J = journal(jpath)
    got = {}
    for o, _, _, p, _ in J:
        rel = rel_to(p, root)
        if rel in got:
            bad("listed twice: %r" % rel)
        got[rel] = o
    want = {}
    for rel in walk(root):
        p = os.path.join(root, rel)
        parts = rel.split("/")
        if stat.S_ISDIR(os.lstat(p).st_mode):
            continue
        if parts[0] == "main":
            want[rel] = main_outcome
        elif parts[0] == "odd" and len(parts) >= 3:
            want[rel] = cur_outcome if parts[1] == "current" else parts[1]
        else:
            bad("stray file in the tree: %r" % rel)
    for rel in sorted(set(want) | set(got)):
        if want.get(rel) != got.get(rel):
            bad("%r: outcome %s, want %s" % (rel, got.get(rel),
                                              want.get(rel)))
    counts = {}
    for o in got.values():
        counts[o] = counts.get(o, 0) + 1
    for o, v in R["outcomes"].items():
        if v["documents"] != counts.get(o, 0):
            bad("report: %s %d, journal %d" % (o, v["documents"],
                                                counts.get(o, 0)))
    listed = {}
    for d in R["documents"]:
        listed[d["path"]] = d["outcome"]
        if not d.get("reason") or d["reason"] == "-":
            bad("report: no reason for %r" % d["path"])
    want_listed = {os.path.join(root, r): o for r, o in got.items()
                   if o not in ("moved", "current", "would-move")}
    for p in sorted(set(listed) | set(want_listed)):
        if listed.get(p) != want_listed.get(p):
            bad("report documents: %r is %s, want %s" %
                (p, listed.get(p), want_listed.get(p)))
    if R["documents_seen"] != len(J):
        bad("report: documents_seen %d, journal %d" %
            (R["documents_seen"], len(J)))
    print(json.dumps(counts, sort_keys=True))
    done()


def cmd_audit(auditf, old, new, moved, failed, batches):
    """the audit log has the run record and the run's key usage: one unwrap
    per document of the old key at least, one sign per batch of the new"""
    A = load(auditf)
    runs = [r for r in A if r["op"] == "run"]
    want = "mode=rewrap moved=%s failed=%s stopped=0" % (moved, failed)
    if not any(r["detail"] == want for r in runs):
        bad("no run record '%s': %r" % (want, runs[-2:]))
    use = {}
    for r in A:
        if r["op"] == "key.usage" and "command=run " in r["detail"]:
            kv = dict(x.split("=", 1) for x in r["detail"].split())
            use.setdefault(r["key"], []).append(kv)
    if not use:
        bad("no key.usage record with command=run")
    if not any(int(u["unwrap"]) >= int(moved) for u in use.get(old, [])):
        bad("old key: run usage %r, want unwrap >= %s" % (use.get(old),
                                                         moved))
    if not any(u["sign"] == batches for u in use.get(new, [])):
        bad("new key: run usage %r, want sign=%s" % (use.get(new),
                                                     batches))
    done()


def cmd_get(path, expr):
    """prints a Python expression of the JSON in path (as d)"""
    v = eval(expr, {"d": load(path)})
    print(v if isinstance(v, str) else json.dumps(v))


def cmd_insp(path, want):
    """inspect --json: licensed to `want`, the key active, every check ok"""
    d = load(path)
    if d["license"]["key_id"] != want or d["key"]["id"] != want:
        bad("inspect: key %s, want %s" % (d["license"]["key_id"][:16],
                                          want[:16]))
    if d["key"]["state"] != "active" or not d["key"]["in_store"]:
        bad("inspect: key state %s" % d["key"]["state"])
    for name, c in d["checks"].items():
        if c["status"] != "ok":
            bad("inspect: check %s is %s: %s" % (name, c["status"],
                                                 c["message"]))
    if len(d["checks"]) < 6:
        bad("inspect: only checks %s" % sorted(d["checks"]))
    done()


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
CHK_EOF

chk() {
	py "$T/chk.py" "$@"
}

# verify DESC CHK-ARGS...: the checker finds nothing wrong
verify() {
	_v_desc=$1
	shift
	if chk "$@" >"$T/.chk" 2>&1; then
		pass
	else
		fail "$_v_desc:"
		sed 's/^/    /' "$T/.chk" | head -n 20 >&2
	fi
}

# get FILE EXPR: a value of the JSON in FILE (d), or <error>
get() {
	chk get "$1" "$2" 2>/dev/null || echo "<error>"
}

# assert_eq GOT WANT DESC

# assert_gt A B DESC: A > B, both integers

# first_field: the first word of the last command's stdout (a key id)
first_field() {
	head -n 1 "$OUT" | cut -d' ' -f1
}

# outcome REPORT NAME: that outcome's document count
outcome() {
	get "$1" "d['outcomes']['$2']['documents']"
}

# failed_total REPORT
failed_total() {
	get "$1" "sum(d['outcomes'][k]['documents'] for k in ('failed-bad-document', 'failed-changed', 'failed-io'))"
}

# save_report NAME: the last command's stdout (run --json) as $T/NAME
save_report() {
	cp "$OUT" "$T/$1"
	json_ok "$T/$1"
}

# sample ROOT KEY N: `inspect --json` and `unprotect` of the first N of a
# set of awkward documents under ROOT/main: the key, every check, the bytes
SAMPLES="edge/raw/empty|edge/zstd/k64-1|edge/raw/k64+1|\
edge/raw/new${NL}line.bin|edge/zstd/with space/a b c.txt|edge/raw/-dash.txt|\
edge/raw/one|edge/zstd/k64|edge/raw/big/m6-1|edge/zstd/big/m3|\
edge/zstd/caf$(printf '\303\251') $(printf '\303\274').txt|edge/raw/k128+1"
sample() {
	_s_i=0
	_s_ifs=$IFS
	IFS='|'
	set -f
	for _s in $SAMPLES; do
		IFS=$_s_ifs
		_s_i=$((_s_i + 1))
		if [ "$_s_i" -gt "$3" ]; then
			break
		fi
		if [ ! -f "$T/orig/main/$_s" ]; then
			fail "sample '$_s' is not in the corpus"
			continue
		fi
		expect_rc 0 "$RP" inspect "$1/main/$_s.age" --json
		cp "$OUT" "$T/.insp"
		verify "inspect '$_s'" insp "$T/.insp" "$2"
		rm -f "$T/.plain"
		expect_rc 0 "$RP" unprotect "$1/main/$_s.age" -o "$T/.plain"
		assert_same "$T/.plain" "$T/orig/main/$_s"
	done
	IFS=$_s_ifs
	set +f
}

# no_tmp_count DIR: how many leftover temporary files are under DIR (one
# byte per file: a name may hold a newline, so lines would miscount)
no_tmp_count() {
	find "$1" -name '.*.rp-tmp-*' -printf x | wc -c | tr -d ' '
}

# ------------------------------------------------------------------ keys

case_ "setup"
# Fixture keys, made here once (fast: not under the sanitizers)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	-out "$T/ka.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 \
	-out "$T/kb.pem" 2>/dev/null
for _k in kd ke plain; do
	age-keygen -o "$T/$_k.id" 2>/dev/null
done

expect_rc 0 "$RP" init
# C: some documents, backed up, later revoked
expect_rc 0 "$RP" key create --alg x25519 --activate
KC=$(first_field)
W=$T/w
mkdir -p "$W/odd/skipped-revoked-key" "$W/odd/skipped-unknown-key" \
	"$W/odd/skipped-unlicensed" "$W/odd/skipped-not-age" \
	"$W/odd/failed-bad-document" "$W/odd/skipped-not-file" \
	"$W/odd/current" "$T/orig/odd/current" "$T/src" "$T/outside/sub"
mkfile "$T/src/r1" 3000
mkfile "$T/src/b200k" 200000
mkfile "$T/src/b5k" 5000
printf 'some text, some text, some text\n' >"$T/src/t"
expect_rc 0 "$RP" protect "$T/src/r1" -o "$W/odd/skipped-revoked-key/r1.age"
expect_rc 0 "$RP" protect "$T/src/t" --compress \
	-o "$W/odd/skipped-revoked-key/r2 z.age"
expect_rc 0 "$RP" key backup "$KC" -o "$T/kc.rpkb"

# A (RSA-2048, imported): the main corpus
expect_rc 0 "$RP" key import "$T/ka.pem"
KA=$(first_field)
expect_rc 0 "$RP" rekey --to "$KA"
chk corpus "$T/orig/main" "$NUM_DIRS" "$PER_DIR" 7 >"$T/.n"
N_MAIN=$(cat "$T/.n")
cp -a "$T/orig/main" "$W/main"
# shellcheck disable=SC2016 # expanded by the inner sh
expect_rc 0 sh -c 'cd "$1" && xargs -0 "$2" protect <"$3" >/dev/null' \
	sh "$W/main" "$RP" "$T/list-plain"
# shellcheck disable=SC2016
expect_rc 0 sh -c 'cd "$1" && xargs -0 "$2" protect --compress \
	--owner alice@example.org <"$3" >/dev/null' \
	sh "$W/main" "$RP" "$T/list-zstd"
# shellcheck disable=SC2016
expect_rc 0 sh -c 'cd "$1" && xargs -0 "$2" protect --owner "bob smith" \
	<"$3" >/dev/null' sh "$W/main" "$RP" "$T/list-owner"
chk drop_plain "$W/main"
chk vary_meta "$W/main" "$AS_ROOT"
_n=$(find "$W/main" -type f -name '*.age' -printf x | wc -c | tr -d ' ')
assert_eq "$_n" "$N_MAIN" "documents in the corpus"

# outside the tree, reached only through a symlink in it
for _o in o1 sub/o2; do
	mkfile "$T/src/out" 100
	expect_rc 0 "$RP" protect "$T/src/out" -o "$T/outside/$_o.age"
done

# damaged documents under A
B=$W/odd/failed-bad-document
expect_rc 0 "$RP" protect "$T/src/b200k" -o "$T/src/b200k.age"
expect_rc 0 "$RP" protect "$T/src/b5k" -o "$T/src/b5k.age"
expect_rc 0 "$RP" protect "$T/src/b200k" --compress -o "$T/src/z200k.age"
head -c 300 "$T/src/b5k.age" >"$B/trunc-header.age"
# the license gives the size of an uncompressed payload: this is short
head -c 150000 "$T/src/b200k.age" >"$B/trunc-payload.age"
# a MAC character, a license character, a recipient stanza character
# (each swapped for another base64 character: the header still parses)
swap_b64() { # FILE OFFSET
	if [ "$(byte_at "$1" "$2")" = 65 ]; then
		put_byte "$1" "$2" 66
	else
		put_byte "$1" "$2" 65
	fi
}
cp "$T/src/b5k.age" "$B/mac.age"
swap_b64 "$B/mac.age" $(($(header_len "$B/mac.age") - 44))
_lic=$(grep -a -n -m 1 '^-> rp-license' "$T/src/b5k.age" | cut -d: -f1)
_off=$(head -n "$_lic" "$T/src/b5k.age" | wc -c | tr -d ' ')
cp "$T/src/b5k.age" "$B/license.age"
swap_b64 "$B/license.age" $((_off + 10))
_off=$(head -n 2 "$T/src/b5k.age" | wc -c | tr -d ' ')
cp "$T/src/b5k.age" "$B/stanza.age"
swap_b64 "$B/stanza.age" $((_off + 20))
printf 'age-encryption.org/v1\n-> X25519\n!!!!\n' >"$B/garbage.age"
for _f in mac license stanza; do
	if cmp -s "$B/$_f.age" "$T/src/b5k.age"; then
		fail "could not damage $_f.age"
	fi
done
# a compressed one cut short (only its last chunk can tell), one extended
head -c $(($(file_size "$T/src/z200k.age") - 100)) "$T/src/z200k.age" \
	>"$B/trunc-zstd.age"
cp "$T/src/b5k.age" "$B/extended.age"
printf 'more' >>"$B/extended.age"
# only for the reencrypt case: damage that only decrypting it all finds
cp "$T/src/b200k.age" "$T/src/mid-payload.age"
_b=$(byte_at "$T/src/mid-payload.age" 100000)
put_byte "$T/src/mid-payload.age" 100000 $((_b ^ 4))

expect_rc 0 "$RP" key revoke "$KC" --yes

# under a key of another store
S2=$T/store2
expect_rc 0 "$RP" init --store "$S2"
expect_rc 0 "$RP" key create --alg x25519 --activate --store "$S2"
expect_rc 0 "$RP" protect "$T/src/r1" --store "$S2" \
	-o "$W/odd/skipped-unknown-key/u1.age"
expect_rc 0 "$RP" protect "$T/src/t" --compress --store "$S2" \
	-o "$W/odd/skipped-unknown-key/u2.age"

# plain age (one to a key outside the store, one to D before its import)
age -r "$(age-keygen -y "$T/plain.id")" -o "$W/odd/skipped-unlicensed/p1.age" \
	"$T/src/r1"
age -r "$(age-keygen -y "$T/kd.id")" -o "$W/odd/skipped-unlicensed/p2.age" \
	"$T/src/t"

# not age; one with a newline in its name
cp "$T/src/t" "$W/odd/skipped-not-age/notes.txt"
mkfile "$W/odd/skipped-not-age/not age${NL}file.bin" 50
: >"$W/odd/skipped-not-age/empty"

# not files: symlinks in and out of the tree, a dangling one, a FIFO
ln -s ../../main/edge/raw/one.age "$W/odd/skipped-not-file/link-in.age"
ln -s "$T/outside" "$W/odd/skipped-not-file/outlink"
ln -s nowhere.age "$W/odd/skipped-not-file/dangling.age"
mkfifo "$W/odd/skipped-not-file/fifo"

# B (RSA-3072, imported) active; a few documents already under it
expect_rc 0 "$RP" key import "$T/kb.pem"
KB=$(first_field)
expect_rc 0 "$RP" rekey --to "$KB"
mkfile "$T/orig/odd/current/c1" 70000
cp "$T/src/t" "$T/orig/odd/current/c2"
expect_rc 0 "$RP" protect "$T/orig/odd/current/c1" \
	-o "$W/odd/current/c1.age"
expect_rc 0 "$RP" protect "$T/orig/odd/current/c2" --compress \
	-o "$W/odd/current/c2.age"

# a leftover of a killed run (a dry run keeps it, a run removes it)
printf 'torn' >"$W/main/d00/.f0001.age.rp-tmp-0123456789ab"

# sandboxes for the later cases, copies of this state (A archived, B
# active): K (signals), IO (sync/uring), RE (reencrypt), B1 (--batch 1)
for _s in K IOS RE B1; do
	mkdir -p "$T/$_s/tree/main"
	cp -a "$T/store" "$T/$_s/store"
done
cp -a "$W/main/." "$T/K/tree/main/"
rm -f "$T/K/tree/main/d00/.f0001.age.rp-tmp-0123456789ab"
for _s in IOS RE; do
	cp -a "$W/main/d00" "$W/main/edge" "$T/$_s/tree/main/"
	cp -a "$W/odd" "$T/$_s/tree/"
done
rm -f "$T/IOS/tree/main/d00/.f0001.age.rp-tmp-0123456789ab" \
	"$T/RE/tree/main/d00/.f0001.age.rp-tmp-0123456789ab"
cp "$T/src/mid-payload.age" "$T/RE/tree/odd/failed-bad-document/"
cp -a "$T/IOS" "$T/IOU"
cp -a "$W/main/d02" "$T/B1/tree/main/"

chk snap "$W" "$T/snap0"
chk snap "$T/outside" "$T/snap-out0"
chk scan "$W" "$T/scan0" main

# ------------------------------------------------------ dry run and shards

case_ "dry run"
# exit 1: damage the header shows is found by a dry run too
expect_rc 1 timeout 120 "$RP" run "$W" --dry-run --json --journal "$T/j-dry"
save_report r-dry.json
chk snap "$W" "$T/snap-dry"
verify "a dry run changed the tree" same "$T/snap0" "$T/snap-dry"
chk snap "$T/outside" "$T/snap-out"
verify "a dry run changed the outside" same "$T/snap-out0" "$T/snap-out"
assert_json "$T/r-dry.json" '["dry_run"]' true
assert_eq "$(outcome "$T/r-dry.json" moved)" 0 "dry run: moved"
assert_eq "$(get "$T/r-dry.json" "d['temporary_files_removed']")" 0 \
	"dry run: temporary files removed"
# every main document, and the damaged ones a header read cannot tell
# (mac, license, stanza, trunc-payload, trunc-zstd, extended)
_want=$((N_MAIN + 6))
assert_eq "$(outcome "$T/r-dry.json" would-move)" "$_want" \
	"dry run: would-move (main and 6 damaged)"
assert_grep "$T/j-dry" "would-move	${KA%"${KA#????????????????}"}"

case_ "shards"
_sum=0
for _i in 0 1 2; do
	run_rp timeout 120 "$RP" run "$W" --dry-run --json --shard "$_i/3" \
		--journal "$T/j-s$_i"
	cp "$OUT" "$T/r-s$_i.json"
	json_ok "$T/r-s$_i.json"
	# exit 1 exactly when the shard holds a document that failed
	if [ "$(failed_total "$T/r-s$_i.json")" -gt 0 ] 2>/dev/null; then
		_rc=1
	else
		_rc=0
	fi
	assert_eq "$LAST_RC" "$_rc" "shard $_i/3: exit code"
	_sum=$((_sum + $(outcome "$T/r-s$_i.json" would-move)))
done
assert_eq "$_sum" "$(outcome "$T/r-dry.json" would-move)" \
	"would-move summed over the 3 shards"
verify "shard journals" shards "$T/j-dry" "$T/j-s0" "$T/j-s1" "$T/j-s2"
chk jset "$T/j-s1" "$W" "$T/set-s1"
chk jset "$T/j-s2" "$W" "$T/set-s2"
run_rp env JOB_COMPLETION_INDEX=1 timeout 120 "$RP" run "$W" --dry-run \
	--quiet --shard 3 --journal "$T/j-jci"
chk jset "$T/j-jci" "$W" "$T/set-jci"
verify "--shard 3 with JOB_COMPLETION_INDEX=1 is shard 1/3" \
	jsame "$T/set-s1" "$T/set-jci"
run_rp env SLURM_ARRAY_TASK_ID=2 timeout 120 "$RP" run "$W" --dry-run \
	--quiet --shard 3 --journal "$T/j-slurm"
chk jset "$T/j-slurm" "$W" "$T/set-slurm"
verify "--shard 3 with SLURM_ARRAY_TASK_ID=2 is shard 2/3" \
	jsame "$T/set-s2" "$T/set-slurm"
expect_rc 2 "$RP" run "$W" --dry-run --shard 3/3
expect_rc 2 env -u JOB_COMPLETION_INDEX -u SLURM_ARRAY_TASK_ID \
	"$RP" run "$W" --dry-run --shard 3
expect_rc 2 "$RP" run "$W" --quiet
chk snap "$W" "$T/snap-dry"
verify "sharded dry runs changed the tree" same "$T/snap0" "$T/snap-dry"

# ------------------------------------------- migration 1: RSA-2048 -> 3072

case_ "migration A (rsa2048) -> B (rsa3072)"
expect_rc 1 timeout 120 "$RP" run "$W" --in-place --quiet \
	--report "$T/r-m1.json" --journal "$T/j-m1"
json_ok "$T/r-m1.json"
verify "outcomes" expect "$T/r-m1.json" "$T/j-m1" "$W" moved current
assert_eq "$(outcome "$T/r-m1.json" moved)" "$N_MAIN" "moved"
assert_eq "$(outcome "$T/r-m1.json" current)" 2 "current"
assert_eq "$(outcome "$T/r-m1.json" skipped-revoked-key)" 2 "revoked"
assert_eq "$(outcome "$T/r-m1.json" skipped-unknown-key)" 2 "unknown key"
assert_eq "$(outcome "$T/r-m1.json" skipped-unlicensed)" 2 "unlicensed"
assert_eq "$(outcome "$T/r-m1.json" skipped-not-age)" 3 "not age"
assert_eq "$(outcome "$T/r-m1.json" skipped-not-file)" 4 "not files"
assert_eq "$(outcome "$T/r-m1.json" failed-bad-document)" 8 "bad"
assert_eq "$(get "$T/r-m1.json" "[k.get('moved') for k in d['keys'] if k['key'] == '$KA']")" \
	"[$N_MAIN]" "report: key A moved"
assert_eq "$(get "$T/r-m1.json" "[k.get('skipped-revoked-key') for k in d['keys'] if k['key'] == '$KC']")" \
	"[2]" "report: key C revoked"
assert_eq "$(get "$T/r-m1.json" "[k.get('current') for k in d['keys'] if k['key'] == '$KB']")" \
	"[2]" "report: key B current"
assert_eq "$(get "$T/r-m1.json" "d['active_key']")" "$KB" "active key"
assert_eq "$(get "$T/r-m1.json" "d['temporary_files_removed']")" 1 \
	"leftover removed"
assert_no_tmp "$W"
verify "dry-run plan vs run" wouldmove "$T/j-dry" "$T/j-m1"
chk snap "$W" "$T/snap1"
verify "skipped documents changed" same "$T/snap0" "$T/snap1" odd
chk snap "$T/outside" "$T/snap-out"
verify "documents outside the tree changed" same "$T/snap-out0" \
	"$T/snap-out"
verify "mode, owner, mtime" meta "$T/snap0" "$T/snap1" main
chk scan "$W" "$T/scan1" main
verify "keys after migration 1" keys "$T/scan1" "$KB" rsa3072 "$KA"
verify "rewrap keeps the payload" payload "$T/scan0" "$T/scan1" same
chk scan "$W" "$T/scan1all"
verify "default batches" batches "$T/scan1all" "$KB" multi
assert_gt "$(get "$T/r-m1.json" "d['batches']['max']")" 1 "report: batch max"
verify "documents open (age)" open "$T/orig" "$W" "$T/kb.pem" main \
	odd/current
sample "$W" "$KB" 12

# ------------------------------------------- migration 2: RSA -> X25519

case_ "migration B (rsa3072) -> D (x25519)"
expect_rc 0 "$RP" key import "$T/kd.id"
KD=$(first_field)
expect_rc 0 "$RP" rekey --to "$KD"
expect_rc 1 timeout 120 "$RP" run "$W" --in-place --json --quiet \
	--journal "$T/j-m2"
save_report r-m2.json
verify "outcomes" expect "$T/r-m2.json" "$T/j-m2" "$W" moved moved
assert_eq "$(outcome "$T/r-m2.json" moved)" $((N_MAIN + 2)) "moved"
assert_eq "$(outcome "$T/r-m2.json" current)" 0 "current"
assert_eq "$(get "$T/r-m2.json" "[k.get('moved') for k in d['keys'] if k['key'] == '$KB']")" \
	"[$((N_MAIN + 2))]" "report: key B moved"
assert_no_tmp "$W"
chk snap "$W" "$T/snap2"
verify "skipped documents changed" same "$T/snap0" "$T/snap2" \
	odd/skipped-revoked-key odd/skipped-unknown-key odd/skipped-unlicensed \
	odd/skipped-not-age odd/skipped-not-file odd/failed-bad-document
chk snap "$T/outside" "$T/snap-out"
verify "documents outside the tree changed" same "$T/snap-out0" \
	"$T/snap-out"
verify "mode, owner, mtime" meta "$T/snap0" "$T/snap2" main
chk scan "$W" "$T/scan2" main odd/current
verify "keys after migration 2" keys "$T/scan2" "$KD" x25519 "$KA" "$KB"
chk scan "$W" "$T/scan2m" main
verify "rewrap keeps the payload" payload "$T/scan0" "$T/scan2m" same
verify "documents open (age)" open "$T/orig" "$W" "$T/kd.id" main \
	odd/current
sample "$W" "$KD" 6

# --------------------------------------------------------- SIGTERM

case_ "SIGTERM"
K=$T/K
"$RP" run "$K/tree" --store "$K/store" --in-place --quiet \
	--report "$T/r-term.json" --journal "$T/j-term" \
	>"$T/.term-out" 2>"$T/.term-err" &
_pid=$!
# wait for the journal's first block (some documents moved), then stop
wait_for -s "$T/j-term"
kill -TERM "$_pid" 2>/dev/null || true
_rc=0
wait "$_pid" || _rc=$?
assert_eq "$_rc" 8 "exit code after SIGTERM"
json_ok "$T/r-term.json"
assert_json "$T/r-term.json" '["stopped"]' true
_m1=$(outcome "$T/r-term.json" moved)
assert_gt "$_m1" 0 "moved before the stop"
assert_gt "$N_MAIN" "$_m1" "the stop came before the end"
assert_eq "$(failed_total "$T/r-term.json")" 0 "failed"
assert_no_tmp "$K"
expect_rc 0 "$RP" audit --json --store "$K/store"
assert_grep "$OUT" "stopped=1"
expect_rc 0 timeout 120 "$RP" run "$K/tree" --store "$K/store" --in-place \
	--quiet --json --journal "$T/j-term2"
save_report r-term2.json
assert_eq "$(outcome "$T/r-term2.json" moved)" $((N_MAIN - _m1)) \
	"second run: moved"
assert_eq "$(outcome "$T/r-term2.json" current)" "$_m1" "second run: current"
assert_json "$T/r-term2.json" '["stopped"]' false
echo "$IT_NAME: SIGTERM after $_m1 of $N_MAIN documents; the rest took" \
	"$(get "$T/r-term2.json" "d['seconds']") s"

# ---------------------------------------------------------- kill -9

case_ "kill -9 and resume"
expect_rc 0 "$RP" key import "$T/ke.id" --store "$K/store"
KE=$(first_field)
expect_rc 0 "$RP" rekey --to "$KE" --store "$K/store"
# kill at random moments from 50 ms to 600 ms, or to 80% of what a whole
# run took above if that is shorter (a kill must land inside the run)
_max=$(get "$T/r-term2.json" "max(100, min(600, int(d['seconds'] * 800)))")
_kills=
_hits=0
for _i in 1 2 3 4 5; do
	_r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	_ms=$((50 + _r % (_max - 49)))
	rm -f "$T/j-kill"
	"$RP" run "$K/tree" --store "$K/store" --in-place --quiet \
		--journal "$T/j-kill" >/dev/null 2>&1 &
	_pid=$!
	if [ "$_i" = 3 ]; then
		# one kill well into the run whatever the machine's load: once
		# this run's journal shows a document it moved (the journal is
		# written out 4 KiB at a time), then 0-99 ms later
		_w=0
		while ! grep -q '^moved' "$T/j-kill" 2>/dev/null &&
			kill -0 "$_pid" 2>/dev/null && [ "$_w" -lt 3000 ]; do
			sleep 0.01
			_w=$((_w + 1))
		done
		_ms=$((_r % 100))
		_kills="$_kills [moved+]"
	fi
	sleep "$((_ms / 1000)).$(printf '%03d' $((_ms % 1000)))"
	kill -9 "$_pid" 2>/dev/null || true
	_rc=0
	wait "$_pid" 2>/dev/null || _rc=$?
	if [ "$_rc" = 137 ]; then
		_hits=$((_hits + 1))
		_kills="$_kills $_ms"
	else
		_kills="$_kills (over before $_ms: exit $_rc)"
	fi
done
assert_gt "$_hits" 2 "kills that hit a running run"
# the run's own leftovers: those in the store (audit head) are the store's
_left=$(no_tmp_count "$K/tree")
echo "$IT_NAME: kill -9 after $_kills ms; $_left temporary files left"
expect_rc 0 timeout 120 "$RP" run "$K/tree" --store "$K/store" --in-place \
	--quiet --json --journal "$T/j-resume"
save_report r-resume.json
assert_eq "$(failed_total "$T/r-resume.json")" 0 "resume: failed"
_mv=$(outcome "$T/r-resume.json" moved)
_cur=$(outcome "$T/r-resume.json" current)
assert_eq "$((_mv + _cur))" "$N_MAIN" "resume: moved + current"
assert_gt "$_cur" 0 "documents moved before the kills"
# leftovers are not documents: the counts add up to what was seen
assert_eq "$(get "$T/r-resume.json" "d['documents_seen']")" "$N_MAIN" \
	"resume: documents seen"
assert_eq "$(get "$T/r-resume.json" "d['temporary_files_removed']")" \
	"$_left" "resume: leftovers removed"
assert_no_tmp "$K"
chk scan "$K/tree" "$T/scan-k" main
verify "keys after the kills" keys "$T/scan-k" "$KE" x25519 "$KA" "$KB"
verify "documents open after the kills (age)" open "$T/orig" "$K/tree" \
	"$T/ke.id" main
expect_rc 0 "$RP" audit verify --store "$K/store"

# ----------------------------------------------------- io: sync vs uring

case_ "--io sync and --io uring"
for _io in sync uring; do
	_d=$T/IOS
	if [ "$_io" = uring ]; then
		_d=$T/IOU
	fi
	expect_rc 1 timeout 120 "$RP" run "$_d/tree" --store "$_d/store" \
		--in-place --json --quiet --io "$_io" --journal "$T/j-$_io"
	save_report "r-$_io.json"
	if [ "$_io" = sync ] || ! grep -q 'io_uring is not available' "$ERR"
	then
		assert_json "$T/r-$_io.json" '["io"]' "$_io"
		# with the ring, the walker opened and read the headers
		_ra=$(get "$T/r-$_io.json" "d['read_ahead']")
		if [ "$_io" = sync ]; then
			assert_eq "$_ra" 0 "--io sync: documents read ahead"
		else
			assert_gt "$_ra" 10 "--io uring: documents read ahead"
		fi
	fi
	chk jset "$T/j-$_io" "$_d/tree" "$T/set-$_io"
	verify "--io $_io: documents open (age)" open "$T/orig" "$_d/tree" \
		"$T/kb.pem" main/d00 main/edge odd/current
done
verify "same outcome per path" jsame "$T/set-sync" "$T/set-uring"
verify "--io uring: outcomes" expect "$T/r-uring.json" "$T/j-uring" \
	"$T/IOU/tree" moved current

# ----------------------------------------------------------- reencrypt

case_ "--mode reencrypt"
chk scan "$T/RE/tree" "$T/scan-re0" main
chk snap "$T/RE/tree" "$T/snap-re0"
expect_rc 1 timeout 120 "$RP" run "$T/RE/tree" --store "$T/RE/store" \
	--in-place --json --quiet --mode reencrypt --durability each \
	--journal "$T/j-re"
save_report r-re.json
assert_json "$T/r-re.json" '["mode"]' reencrypt
assert_json "$T/r-re.json" '["durability"]' each
# the payload damage that a rewrap cannot see fails a reencrypt
verify "outcomes" expect "$T/r-re.json" "$T/j-re" "$T/RE/tree" moved current
chk scan "$T/RE/tree" "$T/scan-re1" main
verify "reencrypt: new nonce and payload" payload "$T/scan-re0" \
	"$T/scan-re1" differ
verify "keys after reencrypt" keys "$T/scan-re1" "$KB" rsa3072 "$KA"
chk snap "$T/RE/tree" "$T/snap-re1"
verify "skipped documents changed" same "$T/snap-re0" "$T/snap-re1" odd
verify "mode, owner, mtime" meta "$T/snap-re0" "$T/snap-re1" main
verify "documents open (age)" open "$T/orig" "$T/RE/tree" "$T/kb.pem" \
	main/d00 main/edge odd/current
REPROTECT_STORE=$T/RE/store
sample "$T/RE/tree" "$KB" 4
REPROTECT_STORE=$T/store

# ------------------------------------------------------------- batches

case_ "--batch 1"
expect_rc 0 timeout 120 "$RP" run "$T/B1/tree" --store "$T/B1/store" \
	--in-place --json --quiet --batch 1 --jobs 1 --durability none \
	--journal "$T/j-b1"
save_report r-b1.json
assert_json "$T/r-b1.json" '["durability"]' none
_n=$(outcome "$T/r-b1.json" moved)
assert_eq "$_n" "$PER_DIR" "moved"
assert_eq "$(get "$T/r-b1.json" "d['batches']['max']")" 1 "batch max"
assert_eq "$(get "$T/r-b1.json" "d['batches']['count']")" "$_n" "batches"
chk scan "$T/B1/tree" "$T/scan-b1" main
verify "every license alone in its batch" batches "$T/scan-b1" "$KB" one
for _f in d02/f0000 d02/f0005; do
	_p=$(find "$T/B1/tree/main" -name "$(basename "$_f")*.age" | head -n 1)
	expect_rc 0 "$RP" inspect "$_p" --json --store "$T/B1/store"
	cp "$OUT" "$T/.insp"
	assert_json "$T/.insp" '["license"]["signature"]["batch_size"]' 1
	verify "inspect $_f" insp "$T/.insp" "$KB"
done
verify "documents open (age)" open "$T/orig" "$T/B1/tree" "$T/kb.pem" \
	main/d02

# --------------------------------------------------------------- audit

case_ "audit"
expect_rc 0 "$RP" audit verify
assert_grep "$OUT" "audit log intact"
expect_rc 0 "$RP" audit --json
cp "$OUT" "$T/audit.json"
json_ok "$T/audit.json"
verify "migration 1 in the audit log" audit "$T/audit.json" "$KA" "$KB" \
	"$(outcome "$T/r-m1.json" moved)" "$(failed_total "$T/r-m1.json")" \
	"$(get "$T/r-m1.json" "d['batches']['count']")"
verify "migration 2 in the audit log" audit "$T/audit.json" "$KB" "$KD" \
	"$(outcome "$T/r-m2.json" moved)" "$(failed_total "$T/r-m2.json")" \
	"$(get "$T/r-m2.json" "d['batches']['count']")"
for _s in K IOS IOU RE B1; do
	expect_rc 0 "$RP" audit verify --store "$T/$_s/store"
done

it_done
