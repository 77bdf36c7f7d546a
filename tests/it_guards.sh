#!/bin/sh
# it_guards.sh REPROTECT: guarantees that no other test would notice
# breaking (each case names the source change it catches):
#  1. durability order, seen in the system calls (`strace -f -y`, --io
#     sync: the ring's operations do not show there):
#     copying (--copy, --durability batch): every temporary file is
#     fsynced before the rename that publishes it, and its folder after;
#     in place: the journal is fdatasynced after its last append and before
#     any header of the batch is written, and every document written is
#     fsynced before the journal is truncated (the commit).
#     Catches: the fsync of the temporary files, the journal's sync, or
#     the documents' sync removed from engine/run.c or io/wal.c.
#     With test hooks, the same order through the ring (--io uring), from
#     the engine's own trace of each step (REPROTECT_TEST_TRACE).
#  2. the audit log's chain: record k of another copy of the store put in
#     place of record k (a valid MAC of its own): `audit verify` fails at
#     the record after it. Catches: the previous record's MAC left out of
#     the append and the verifiers (keys/audit.c).
#  4. the progress total of a --shard run (its counting walk) is the
#     number of documents the run saw; the three shards add up. Catches:
#     the counting walk selecting with another hash or seed than the run
#     (engine/run.c in_shard, the one shard function both use).
#  3. (test hooks) a compressed document whose signed license claims one
#     byte more, or one byte less, than its content: `unprotect` refuses
#     it and writes nothing, `run --mode reencrypt` leaves it as it is.
#     Catches: the final length check of engine/doc.c (unprotect) and of
#     the reencrypting writer dropped.
. "$(dirname "$0")/it_lib.sh"

need python3 strace
export REPROTECT_PASSPHRASE='it-guards passphrase'
unset REPROTECT_STORE REPROTECT_TEST_FAULT REPROTECT_TEST_CRASH \
	REPROTECT_TEST_PAUSE
HOOKS=0
if grep -q REPROTECT_TEST_FAULT "$RP"; then
	HOOKS=1
fi
if ! strace -f -o /dev/null true 2>/dev/null; then
	echo "$IT_NAME: strace does not work here: skipped"
	exit 77
fi
export REPROTECT_STORE=$T/store
# LeakSanitizer cannot run under ptrace
NOLEAK="ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

case_ "setup"
expect_rc 0 "$RP" init
expect_rc 0 "$RP" key create --alg x25519 --activate
mkdir -p "$T/d/a" "$T/d/b"
for i in 0 1 2 3 4; do
	mkfile "$T/d/a/$i" $((1000 + i * 7000))
	mkfile "$T/d/b/$i" $((2000 + i * 5000))
done
expect_rc 0 "$RP" protect "$T"/d/a/[0-9] "$T"/d/b/[0-9]
rm -f "$T"/d/a/[0-9] "$T"/d/b/[0-9]
N=10

# order TRACE MODE: the durability order in an strace -f -y trace
order() {
	py - "$@" <<'PY'
import re, sys
trace, mode = sys.argv[1:3]
call = re.compile(r'^(\d+) +(\w+)\((.*)\) += (-?\d+)')
fd = re.compile(r'\d+<([^>]*)>')
ev = []
# a call another thread's call interrupted in the trace is split in two
# lines, "NAME(ARGS <unfinished ...>" and "<... NAME resumed>REST": join
# them, at the place of the second (where the call returned)
pending = {}
unfinished = re.compile(r'^(\d+) +(.*) <unfinished \.\.\.>$')
resumed = re.compile(r'^(\d+) +<\.\.\. \w+ resumed>(.*)$')
def whole(lines):
    for line in lines:
        line = line.rstrip("\n")
        m = unfinished.match(line)
        if m:
            pending[m.group(1)] = m.group(2)
            continue
        m = resumed.match(line)
        if m and m.group(1) in pending:
            line = m.group(1) + " " + pending.pop(m.group(1)) + m.group(2)
        yield line
for line in whole(open(trace, errors="replace")):
    m = call.match(line)
    if not m or m.group(4).startswith("-"):
        continue
    name, args = m.group(2), m.group(3)
    paths = fd.findall(args)
    ev.append((name, args, paths, m.group(1)))
# each writer thread has its own journal: in place, look at the thread's own
# calls only (two writers' batches interleave in the trace)
tev = lambda tid: [e for e in ev if e[3] == tid]
errs = []
if mode == "copy":
    renames = 0
    for i, (name, args, paths, tid) in enumerate(ev):
        if name not in ("renameat", "renameat2") or len(paths) < 2:
            continue
        names = re.findall(r'"([^"]*)"', args)
        if len(names) < 2 or ".rp-tmp-" not in names[0]:
            continue
        renames += 1
        tmp = paths[0] + "/" + names[0]
        if not any(n in ("fsync", "fdatasync") and p and p[0] == tmp
                   for n, a, p, t in ev[:i]):
            errs.append("renamed before its fsync: " + tmp)
        if not any(n == "fsync" and p and p[0] == paths[1]
                   for n, a, p, t in ev[i + 1:]):
            errs.append("folder not fsynced after the rename: " + paths[1])
    if renames == 0:
        errs.append("no rename seen")
else:
    writes = 0
    for j, (name, args, paths, tid) in enumerate(ev):
        if name != "pwrite64" or not paths or paths[0].endswith(".wal") \
                or not args.rstrip().endswith(", 0"):
            continue
        doc = paths[0]
        mine = tev(tid)
        i = mine.index(ev[j])
        writes += 1
        # the journal: its last append before this write, then a sync
        last_app = max((k for k, (n, a, p, t) in enumerate(mine[:i])
                        if n == "write" and p and p[0].endswith(".wal")),
                       default=None)
        if last_app is None:
            errs.append("no journal record before the header of " + doc)
            continue
        if not any(n in ("fsync", "fdatasync") and p and
                   p[0] == mine[last_app][2][0]
                   for n, a, p, t in mine[last_app + 1:i]):
            errs.append("header of %s written before its journal was "
                        "synced" % doc)
        # the commit (truncation) after it: the document synced before
        commit = next((k for k in range(i + 1, len(mine))
                       if mine[k][0] == "ftruncate" and mine[k][2] and
                       mine[k][2][0].endswith(".wal")), None)
        if commit is None:
            errs.append("no commit after the header of " + doc)
        elif not any(n in ("fsync", "fdatasync") and p and p[0] == doc
                     for n, a, p, t in mine[i + 1:commit]):
            errs.append("%s not synced before the commit" % doc)
    if writes == 0:
        errs.append("no header written in place")
if errs:
    print("; ".join(errs[:4]))
    sys.exit(1)
PY
}

