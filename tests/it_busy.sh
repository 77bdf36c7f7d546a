#!/bin/sh
# it_busy.sh: `reprotect run` on a busy file server (issue 8): other
# processes change the store, the job control of the shell, a second run,
# the limits of the process.
#  1. a key's life cycle changed by another process during a run: the
#     target key revoked and destroyed, the source key revoked, a rekey.
#     A run whose target is no longer active halts (exit 8, the key named);
#     a revoked source key's documents stay under it. The strict guarantee:
#     a document is under the target key only if it was renamed (ctime)
#     before the command that deactivated the target returned, and nothing
#     is damaged (stock age opens every document that changed).
#     With test hooks the run is held by REPROTECT_TEST_PAUSE (nth form:
#     run:before-commit, run:walk); without them by SIGSTOP while the
#     command starts (the command may wait for a commit: the store lock).
#     These runs copy (--copy: their temporary files show how far they
#     are); tests/it_inplace.sh revokes the target during an in-place run.
#  2. SIGSTOP/SIGCONT every 50 ms for a whole run (--io uring and sync):
#     exit 0, no failed-*, every `moved` journal line is a document really
#     under the new key, verify passes.
#  3. two runs at once on one tree and store: no failed-*, each document
#     moved by exactly one, current or skipped-busy in the other; a third
#     run finishes; verify passes.
#  4. ulimit -n 64: exit 0, all moved; ulimit -n 16: exit 6 or 8 naming
#     "open files", nothing damaged, a rerun without the limit finishes.
#  5. (release build only: not under ASan) ulimit -v stepped from 30 MB to
#     300 MB, 1 MB apart where the run starts to finish: exit 0, 1, 6 or
#     8, never a signal, no "BUG", nothing damaged, a rerun without the
#     limit finishes.
# Usage: sh tests/it_busy.sh PATH/TO/reprotect
set -eu
# shellcheck source=tests/it_lib.sh
. "$(dirname "$0")/it_lib.sh"
need python3 age age-keygen timeout

export REPROTECT_PASSPHRASE='it-busy passphrase'
unset REPROTECT_STORE REPROTECT_TEST_FAULT REPROTECT_TEST_CRASH \
	REPROTECT_TEST_PAUSE

HOOKS=0
if grep -q REPROTECT_TEST_PAUSE "$RP"; then
	HOOKS=1