case_ "1. durability order, copying (--copy, --durability batch)"
expect_rc 0 "$RP" rekey --alg x25519
run_rp env "$NOLEAK" strace -f -y -o "$T/copy.tr" -e trace=fsync,fdatasync,renameat,renameat2,rename \
	"$RP" run "$T/d" --in-place --copy --quiet --io sync --json
if [ "$LAST_RC" = 0 ]; then pass; else fail "run exit $LAST_RC"; show_err; fi
assert_json "$OUT" '["copied"]' "$N"
if _why=$(order "$T/copy.tr" copy); then pass; else fail "$_why"; fi

case_ "1. durability order, in place (--durability batch)"
expect_rc 0 "$RP" rekey --alg x25519
run_rp env "$NOLEAK" strace -f -y -o "$T/inplace.tr" \
	-e trace=fsync,fdatasync,pwrite64,write,ftruncate \
	"$RP" run "$T/d" --in-place --quiet --io sync --json
if [ "$LAST_RC" = 0 ]; then pass; else fail "run exit $LAST_RC"; show_err; fi
assert_json "$OUT" '["in_place"]' "$N"
if _why=$(order "$T/inplace.tr" inplace); then pass; else fail "$_why"; fi

# the same through the ring (--io uring), where strace cannot see: the
# engine marks each step where it submits it (REPROTECT_TEST_TRACE)
trace_order() {
	py - "$@" <<'PY'
import sys
trace, mode = sys.argv[1:3]
ev = [l.rstrip("\n").split(" ", 1) for l in open(trace)]
errs = []
if mode == "copy":
    n = 0
    for i, (what, name) in enumerate(ev):
        if what != "rename":
            continue
        n += 1
        if ["fsync", name] not in ev[:i]:
            errs.append("renamed before its fsync: " + name)
        if not any(w == "fsync-dir" for w, _ in ev[i + 1:]):
            errs.append("no folder fsync after renaming " + name)
    if not n:
        errs.append("no rename traced")
else:
    n = 0
    for i, (what, name) in enumerate(ev):
        if what != "header":
            continue
        n += 1
        app = max((k for k in range(i) if ev[k][0] == "wal-append"),
                  default=None)
        if app is None or not any(ev[k][0] == "wal-sync"
                                  for k in range(app + 1, i)):
            errs.append("header of %s before its journal was synced" % name)
        com = next((k for k in range(i + 1, len(ev))
                    if ev[k][0] == "wal-commit"), None)
        if com is None or ["fsync-doc", name] not in ev[i + 1:com]:
            errs.append("%s not synced before the commit" % name)
    if not n:
        errs.append("no header traced")
if errs:
    print("; ".join(errs[:4]))
    sys.exit(1)
PY
}
if [ "$HOOKS" = 1 ]; then
	case_ "1. durability order through the ring (copying, in place)"
	expect_rc 0 "$RP" rekey --alg x25519
	rm -f "$T/ring-copy.tr"
	expect_rc 0 env REPROTECT_TEST_TRACE="$T/ring-copy.tr" "$RP" run \
		"$T/d" --in-place --copy --quiet --io uring
	if _why=$(trace_order "$T/ring-copy.tr" copy); then pass; else
		fail "$_why"
	fi
	expect_rc 0 "$RP" rekey --alg x25519
	rm -f "$T/ring-ip.tr"
	expect_rc 0 env REPROTECT_TEST_TRACE="$T/ring-ip.tr" "$RP" run \
		"$T/d" --in-place --quiet --io uring
	if _why=$(trace_order "$T/ring-ip.tr" inplace); then pass; else
		fail "$_why"
	fi
fi

# ----------------------------------------------------------- the audit chain
case_ "2. the audit chain: a record of another copy of the store"
cp -a "$T/store" "$T/storeB"
_k=$(($(wc -l <"$T/store/audit.log") + 1))
# A: two more records; B: one other record at the same place
expect_rc 0 "$RP" template create guards-a --rights view
expect_rc 0 "$RP" template create guards-a2 --rights view
expect_rc 0 "$RP" template create guards-b --rights print --store "$T/storeB"
expect_rc 0 "$RP" audit verify
expect_rc 0 "$RP" audit verify --store "$T/storeB"
_recb=$(sed -n "${_k}p" "$T/storeB/audit.log")
if [ -n "$_recb" ] && [ "$(sed -n "${_k}p" "$T/store/audit.log")" != "$_recb" ]; then
	pass
else
	fail "record $_k is the same in both copies"
fi
cp "$T/store/audit.log" "$T/audit.good"
py - "$T/store/audit.log" "$_k" "$_recb" <<'PY'
import sys
path, k, rec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(path).read().split("\n")
lines[k - 1] = rec
open(path, "w").write("\n".join(lines))
PY
run_rp "$RP" audit verify
if [ "$LAST_RC" != 0 ]; then pass; else
	fail "audit verify accepts record $_k of another copy"
fi
if grep -q "$((_k + 1))" "$ERR"; then pass; else
	fail "the failure does not name record $((_k + 1)): $(cat "$ERR")"
fi
cp "$T/audit.good" "$T/store/audit.log"
expect_rc 0 "$RP" audit verify

# ------------------------------------------------- shards and their count
case_ "4. a shard's progress total is the shard's documents"
mkdir -p "$T/sh/x" "$T/sh/y"
for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19; do
	mkfile "$T/sh/x/$i" 100
	mkfile "$T/sh/y/$i" 100
done
expect_rc 0 "$RP" protect "$T"/sh/x/* "$T"/sh/y/*
rm -f "$T"/sh/x/[0-9] "$T"/sh/x/[0-9][0-9] "$T"/sh/y/[0-9] \
	"$T"/sh/y/[0-9][0-9]
expect_rc 0 "$RP" rekey --alg x25519
_sum=0
for _i in 0 1 2; do
	expect_rc 0 "$RP" run "$T/sh" --in-place --shard "$_i/3" --json
	_seen=$(json_get "$OUT" '["documents_seen"]')
	assert_json "$OUT" '["documents_counted"]' "$_seen"
	_sum=$((_sum + _seen))
done
if [ "$_sum" = 40 ]; then pass; else fail "the shards saw $_sum of 40"; fi

# ------------------------------------------ a compressed document's length
if [ "$HOOKS" = 1 ]; then
	# lie LABEL CODE: CODE 1 claims one byte more, 2 one byte less
	for lie in "1 more" "2 less"; do
		_code=${lie%% *}
		case_ "3. compressed, the license claims one byte ${lie#* }"
		mkdir -p "$T/z$_code"
		i=0
		: >"$T/z$_code/p"
		while [ $i -lt 3000 ]; do
			printf 'line %05d of a compressible document\n' $i \
				>>"$T/z$_code/p"
			i=$((i + 1))
		done
		expect_rc 0 env REPROTECT_TEST_FAULT="doc:size-lie:$_code" \
			"$RP" protect --compress "$T/z$_code/p" \
			-o "$T/z$_code/p.age"
		expect_rc 3 "$RP" unprotect "$T/z$_code/p.age" \
			-o "$T/z$_code/out"
		assert_absent "$T/z$_code/out"
		assert_no_tmp "$T/z$_code"
		cp "$T/z$_code/p.age" "$T/was$_code"
		expect_rc 0 "$RP" rekey --alg x25519
		expect_rc 1 "$RP" run "$T/z$_code" --in-place --quiet \
			--mode reencrypt --json
		assert_json "$OUT" \
			'["outcomes"]["failed-bad-document"]["documents"]' 1
		assert_same "$T/was$_code" "$T/z$_code/p.age"
	done
else
	echo "$IT_NAME: no test hooks in this build: case 3 skipped"
fi

it_done