fi
ASAN=0
case $RP in
*/build-asan/*) ASAN=1 ;;
esac
if grep -q __asan_init "$RP" ||
	ldd "$RP" 2>/dev/null | grep -q -e libasan -e libclang_rt.asan; then
	ASAN=1
fi

# the checker: reads documents, journals and snapshots on its own (never
# through reprotect)
cat >"$T/chk.py" <<'CHK_EOF'
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

PROBLEMS = []


def bad(msg):
    PROBLEMS.append(msg)


def done(summary=None):
    if summary is not None:
        print(summary)
    for m in PROBLEMS[:12]:
        print(m)
    if len(PROBLEMS) > 12:
        print("... and %d more" % (len(PROBLEMS) - 12))
    sys.exit(1 if PROBLEMS else 0)


def key_of(path):
    """the tenant key id (hex) of the document's license, '' if none"""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 16)
    except OSError as e:
        return "<%s>" % e.strerror
    lines = data.split(b"\n")
    if lines[0] != b"age-encryption.org/v1":
        return ""
    i = 1
    while i < len(lines):
        ln = lines[i]
        i += 1
        if not ln.startswith(b"-> "):
            return ""
        body = b""
        while i < len(lines):
            bl = lines[i]
            i += 1
            body += bl
            if len(bl) < 64:
                break
        if ln.split(b" ")[1] != b"rp-license":
            continue
        try:
            raw = base64.b64decode(body + b"=" * (-len(body) % 4))
        except ValueError:
            return ""
        j = 0
        while j + 3 <= len(raw):
            t, n = raw[j], int.from_bytes(raw[j + 1:j + 3], "big")
            if t == 0x03:
                return raw[j + 3:j + 3 + n].hex()
            j += 3 + n
        return ""
    return ""


def docs(root):
    """rel path -> absolute, for the documents under root (no temps)"""
    out = {}
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if ".rp-tmp-" in n:
                out.setdefault("<tmp>", []).append(rel)
            elif n.endswith(".age"):
                out[rel] = p
    return out


def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cmd_snap(root, outf):
    """every document: its key, sha-256 and ctime"""
    s = {}
    for rel, p in docs(root).items():
        if rel == "<tmp>":
            continue
        s[rel] = {"key": key_of(p), "sha": sha(p),
                  "ctime": os.lstat(p).st_ctime_ns}
    with open(outf, "w") as f:
        json.dump(s, f)
    print(len(s))


def opens(job):
    doc, plain, ids = job
    args = ["age", "-d"]
    for i in ids:
        args += ["-i", i]
    r = subprocess.run(args + [doc], capture_output=True)
    if r.returncode != 0:
        return "%s: stock age cannot open it: %s" % (
            doc, r.stderr.decode(errors="replace").strip()[:150])
    with open(plain, "rb") as f:
        if r.stdout != f.read():
            return "%s: opens to other bytes" % doc
    return None


def cmd_life(snapf, root, *opts):
    """each document of the snapshot is there, and either byte-identical
    or under --target (and then, if --t1 is given and its key before was
    not one of --late, renamed before --t1; if --plain is given, stock age
    opens it with --ids to its plaintext). --must-move KEY: every document
    that was under KEY is now under the target. Prints counts."""
    o = {"--t1": None, "--target": "", "--late": "", "--plain": None,
         "--ids": "", "--must-move": ""}
    for k, v in zip(opts[::2], opts[1::2]):
        o[k] = v
    snap = json.load(open(snapf))
    now = docs(root)
    for t in now.pop("<tmp>", []):
        bad("temporary file left: %s" % t)
    late = {k for k in o["--late"].split(",") if k}
    must = {k for k in o["--must-move"].split(",") if k}
    t1 = int(o["--t1"]) if o["--t1"] else None
    jobs = []
    moved = after = same = 0
    for rel in sorted(set(snap) | set(now)):
        if rel not in now:
            bad("vanished: %s" % rel)
            continue
        if rel not in snap:
            bad("appeared: %s" % rel)
            continue
        p = now[rel]
        was = snap[rel]["key"]
        if sha(p) == snap[rel]["sha"]:
            same += 1
            if was in must:
                bad("%s: still under %s, want moved" % (rel, was[:16]))
            continue
        k = key_of(p)
        if k != o["--target"]:
            bad("%s: changed, under key %s (was %s), want %s or as it was"
                % (rel, k[:16] or "-", was[:16], o["--target"][:16]))
            continue
        moved += 1
        ct = os.lstat(p).st_ctime_ns
        if t1 is not None and ct >= t1:
            after += 1
            if was not in late:
                bad("%s: moved from %s to the target %.3f s after the "
                    "life-cycle command returned" % (rel, was[:16],
                                                     (ct - t1) / 1e9))
        if o["--plain"]:
            jobs.append((p, os.path.join(o["--plain"], rel[:-4]),
                         o["--ids"].split(",")))
    with ThreadPoolExecutor(max_workers=4) as ex:
        for r in ex.map(opens, jobs):
            if r:
                bad(r)
    done("moved %d (%d after the command), untouched %d" %
         (moved, after, same))


def unescape(b):
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), b)


def journal(path):
    """[(outcome, key16, path, reason)]"""
    out = []
    with open(path, "rb") as f:
        for ln in f.read().split(b"\n"):
            if not ln:
                continue
            f5 = ln.split(b"\t")
            if len(f5) != 5:
                bad("journal %s: bad line %r" % (path, ln[:120]))
                continue
            out.append((f5[0].decode(), f5[1].decode(),
                        os.fsdecode(unescape(f5[3])),
                        os.fsdecode(unescape(f5[4]))))
    return out


def counts(j):
    c = {}
    for o, *_ in j:
        c[o] = c.get(o, 0) + 1
    return json.dumps(c, sort_keys=True)


def cmd_moved(jpath, target):
    """each `moved` line is a document under target; no failed-* line"""
    j = journal(jpath)
    for o, _, p, why in j:
        if o == "moved" and key_of(p) != target:
            bad("journal says moved, but %s is under %s" %
                (p, key_of(p)[:16] or "-"))
    for o, _, p, why in j:
        if o.startswith("failed"):
            bad("%s %s: %s" % (o, p, why))
    done(counts(j))


def cmd_stopped(jpath):
    """every failed-* line says the run stopped (no journal: none)"""
    j = journal(jpath) if os.path.exists(jpath) else []
    for o, _, p, why in j:
        if o.startswith("failed") and "the run stopped" not in why:
            bad("%s %s: %s (want 'the run stopped')" % (o, p, why))
    done(counts(j))


def cmd_reasons(jpath, outcome, word):
    """every OUTCOME line's reason holds word; prints their number"""
    n = 0
    for o, _, p, why in journal(jpath):
        if o == outcome:
            n += 1
            if word not in why:
                bad("%s %s: reason %r lacks %r" % (o, p, why, word))
    done(str(n))


def cmd_two(j1, j2, root):
    """two runs at once: each journal lists each document once, none
    failed; each document moved by exactly one run, current or
    skipped-busy in the other"""
    want = {os.path.join(root, r) for r in docs(root) if r != "<tmp>"}
    got = []
    for jp in (j1, j2):
        m = {}
        for o, _, p, why in journal(jp):
            if p in m:
                bad("%s: %s listed twice" % (jp, p))
            m[p] = (o, why)
            if o.startswith("failed"):
                bad("%s: %s %s: %s" % (os.path.basename(jp), o, p, why))
            elif o not in ("moved", "current", "skipped-busy"):
                bad("%s: %s %s: %s" % (os.path.basename(jp), o, p, why))
        for p in sorted(want - set(m))[:5]:
            bad("%s does not list %s" % (os.path.basename(jp), p))
        got.append(m)
    for p in sorted(want):
        n = sum(1 for m in got if m.get(p, ("",))[0] == "moved")
        if n != 1:
            bad("%s moved by %d runs" % (p, n))
    print("first %s, second %s" % (counts([(v[0],) for v in got[0].values()]),
                                   counts([(v[0],) for v in got[1].values()])))
    done()


def cmd_gen(root, folders, per, lo, hi, prefix, seed):
    """per random files of lo..hi bytes in each of folders folders"""
    import random
    rnd = random.Random(int(seed))
    for d in range(int(folders)):
        os.makedirs(os.path.join(root, "d%02d" % d), exist_ok=True)
        for i in range(int(per)):
            n = rnd.randrange(int(lo), int(hi) + 1)
            with open(os.path.join(root, "d%02d" % d,
                                   "%s%04d" % (prefix, i)), "wb") as f:
                f.write(os.urandom(n))


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
CHK_EOF

chk() {
	py "$T/chk.py" "$@"
}

# verdict DESC CHK-ARGS...: the checker finds nothing wrong
verdict() {
	_v_desc=$1
	shift
	if chk "$@" >"$T/.chk" 2>&1; then
		pass
	else
		fail "$_v_desc:"
		sed 's/^/    /' "$T/.chk" | head -n 14 >&2
	fi
}

# assert_eq GOT WANT DESC

# assert_in GOT DESC WANT...: GOT is one of the WANTs
assert_in() {
	_a_got=$1
	_a_desc=$2
	shift 2
	for _a_w in "$@"; do
		if [ "$_a_got" = "$_a_w" ]; then
			pass
			return 0
		fi
	done
	fail "$_a_desc: got '$_a_got', want one of: $*"
}

# has_word FILE WORD...: FILE holds one of the WORDs (case-insensitive)
has_word() {
	_h_f=$1
	shift
	for _h_w in "$@"; do
		if grep -qiF -- "$_h_w" "$_h_f"; then
			pass
			return 0
		fi
	done
	fail "$(basename "$_h_f") says none of [$*]: $(head -c 300 "$_h_f")"
}

# outcome REPORT NAME: that outcome's document count (0 when absent)
outcome() {
	json_get "$1" ".get('outcomes', {}).get('$2', {}).get('documents', 0)"
}

first_field() {
	head -n 1 "$OUT" | cut -d' ' -f1
}

# now_ns: the wall clock in nanoseconds
now_ns() {
	date +%s%N
}

# alive PID: the process runs (not gone, not a zombie)
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	case $(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) in
	Z | X | '') return 1 ;;
	esac
	return 0
}

# tmp_count DIR: temporary files of a run under DIR
tmp_count() {
	find "$1" -name '.*.rp-tmp-*' -printf x 2>/dev/null | wc -c | tr -d ' '
}

# wait_tmp PID DIR N: until N temporary files are under DIR (the run is
# writing a batch) or the run ends; 0 when seen while the run lives
wait_tmp() {
	_w_n=0
	while alive "$1"; do
		if [ "$(tmp_count "$2")" -ge "$3" ]; then
			return 0
		fi
		_w_n=$((_w_n + 1))
		if [ "$_w_n" -gt 3000 ]; then
			return 1
		fi
		sleep 0.01
	done
	return 1
}

# wait_journal PID FILE: until the run's journal has its first block
# (some documents are moved: the journal is written in blocks) or the run
# ends; 0 when seen while the run lives
wait_journal() {
	_w_n=0
	while alive "$1"; do
		if [ -s "$2" ]; then
			return 0
		fi
		_w_n=$((_w_n + 1))
		if [ "$_w_n" -gt 3000 ]; then
			return 1
		fi
		sleep 0.01
	done
	return 1
}

# fresh NAME BASE: a new copy of BASE (tree/ and store/) as $T/NAME;
# sets D, S (its store), W (its tree)
fresh() {
	D=$T/$1
	rm -rf "$D"
	cp -a "$2" "$D"
	S=$D/store
	W=$D/tree
}

# --------------------------------------------------------------- setup
# Keys: A (the corpus), C (a second archived key), B (active: the target),
# E (pending: a rekey's target). All age identities, so stock age opens
# every document whatever the store thinks of its key.
case_ "setup"
for _k in a b c e; do
	age-keygen -o "$T/$_k.id" 2>/dev/null
done
BS=$T/base-store
expect_rc 0 "$RP" init --store "$BS"
expect_rc 0 "$RP" key import "$T/a.id" --activate --store "$BS"
KA=$(first_field)

# protect_in DIR NAME-PATTERN: protect the matching files under DIR (each
# beside itself as NAME.age) with the store's active key, then delete them
protect_in() {
	# shellcheck disable=SC2016 # expanded by the inner sh
	run_rp sh -c 'cd "$1" && find . -type f -name "$2" ! -name "*.age" \
		-print0 | xargs -0 -P 2 -n 200 "$3" protect --store "$4" \
		>/dev/null' sh "$1" "$2" "$RP" "$BS"
	if [ "$LAST_RC" -ne 0 ]; then
		fail "protect in $1 ($2): exit $LAST_RC"
		show_err
	fi
	find "$1" -type f -name "$2" ! -name '*.age' -exec rm -f {} +
}

# BIG: 10 folders of 200 small documents under A (cases 2 to 4)
NBIG=2000
chk gen "$T/plain/big" 10 200 200 3000 f 1
mkdir -p "$T/big"
cp -a "$T/plain/big" "$T/big/tree"
protect_in "$T/big/tree" 'f*'

# LC: documents under A and under C side by side in 4 folders (case 1).
# Held by a hook, a small corpus; held by SIGSTOP, one that takes a while.
if [ "$HOOKS" = 1 ]; then
	LC_A=40
	LC_C=12
else
	LC_A=400
	LC_C=100
fi
NLC=$((4 * (LC_A + LC_C)))
chk gen "$T/plain/lc" 4 "$LC_A" 200 3000 a 2
chk gen "$T/plain/lc" 4 "$LC_C" 200 3000 c 3
mkdir -p "$T/lc"
cp -a "$T/plain/lc" "$T/lc/tree"
protect_in "$T/lc/tree" 'a*'

# OOM: small and larger documents under A (case 5, release build only)
if [ "$ASAN" = 0 ]; then
	NOOM=400
	chk gen "$T/plain/oom" 2 190 200 5000 s 4
	chk gen "$T/plain/oom" 2 10 60000 1100000 m 5
	mkdir -p "$T/oom"
	cp -a "$T/plain/oom" "$T/oom/tree"
	protect_in "$T/oom/tree" '*'
fi

expect_rc 0 "$RP" key import "$T/c.id" --store "$BS"
KC=$(first_field)
expect_rc 0 "$RP" rekey --to "$KC" --store "$BS"
protect_in "$T/lc/tree" 'c*'
expect_rc 0 "$RP" key import "$T/b.id" --store "$BS"
KB=$(first_field)
expect_rc 0 "$RP" rekey --to "$KB" --store "$BS"
expect_rc 0 "$RP" key import "$T/e.id" --store "$BS"
KE=$(first_field)
KB16=$(echo "$KB" | cut -c1-16)
for _b in big lc oom; do
	if [ -d "$T/$_b" ]; then
		cp -a "$BS" "$T/$_b/store"
	fi
done
assert_eq "$(chk snap "$T/big/tree" "$T/snap-big")" "$NBIG" "documents in big"
assert_eq "$(chk snap "$T/lc/tree" "$T/snap-lc")" "$NLC" "documents in lc"
if [ "$ASAN" = 0 ]; then
	assert_eq "$(chk snap "$T/oom/tree" "$T/snap-oom")" "$NOOM" \
		"documents in oom"
fi

# ------------------------------------------ 1. key life cycle mid-run
# start_held PAUSE ARGS...: starts `run` on a fresh copy of lc and holds it:
# with hooks, REPROTECT_TEST_PAUSE=PAUSE holds it in the run (the caller
# waits with wait_tmp); without, it is stopped (SIGSTOP) once its journal
# shows that it moves documents.
# Sets RUN_PID, HELD (1: stopped by us).
start_held() {
	_pause=$1
	shift
	rm -f "$D/r.json" "$D/j"
	if [ "$HOOKS" = 1 ]; then
		REPROTECT_TEST_PAUSE=$_pause "$RP" run "$W" --store "$S" \
			--in-place --copy --quiet --jobs 2 --report "$D/r.json" \
			--journal "$D/j" "$@" >"$D/run.out" 2>"$D/run.err" \
			</dev/null &
		RUN_PID=$!
		HELD=0
	else
		"$RP" run "$W" --store "$S" --in-place --copy --quiet \
			--report "$D/r.json" --journal "$D/j" \
			>"$D/run.out" 2>"$D/run.err" </dev/null &
		RUN_PID=$!
		HELD=0
		if wait_journal "$RUN_PID" "$D/j"; then
			kill -STOP "$RUN_PID"
			HELD=1
		fi
	fi
}

# midrun ARGS...: a life-cycle command in another process while the run is
# held; a run stopped by us goes on 0.3 s after the command started (the
# command may have to wait for the commit the run was stopped in). Sets
# T1, right after the command returned.
midrun() {
	if ! alive "$RUN_PID"; then
		fail "the run ended before '$*' (not mid-run)"
	fi
	if [ "$HELD" = 1 ]; then
		LAST_RC=0
		"$RP" "$@" --store "$S" >"$OUT" 2>"$ERR" </dev/null &
		_lp=$!
		sleep 0.3
		kill -CONT "$RUN_PID"
		HELD=0
		wait "$_lp" || LAST_RC=$?
		T1=$(now_ns)
		if [ "$LAST_RC" -eq 0 ]; then pass; else
			fail "exit $LAST_RC, want 0: $*"
			show_err
		fi
	else
		expect_rc 0 "$RP" "$@" --store "$S"
		T1=$(now_ns)
	fi
}

# finish: waits for the run; RUN_RC
finish() {
	if [ "$HELD" = 1 ]; then
		kill -CONT "$RUN_PID"
		HELD=0
	fi
	RUN_RC=0
	wait "$RUN_PID" || RUN_RC=$?
	if [ -s "$D/r.json" ]; then
		json_ok "$D/r.json"
	else
		echo '{}' >"$D/r.json"
		fail "no report"
	fi
}

IDS=$T/a.id,$T/b.id,$T/c.id,$T/e.id

# (a) the target key revoked, then destroyed, while a batch waits to commit
case_ "1a. target key revoked and destroyed mid-run"
fresh c1a "$T/lc"
if [ "$HOOKS" = 1 ]; then
	start_held run:before-commit:6000:1 --batch 32 --batch-ms 1000
	# the first batch commit sleeps: its 32 new files are written
	wait_tmp "$RUN_PID" "$W" 32 || true
	sleep 0.3
else
	start_held -
fi
midrun key revoke "$KB" --force --yes
expect_rc 0 "$RP" key destroy "$KB" --without-census --yes --store "$S"
finish
assert_eq "$RUN_RC" 8 "run exit code (target revoked mid-run)"
assert_json "$D/r.json" '["stopped"]' true
json_get "$D/r.json" '["stop_reason"]' >"$D/why"
assert_grep "$D/why" "$KB16"
has_word "$D/why" revoked destroyed
assert_grep "$D/run.err" "$KB16"
verdict "documents under the target key B" life "$T/snap-lc" "$W" \
	--t1 "$T1" --target "$KB" --plain "$T/plain/lc" --ids "$IDS"
echo "$IT_NAME: 1a: $(head -n 1 "$T/.chk")"
verdict "failed documents (the run stopped)" stopped "$D/j"
assert_no_tmp "$D"

# (b) the source key A revoked: its documents stay under it, C's move on
case_ "1b. source key revoked mid-run"
fresh c1b "$T/lc"
if [ "$HOOKS" = 1 ]; then
	# the walker sleeps before the 81st document, the rest waits
	start_held run:walk:15000:81 --batch 16 --batch-ms 200
	# the first documents are committed (their journal block written)
	# while the walker sleeps: a temporary file lives too briefly to be
	# seen on a loaded machine
	wait_journal "$RUN_PID" "$D/j" || true
	sleep 0.5
else
	start_held -
fi
midrun key revoke "$KA" --force --yes
finish
assert_eq "$RUN_RC" 0 "run exit code (a source key revoked mid-run)"
assert_json "$D/r.json" '["stopped"]' false
verdict "documents moved out of the revoked key A" life "$T/snap-lc" "$W" \
	--t1 "$T1" --target "$KB" --late "$KC" --must-move "$KC" \
	--plain "$T/plain/lc" --ids "$IDS"
echo "$IT_NAME: 1b: $(head -n 1 "$T/.chk")"
verdict "journal: no failed, moved is moved" moved "$D/j" "$KB"
chk reasons "$D/j" skipped-revoked-key revoked >"$D/nrev" 2>&1 ||
	fail "skipped-revoked-key reasons: $(cat "$D/nrev")"
_nrev=$(head -n 1 "$D/nrev")
if [ "$_nrev" -gt 0 ] 2>/dev/null; then pass; else
	fail "no document skipped-revoked-key: A's documents all moved" \
		"though A was revoked mid-run (or too late): $(head -c 200 "$D/nrev")"
fi
assert_eq "$(outcome "$D/r.json" skipped-revoked-key)" "$_nrev" \
	"report: skipped-revoked-key"
assert_no_tmp "$D"

# (c) a rekey makes E active: the run (target B) halts
case_ "1c. rekey mid-run"
fresh c1c "$T/lc"
if [ "$HOOKS" = 1 ]; then
	start_held run:walk:15000:81 --batch 16 --batch-ms 200
	wait_journal "$RUN_PID" "$D/j" || true
	sleep 0.5
else
	start_held -
fi
midrun rekey --to "$KE"
finish
assert_eq "$RUN_RC" 8 "run exit code (rekey mid-run)"
assert_json "$D/r.json" '["stopped"]' true
json_get "$D/r.json" '["stop_reason"]' >"$D/why"
assert_grep "$D/why" "$KB16"
has_word "$D/why" archived rekey
assert_grep "$D/run.err" "$KB16"
verdict "documents under B (none under E)" life "$T/snap-lc" "$W" \
	--t1 "$T1" --target "$KB" --plain "$T/plain/lc" --ids "$IDS"
echo "$IT_NAME: 1c: $(head -n 1 "$T/.chk")"
verdict "failed documents (the run stopped)" stopped "$D/j"
assert_no_tmp "$D"
# the next run takes every document to E
expect_rc 0 timeout 300 "$RP" run "$W" --store "$S" --in-place --quiet \
	--json
cp "$OUT" "$D/r2.json"
assert_eq "$(($(outcome "$D/r2.json" moved) + $(outcome "$D/r2.json" current)))" \
	"$NLC" "rerun: moved + current"
verdict "every document under E after the rerun" life "$T/snap-lc" "$W" \
	--target "$KE" --must-move "$KA,$KC"
expect_rc 0 "$RP" verify "$W" --store "$S" --quiet

# --------------------------------------------- 2. SIGSTOP / SIGCONT
# stop_cont PID FLAG: SIGSTOP, 25 ms, SIGCONT, 25 ms... until FLAG exists
stop_cont() {
	while [ ! -e "$2" ]; do
		kill -STOP "$1" 2>/dev/null || break
		sleep 0.025
		kill -CONT "$1" 2>/dev/null || break
		sleep 0.025
	done
	kill -CONT "$1" 2>/dev/null || true
}

for _io in uring sync; do
	case_ "2. SIGSTOP/SIGCONT every 50 ms (--io $_io)"
	fresh "c2-$_io" "$T/big"
	"$RP" run "$W" --store "$S" --in-place --quiet --io "$_io" \
		--report "$D/r.json" --journal "$D/j" >"$D/run.out" \
		2>"$D/run.err" </dev/null &
	_pid=$!
	stop_cont "$_pid" "$D/flag" &
	_sc=$!
	_rc=0
	wait "$_pid" || _rc=$?
	: >"$D/flag"
	wait "$_sc" || true
	assert_eq "$_rc" 0 "run exit code under SIGSTOP/SIGCONT"
	if [ "$_rc" -ne 0 ]; then
		sed 's/^/    stderr: /' "$D/run.err" | head -n 5 >&2
	fi
	json_ok "$D/r.json"
	assert_json "$D/r.json" '["stopped"]' false
	assert_eq "$(outcome "$D/r.json" moved)" "$NBIG" "moved"
	verdict "journal: no failed-*, every moved line under B" moved \
		"$D/j" "$KB"
	verdict "documents after the run" life "$T/snap-big" "$W" \
		--target "$KB" --must-move "$KA"
	expect_rc 0 "$RP" verify "$W" --store "$S" --quiet
done

# ------------------------------------------------- 3. two runs at once
case_ "3. two runs at once"
fresh c3 "$T/big"
timeout 300 "$RP" run "$W" --store "$S" --in-place --quiet \
	--report "$D/r1.json" --journal "$D/j1" >/dev/null 2>"$D/e1" </dev/null &
_p1=$!
timeout 300 "$RP" run "$W" --store "$S" --in-place --quiet \
	--report "$D/r2.json" --journal "$D/j2" >/dev/null 2>"$D/e2" </dev/null &
_p2=$!
_rc1=0
wait "$_p1" || _rc1=$?
_rc2=0
wait "$_p2" || _rc2=$?
for _i in 1 2; do
	eval "_rc=\$_rc$_i"
	_busy=$(grep -c '^skipped-busy	' "$D/j$_i" || true)
	if [ "$_busy" -gt 0 ]; then _want=1; else _want=0; fi
	assert_eq "$_rc" "$_want" "run $_i exit code ($_busy skipped-busy)"
	json_ok "$D/r$_i.json"
	assert_json "$D/r$_i.json" '["stopped"]' false
done
verdict "the two journals" two "$D/j1" "$D/j2" "$W"
echo "$IT_NAME: 3: $(head -n 1 "$T/.chk")"
expect_rc 0 timeout 300 "$RP" run "$W" --store "$S" --in-place --quiet \
	--json --journal "$D/j3"
cp "$OUT" "$D/r3.json"
assert_json "$D/r3.json" '["stopped"]' false
verdict "third run's journal" moved "$D/j3" "$KB"
verdict "every document under B" life "$T/snap-big" "$W" --target "$KB" \
	--must-move "$KA"
expect_rc 0 "$RP" verify "$W" --store "$S" --quiet
assert_no_tmp "$D"

# ------------------------------------------------------ 4. ulimit -n
case_ "4. ulimit -n 64"
fresh c4 "$T/big"
# shellcheck disable=SC2016 # expanded by the inner sh
run_rp sh -c 'ulimit -n 64 && exec "$@"' sh timeout 300 "$RP" run "$W" \
	--store "$S" --in-place --quiet --json --journal "$D/j"
assert_eq "$LAST_RC" 0 "run exit code with ulimit -n 64"
if [ "$LAST_RC" -ne 0 ]; then show_err; fi
cp "$OUT" "$D/r.json"
json_ok "$D/r.json"
assert_eq "$(outcome "$D/r.json" moved)" "$NBIG" "moved with ulimit -n 64"
verdict "journal with ulimit -n 64" moved "$D/j" "$KB"
verdict "every document under B" life "$T/snap-big" "$W" --target "$KB" \
	--must-move "$KA"
expect_rc 0 "$RP" verify "$W" --store "$S" --quiet

case_ "4. ulimit -n 16"
fresh c4low "$T/big"
# shellcheck disable=SC2016
run_rp sh -c 'ulimit -n 16 && exec "$@"' sh timeout 300 "$RP" run "$W" \
	--store "$S" --in-place --quiet --journal "$D/j"
assert_in "$LAST_RC" "run exit code with ulimit -n 16" 6 8
assert_grep "$ERR" "open files"
verdict "failed documents (the run stopped)" stopped "$D/j"
verdict "nothing damaged with ulimit -n 16" life "$T/snap-big" "$W" \
	--target "$KB" --plain "$T/plain/big" --ids "$IDS"
expect_rc 0 "$RP" verify "$W" --store "$S" --quiet
expect_rc 0 timeout 300 "$RP" run "$W" --store "$S" --in-place --quiet
verdict "every document under B after the rerun" life "$T/snap-big" "$W" \
	--target "$KB" --must-move "$KA"

# ------------------------------------------------------ 5. ulimit -v
if [ "$ASAN" = 1 ]; then
	echo "$IT_NAME: ulimit -v: SKIP (a sanitizer build reserves" \
		"terabytes of address space)"
else
	# oom_step MB: a fresh corpus, a run limited to MB of address space;
	# OOM_RC its exit code
	oom_step() {
		case_ "5. ulimit -v ${1} MB"
		fresh "c5" "$T/oom"
		# shellcheck disable=SC2016
		run_rp sh -c 'ulimit -v "$1" && shift && exec "$@"' sh \
			$(($1 * 1024)) timeout 120 "$RP" run "$W" --store "$S" \
			--in-place --quiet --jobs 2 --journal "$D/j"
		OOM_RC=$LAST_RC
		assert_in "$LAST_RC" "run exit code" 0 1 6 8
		if grep -q BUG "$ERR"; then
			fail "BUG on stderr: $(grep BUG "$ERR" | head -n 2)"
		else
			pass
		fi
		cp "$ERR" "$D/run.err"
		verdict "nothing damaged" life "$T/snap-oom" "$W" --target "$KB"
		expect_rc 0 "$RP" verify "$W" --store "$S" --quiet
		expect_rc 0 timeout 120 "$RP" run "$W" --store "$S" --in-place \
			--quiet --json
		cp "$OUT" "$D/r2.json"
		assert_eq "$(($(outcome "$D/r2.json" moved) + $(outcome "$D/r2.json" current)))" \
			"$NOOM" "rerun: moved + current"
		verdict "every document under B after the rerun" life \
			"$T/snap-oom" "$W" --target "$KB" --must-move "$KA"
		assert_no_tmp "$D"
		OOM_LOG="$OOM_LOG $1:$OOM_RC"
	}
	OOM_LOG=
	# coarse, about x1.23 a step; then, between the last step below the
	# first one that finished and that one, bisect to the limit where the
	# run starts to finish (just below it, allocations fail in the middle
	# of the work), and take the 3 MB below that limit too
	_prev=
	_lo=
	_hi=
	for _mb in 30 37 46 56 69 85 105 130 160 197 243 300; do
		oom_step "$_mb"
		if [ -z "$_hi" ] && [ "$OOM_RC" -eq 0 ]; then
			_lo=$_prev
			_hi=$_mb
		fi
		_prev=$_mb
	done
	if [ -n "$_lo" ]; then
		while [ $((_hi - _lo)) -gt 1 ]; do
			_mb=$(((_lo + _hi) / 2))
			oom_step "$_mb"
			if [ "$OOM_RC" -eq 0 ]; then _hi=$_mb; else _lo=$_mb; fi
		done
		for _mb in $((_hi - 2)) $((_hi - 3)) $((_hi - 4)); do
			case " $OOM_LOG " in
			*" $_mb:"*) ;;
			*) oom_step "$_mb" ;;
			esac
		done
	fi
	echo "$IT_NAME: ulimit -v MB:exit$OOM_LOG"
fi

it_done
