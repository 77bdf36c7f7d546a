#!/bin/sh
# it_fsguard.sh: `reprotect run` on a live file server (issue 8): what the
# engine promises about the files around the documents, not their bytes.
#  - descriptors held open across a run: a process opens 300 documents
#    before the run and keeps them open; after it, each descriptor still
#    reads its own document's original bytes, and a late save through it
#    reaches no other document (no inode is recycled);
#  - a folder swapped for a symbolic link while the run is paused inside it
#    (REPROTECT_TEST_PAUSE=run:walk, builds with test hooks): nothing
#    outside the tree is read, written or created;
#  - --out: a bind mount of a folder inside the tree, a folder inside the
#    tree and a tree inside the folder are refused (exit 2, "overlap")
#    before anything is written; a symbolic link inside the mirror is not
#    followed (failed-io, "symbolic link");
#  - what a document is besides its bytes: POSIX ACLs, user.* extended
#    attributes, set-uid/set-gid/sticky bits, owner, group, atime and mtime
#    are kept, in place and in a mirror; a hard-linked document keeps its
#    inode and links (its header rewritten in place); with --copy, hard
#    links and (for a runner that is not root) documents of another owner
#    it cannot write are skipped-cannot-keep and left exactly as they
#    were.
# The parts that need root (bind mounts, other owners, a second user) are
# skipped when not run as root; the paused swap needs the test hooks.
# Usage: sh tests/it_fsguard.sh PATH/TO/reprotect
set -eu
# shellcheck source=tests/it_lib.sh
. "$(dirname "$0")/it_lib.sh"
need python3 age age-keygen
AS_ROOT=0
if [ "$(id -u)" = 0 ]; then
	AS_ROOT=1
	need setfacl getfacl setfattr getfattr setpriv mount umount
fi
HOOKS=0
if grep -q REPROTECT_TEST_PAUSE "$RP"; then
	HOOKS=1
fi
export REPROTECT_PASSPHRASE='it-fsguard passphrase'
unset REPROTECT_TEST_FAULT REPROTECT_TEST_CRASH REPROTECT_TEST_PAUSE

# a bind mount and background processes of this script go with it
BIND=
BG=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	for _c_p in $BG; do
		kill "$_c_p" 2>/dev/null || true
	done
	if [ -n "$BIND" ]; then
		umount "$BIND" 2>/dev/null || umount -l "$BIND" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
# the temp dir as the kernel names it (/proc/PID/fd links)
TP=$(pwd -P)

# another user and group, for documents that are not the runner's
NB_UID=$(id -u nobody 2>/dev/null || echo 65534)
NB_GID=$(id -g nobody 2>/dev/null || echo 65534)
XU=4242
XG=4243

# ---------------------------------------------------------------- helpers

cat >"$T/fsg.py" <<'PY_EOF'
"""it_fsguard.sh's helper: makes the corpus, takes snapshots, holds
descriptors open and reads reports; it never calls reprotect."""
import hashlib, json, os, random, stat, sys, time

def read_all(fd):
    out = bytearray()
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return bytes(out)
        out += b

def sha(p, dir_fd=None):
    # O_NOATIME: a snapshot must not change what it records
    fl = os.O_RDONLY | os.O_NOFOLLOW
    try:
        fd = os.open(p, fl | os.O_NOATIME, dir_fd=dir_fd)
    except PermissionError:
        fd = os.open(p, fl, dir_fd=dir_fd)
    try:
        return hashlib.sha256(read_all(fd)).hexdigest()
    finally:
        os.close(fd)

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "corpus":
    # corpus BASE: the plaintexts, each different (protect makes NAME.age)
    base = args[0]
    rnd = random.Random(8)
    def put(rel, n):
        p = os.path.join(base, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(os.urandom(n))
    for d in range(3):
        for i in range(100):
            put("c1/d%d/%03d" % (d, i), rnd.randrange(64, 6000))
    # the folder that is swapped, and the outside folder the link points
    # to: the same names, other documents
    for top in ("c2/tree/a", "c2/outside"):
        for i in range(30):
            put("%s/x%02d" % (top, i), rnd.randrange(64, 4000))
        for i in range(10):
            put("%s/sub/y%02d" % (top, i), rnd.randrange(64, 4000))
    for i in range(5):
        put("c3/top%d" % i, rnd.randrange(64, 4000))
        put("c3/sub/s%d" % i, rnd.randrange(64, 4000))
    for i in range(3):
        put("c3/in/i%d" % i, rnd.randrange(64, 4000))
    for n in ("acl", "xattr", "suid", "sgid", "sticky", "plain"):
        put("meta/" + n, rnd.randrange(64, 70000))
    put("hard/h", 3000)
    put("hard/n", 3000)
    for i in range(4):
        put("nb/own/o%d" % i, rnd.randrange(64, 4000))
    for n in ("f0", "f1", "g0", "s0"):
        put("nb/shared/" + n, rnd.randrange(64, 4000))
elif cmd == "stash":
    # stash BASE PLAIN: moves each plaintext (not *.age) to PLAIN/REL
    base, plain = args
    for d, dirs, files in os.walk(base):
        for n in files:
            if n.endswith(".age"):
                continue
            rel = os.path.relpath(os.path.join(d, n), base)
            os.makedirs(os.path.dirname(os.path.join(plain, rel)),
                        exist_ok=True)
            os.rename(os.path.join(d, n), os.path.join(plain, rel))
elif cmd == "snap":
    # snap DIR [atime]: one line per entry under DIR (links not followed):
    # type, mode, owner, size, mtime (and a file's atime), sha256
    root, with_atime = args[0], len(args) > 1
    out = []
    for d, dirs, files, dfd in os.fwalk(root):
        rel = os.path.relpath(d, root)
        for n in sorted(dirs + files):
            st = os.lstat(n, dir_fd=dfd)
            line = "%s %o %d:%d %d %d" % (
                ascii(os.path.normpath(os.path.join(rel, n))), st.st_mode,
                st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                if with_atime:
                    line += " a%d" % st.st_atime_ns
                line += " " + sha(n, dfd)
            elif stat.S_ISLNK(st.st_mode):
                line += " -> " + ascii(os.readlink(n, dir_fd=dfd))
            out.append(line)
    print("\n".join(sorted(out)))
elif cmd == "dups":
    # dups DIR: the files under DIR that hold the same bytes as another
    seen = {}
    for d, dirs, files in os.walk(args[0]):
        for n in files:
            p = os.path.join(d, n)
            seen.setdefault(sha(p), []).append(p)
    for h, ps in seen.items():
        if len(ps) > 1:
            print("same bytes: " + " ".join(sorted(ps)))
elif cmd == "hold":
    # hold LIST READY GO: opens every document of LIST (O_RDWR), keeps its
    # bytes, creates READY, waits for GO; then (a) reads each again
    # through its descriptor: the bytes read before (a copied document:
    # the old inode is as it was) or, rewritten in place, the document at
    # its path (the same inode, the same length), (b) saves it late: its
    # bytes as read before, written back through the same descriptor
    lst, ready, go = args
    paths = [l.rstrip("\n") for l in open(lst)]
    fds, saved = [], []
    for p in paths:
        fd = os.open(p, os.O_RDWR)
        fds.append(fd)
        saved.append(read_all(fd))
    open(ready, "w").close()
    t0 = time.time()
    while not os.path.exists(go):
        if time.time() - t0 > 600:
            print("no go after 600 s")
            sys.exit(2)
        time.sleep(0.02)
    other = []
    for p, fd, data in zip(paths, fds, saved):
        os.lseek(fd, 0, os.SEEK_SET)
        now = read_all(fd)
        if now == data:
            continue
        try:
            same = (os.fstat(fd).st_ino == os.stat(p).st_ino and
                    len(now) == len(data) and now == open(p, "rb").read())
        except OSError:
            same = False
        if not same:
            other.append(p)
    for fd, data in zip(fds, saved):
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        os.close(fd)
    print("%d of %d descriptors read other bytes than their document's"
          % (len(other), len(paths)))
    for p in other[:5]:
        print("  " + p)
    sys.exit(1 if other else 0)
elif cmd == "doc":
    # doc REPORT PATH OUTCOME WORDS: PATH is listed once with OUTCOME and a
    # reason holding one of WORDS ('|'-separated); prints what is wrong
    r = json.load(open(args[0], encoding="utf-8"))
    path, want, words = args[1], args[2], args[3]
    got = [d for d in r["documents"] if d["path"] == path]
    if len(got) != 1:
        print("%s: listed %d times, want once as %s" % (path, len(got), want))
    elif got[0]["outcome"] != want:
        print("%s: %s (%s), want %s" % (path, got[0]["outcome"],
                                        got[0].get("reason"), want))
    elif not any(w.lower() in got[0].get("reason", "").lower()
                 for w in words.split("|")):
        print("%s: reason %r tells none of %s" % (path, got[0].get("reason"),
                                                  words))
elif cmd == "count":
    # count REPORT OUTCOME
    r = json.load(open(args[0], encoding="utf-8"))
    print(r["outcomes"].get(args[1], {}).get("documents", 0))
elif cmd == "listed":
    # listed REPORT: "OUTCOME PATH (REASON)" for each listed document
    r = json.load(open(args[0], encoding="utf-8"))
    for d in r["documents"]:
        print("%s %s (%s)" % (d["outcome"], d["path"], d.get("reason")))
PY_EOF
fsg() {
	py "$T/fsg.py" "$@"
}


# doc_in REPORT PATH OUTCOME WORDS: the report lists PATH so
doc_in() {
	_d=$(fsg doc "$@" 2>&1) || _d="report unreadable: $_d"
	if [ -n "$_d" ]; then fail "$_d"; else pass; fi
}

count_in() { # REPORT OUTCOME
	fsg count "$1" "$2" 2>/dev/null || echo "?"
}

# keep_report NAME: the last command's stdout (a --json report) as
# $T/NAME.json, checked to be JSON
keep_report() {
	cp "$OUT" "$T/$1.json"
	json_ok "$T/$1.json"
}

# no_sanitizer: the last command's stderr holds no sanitizer report
no_sanitizer() {
	if grep -qE 'Sanitizer|runtime error:|^BUG' "$ERR"; then
		fail "sanitizer or BUG report: $(grep -m 2 -E 'Sanitizer|runtime error:|^BUG' "$ERR")"
	else
		pass
	fi
}

# same_snap WHAT FILE_BEFORE DIR [atime]: DIR as FILE_BEFORE recorded it
same_snap() {
	fsg snap "$3" ${4:+"$4"} >"$T/.snap-now"
	if cmp -s "$2" "$T/.snap-now"; then
		pass
	else
		fail "$1: $(diff "$2" "$T/.snap-now" | grep '^[<>]' | head -n 4 | tr '\n' ' ')"
	fi
}

# under_b DOC: stock age opens DOC with B's identity alone (it was moved)
# shellcheck disable=SC2317 # called through check
under_b() {
	age -d -i "$T/b.id" "$1" >/dev/null 2>&1
}

# opens_as DOC PLAIN: stock age (A or B) opens DOC to exactly PLAIN
opens_as() {
	age -d -i "$T/a.id" -i "$T/b.id" "$1" 2>/dev/null | cmp -s - "$2"
}

# meta_of FILE: what a document is besides its bytes: mode (set-id and
# sticky bits), owner, group, atime, mtime, ACL, every extended attribute
meta_of() {
	stat -c 'mode %a owner %u:%g atime %X mtime %Y' "$1"
	getfacl -c -n -p "$1" 2>/dev/null | grep -v '^$' || true
	getfattr -d -m - -e hex --absolute-names "$1" 2>/dev/null |
		grep -v -e '^# file:' -e '^$' | sort || true
}

# meta_same WHAT FILE_BEFORE FILE: meta_of FILE is FILE_BEFORE
meta_same() {
	meta_of "$3" >"$T/.meta-now"
	if cmp -s "$2" "$T/.meta-now"; then
		pass
	else
		fail "$1: $(diff "$2" "$T/.meta-now" | grep '^[<>]' | head -n 4 | tr '\n' ' ')"
	fi
}

# set_meta DIR: the documents of DIR (a copy of base/meta) get an ACL
# (mode 0640 that is really its mask: the owning group has no access),
# user.* attributes, set-uid/set-gid/sticky bits, other owners, old times
set_meta() {
	chmod 0600 "$1/acl.age"
	setfacl -m "u:$NB_UID:r,g:$XG:r,g::-" "$1/acl.age"
	setfattr -n user.fsguard -v "kept" "$1/xattr.age"
	setfattr -n user.bin -v "0x00ff00$(printf '%0400d' 7)" "$1/xattr.age"
	chown "$NB_UID:$NB_GID" "$1/suid.age"
	chmod 6640 "$1/suid.age"
	chown "$XU:$XG" "$1/sgid.age"
	chmod 2750 "$1/sgid.age"
	chmod 1644 "$1/sticky.age"
	chown "$XU:$NB_GID" "$1/plain.age"
	chmod 0604 "$1/plain.age"
	for _sm_f in "$1"/*.age; do
		touch -m -d '2020-02-02 02:02:02' "$_sm_f"
		touch -a -d '2021-03-03 03:03:03' "$_sm_f"
	done
}
META_DOCS="acl xattr suid sgid sticky plain"

# nanosleep and clock_nanosleep, where /proc/PID/task/TID/wchan is hidden
case $(uname -m) in
x86_64) SYS_SLEEP1=35 SYS_SLEEP2=230 ;;
aarch64 | riscv64) SYS_SLEEP1=101 SYS_SLEEP2=115 ;;
*) SYS_SLEEP1=x SYS_SLEEP2=x ;;
esac
# walker_paused PID DIR: a thread of PID sleeps in the test pause while
# PID holds DIR (or a folder in it) open
walker_paused() {
	_wp_s=0
	for _wp_t in /proc/"$1"/task/*; do
		case "$(cat "$_wp_t/wchan" 2>/dev/null) $(cut -d' ' -f1 "$_wp_t/syscall" 2>/dev/null)" in
		*nanosleep*) _wp_s=1 ;;
		*" $SYS_SLEEP1" | *" $SYS_SLEEP2") _wp_s=1 ;;
		esac
	done
	[ "$_wp_s" = 1 ] || return 1
	for _wp_f in /proc/"$1"/fd/*; do
		case $(readlink "$_wp_f" 2>/dev/null) in
		"$2" | "$2"/*) return 0 ;;
		esac
	done
	return 1
}

# alive PID: PID runs (and is not a zombie yet to be waited for)
alive() {
	case $(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) in
	'' | Z | X) return 1 ;;
	esac
	return 0
}

# as_nobody CMD...: CMD as the user nobody (no other groups)
# shellcheck disable=SC2317 # called through expect_rc
as_nobody() {
	env HOME="$NB/home" setpriv --reuid="$NB_UID" --regid="$NB_GID" \
		--clear-groups "$@"
}

# ------------------------------------------------------------ the corpus
# every document under key A (an age identity, so stock age reads them),
# then a rekey to B: each run moves A -> B

case_ "setup"
age-keygen -o "$T/a.id" 2>/dev/null
age-keygen -o "$T/b.id" 2>/dev/null
S=$T/store
expect_rc 0 "$RP" init --store "$S"
expect_rc 0 "$RP" key import "$T/a.id" --activate --store "$S"
expect_rc 0 fsg corpus "$T/base"
# shellcheck disable=SC2016 # expanded by the inner sh
expect_rc 0 sh -c 'find "$1" -type f -exec "$2" protect --store "$3" {} + >/dev/null' \
	sh "$T/base" "$RP" "$S"
expect_rc 0 fsg stash "$T/base" "$T/plain"
expect_rc 0 "$RP" key import "$T/b.id" --store "$S"
KB=$(head -n 1 "$OUT" | cut -d' ' -f1)
expect_rc 0 "$RP" rekey --to "$KB" --store "$S"
if [ "$IT_FAIL" -ne 0 ]; then
	it_done
fi

# -------------------------------------- descriptors held open across a run

case_ "held open: 300 descriptors across the run, then a late save"
C1=$T/c1
cp -a "$T/base/c1" "$C1"
find "$C1" -type f -name '*.age' | sort >"$T/c1.list"
assert_eq "$(wc -l <"$T/c1.list" | tr -d ' ')" 300 "documents held"
fsg hold "$T/c1.list" "$T/c1.ready" "$T/c1.go" >"$T/c1.hold" 2>&1 &
HOLD=$!
BG="$BG $HOLD"
_n=0
while [ ! -e "$T/c1.ready" ] && [ "$_n" -lt 600 ]; do
	sleep 0.05
	_n=$((_n + 1))
done
check "the holder opened the documents" test -e "$T/c1.ready"
expect_rc 0 "$RP" run "$C1" --in-place --store "$S" --quiet --json
keep_report r1
no_sanitizer
assert_eq "$(count_in "$T/r1.json" moved)" 300 "moved"
: >"$T/c1.go"
_rc=0
wait "$HOLD" || _rc=$?
BG=
if [ "$_rc" = 0 ]; then pass; else
	fail "(a) read through the held descriptors: $(tr '\n' ' ' <"$T/c1.hold")"
fi
# (b) after the late saves
expect_rc 0 "$RP" verify "$C1" --store "$S" --quiet
_d=$(fsg dups "$C1" | head -n 3)
if [ -z "$_d" ]; then pass; else fail "after the late saves: $_d"; fi
_bad=0
_first=
while IFS= read -r _f; do
	_rel=${_f#"$C1"/}
	if ! opens_as "$_f" "$T/plain/c1/${_rel%.age}"; then
		_bad=$((_bad + 1))
		_first=${_first:-$_rel}
	fi
done <"$T/c1.list"
if [ "$_bad" = 0 ]; then pass; else
	fail "after the late saves $_bad documents do not open to their own bytes (first: $_first)"
fi

# -------------------------- a folder swapped for a symbolic link, paused

if [ "$HOOKS" = 1 ]; then
	case_ "swapped folder: tree/a -> a link to an outside folder, mid-run"
	C2=$T/c2
	cp -a "$T/base/c2" "$C2"
	O=$C2/outside
	# old atimes: a read of an outside document would show
	find "$O" -type f -exec touch -a -d '2001-01-01 01:01:01' {} +
	fsg snap "$O" atime >"$T/c2.out0"
	# the tree holds only a/: the first document the walker hands on is
	# in it; the walker sleeps there while a/ is swapped
	REPROTECT_TEST_PAUSE=run:walk:5000:1 "$RP" run "$C2/tree" --in-place \
		--store "$S" --quiet --report "$T/r2.json" >"$T/c2.stdout" \
		2>"$T/c2.stderr" </dev/null &
	RUN=$!
	BG="$BG $RUN"
	_n=0
	_paused=0
	while [ "$_n" -lt 600 ] && alive "$RUN"; do
		if walker_paused "$RUN" "$TP/c2/tree/a"; then
			_paused=1
			break
		fi
		sleep 0.05
		_n=$((_n + 1))
	done
	if [ "$_paused" = 1 ]; then
		mv "$C2/tree/a" "$C2/tree/a.moved"
		ln -s "$O" "$C2/tree/a"
		pass
	else
		fail "the run never paused at run:walk inside tree/a (no such pause point?)"
	fi
	_rc=0
	wait "$RUN" || _rc=$?
	BG=
	case $_rc in
	0 | 1) pass ;;
	*) fail "exit $_rc, want 0 or 1: $(head -c 300 "$T/c2.stderr")" ;;
	esac
	cp "$T/c2.stderr" "$ERR"
	no_sanitizer
	same_snap "outside the tree changed (read, written or created)" \
		"$T/c2.out0" "$O" atime
	assert_eq "$(find "$C2" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')" "outside tree " \
		"entries beside the tree"
	if [ "$_paused" = 1 ]; then
		assert_eq "$(readlink "$C2/tree/a")" "$O" "the link"
		# what was a/ is whole: each document under A or B, none damaged,
		# and each still its own (not one read from outside)
		expect_rc 0 "$RP" verify "$C2/tree/a.moved" --store "$S" --quiet
		_bad=
		for _f in "$C2"/tree/a.moved/x*.age "$C2"/tree/a.moved/sub/y*.age; do
			_rel=${_f#"$C2"/tree/a.moved/}
			if ! opens_as "$_f" "$T/plain/c2/tree/a/${_rel%.age}"; then
				_bad="$_bad $_rel"
			fi
		done
		if [ -z "$_bad" ]; then pass; else
			fail "not their own document in a.moved:$(echo "$_bad" | cut -c1-200)"
		fi
	fi
	if [ -s "$T/r2.json" ] && grep -qF "$O" "$T/r2.json"; then
		fail "the report names a path outside the tree"
	else
		pass
	fi
else
	echo "$IT_NAME: no test hooks in this build: the paused swap is skipped"
fi

# ------------------------------------------------------- --out overlaps

C3=$T/c3
# c3_fresh: the tree (top*, sub/s*, in/i*) and an empty outside/ in C3,
# and a snapshot of it all
c3_fresh() {
	rm -rf "$C3"
	mkdir "$C3"
	cp -a "$T/base/c3" "$C3/tree"
	mkdir "$C3/outside"
	fsg snap "$C3" >"$T/c3.snap0"
}

# refused WHAT DIR [bind]: run --out DIR is refused before anything is
# written; with bind, $T/bind is a bind mount of tree/in meanwhile
refused() {
	c3_fresh
	if [ $# -gt 2 ]; then
		mkdir -p "$T/bind"
		if ! mount --bind "$C3/tree/in" "$T/bind" 2>"$T/.mount-err"; then
			echo "$IT_NAME: cannot bind mount ($(cat "$T/.mount-err")): '$1' skipped"
			return 0
		fi
		BIND=$T/bind
	fi
	fsg snap "$S" >"$T/c3.store0"
	expect_rc 2 "$RP" run "$C3/tree" --out "$2" --store "$S" --quiet --json
	if grep -qF overlap "$ERR"; then pass; else
		fail "$1: 'overlap' not in stderr: $(head -c 300 "$ERR")"
	fi
	no_sanitizer
	if [ -n "$BIND" ]; then
		umount "$BIND"
		BIND=
	fi
	same_snap "$1: written" "$T/c3.snap0" "$C3"
	same_snap "$1: the store written (a journal?)" "$T/c3.store0" "$S"
}
if [ "$AS_ROOT" = 1 ]; then
	case_ "--out refused: a bind mount of a folder inside the tree"
	refused "the bind mount" "$T/bind" bind
	refused "a new folder inside the bind mount" "$T/bind/m" bind
fi
case_ "--out refused: inside the tree, the tree, holding the tree"
refused "a new folder inside the tree" "$C3/tree/sub/m"
refused "the tree itself" "$C3/tree"
refused "a folder that holds the tree" "$C3"

case_ "--out: a symbolic link inside the mirror"
c3_fresh
M=$T/c3m
mkdir "$M"
ln -s "$C3/outside" "$M/sub"
expect_rc 1 "$RP" run "$C3/tree" --out "$M" --store "$S" --quiet --json
keep_report r3
no_sanitizer
for _i in 0 1 2 3 4; do
	doc_in "$T/r3.json" "$C3/tree/sub/s$_i.age" failed-io "symbolic link"
done
assert_eq "$(count_in "$T/r3.json" failed-io)" 5 "failed-io"
same_snap "written outside the mirror" "$T/c3.snap0" "$C3"
check "the link in the mirror was replaced" test -L "$M/sub"
for _i in 0 1 2 3 4; do
	check "top$_i.age not mirrored under B" under_b "$M/top$_i.age"
done

# ---------------------------------------------------------- hard links

case_ "hard links in place: one inode, both names under B"
C5=$T/c5
cp -a "$T/base/hard" "$C5"
ln "$C5/h.age" "$C5/h2.age"
_ino=$(stat -c %i "$C5/h.age")
expect_rc 0 "$RP" run "$C5" --in-place --store "$S" --quiet --json
keep_report r5i
no_sanitizer
assert_eq "$(count_in "$T/r5i.json" moved)" 2 "moved (h or h2, and n)"
assert_eq "$(count_in "$T/r5i.json" current)" 1 "current (the other name)"
assert_eq "$(stat -c '%i %h' "$C5/h.age")" "$_ino 2" "h.age inode, links"
check "h.age under B" under_b "$C5/h.age"
check "h2.age is h.age" cmp -s "$C5/h.age" "$C5/h2.age"

case_ "hard links, --copy: skipped-cannot-keep, not split"
rm -rf "$C5"
cp -a "$T/base/hard" "$C5"
ln "$C5/h.age" "$C5/h2.age"
_ino=$(stat -c %i "$C5/h.age")
expect_rc 1 "$RP" run "$C5" --in-place --copy --store "$S" --quiet --json
keep_report r5
no_sanitizer
doc_in "$T/r5.json" "$C5/h.age" skipped-cannot-keep "hard links"
doc_in "$T/r5.json" "$C5/h2.age" skipped-cannot-keep "hard links"
assert_eq "$(stat -c '%i %h' "$C5/h.age")" "$_ino 2" "h.age inode, links"
assert_eq "$(stat -c '%i %h' "$C5/h2.age")" "$_ino 2" "h2.age inode, links"
check "h.age changed" cmp -s "$T/base/hard/h.age" "$C5/h.age"
check "h2.age changed" cmp -s "$T/base/hard/h.age" "$C5/h2.age"
check "n.age not moved" under_b "$C5/n.age"

# ------------------------------------------------------------ metadata

# the file system must hold ACLs and user.* attributes (tmpfs before
# Linux 6.6 has no user.*)
META=0
if [ "$AS_ROOT" = 1 ]; then
	: >"$T/.probe"
	if setfattr -n user.probe -v 1 "$T/.probe" 2>/dev/null &&
		setfacl -m "u:$NB_UID:r" "$T/.probe" 2>/dev/null; then
		META=1
	else
		echo "$IT_NAME: no ACLs or user.* attributes on $T: the metadata cases are skipped"
	fi
	rm -f "$T/.probe"
fi
if [ "$META" = 1 ]; then
	case_ "metadata in place: ACL, xattrs, set-id, owner, times"
	C4=$T/c4
	cp -a "$T/base/meta" "$C4"
	set_meta "$C4"
	fsg snap "$C4" >"$T/c4.snap0"
	for _f in $META_DOCS; do
		meta_of "$C4/$_f.age" >"$T/c4.$_f.meta"
	done
	expect_rc 0 "$RP" run "$C4" --in-place --store "$S" --quiet --json
	keep_report r4
	no_sanitizer
	# metadata first: reading a document afterwards would set its atime
	for _f in $META_DOCS; do
		meta_same "$_f.age" "$T/c4.$_f.meta" "$C4/$_f.age"
	done
	assert_eq "$(count_in "$T/r4.json" moved)" 6 "moved"
	for _f in $META_DOCS; do
		check "$_f.age not under B" under_b "$C4/$_f.age"
	done

	case_ "metadata in a mirror (--out)"
	C4O=$T/c4o
	mkdir "$C4O"
	cp -a "$T/base/meta" "$C4O/tree"
	set_meta "$C4O/tree"
	for _f in $META_DOCS; do
		meta_of "$C4O/tree/$_f.age" >"$T/c4o.$_f.meta"
	done
	fsg snap "$C4O/tree" >"$T/c4o.snap0"
	expect_rc 0 "$RP" run "$C4O/tree" --out "$C4O/mirror" --store "$S" \
		--quiet --json
	keep_report r4o
	no_sanitizer
	for _f in $META_DOCS; do
		meta_same "mirror $_f.age" "$T/c4o.$_f.meta" "$C4O/mirror/$_f.age"
	done
	# the source: bytes, mode, owner and mtime as they were
	same_snap "source changed" "$T/c4o.snap0" "$C4O/tree"
	for _f in $META_DOCS; do
		check "mirror $_f.age not under B" under_b "$C4O/mirror/$_f.age"
	done

	# a runner that is not root: nobody, with a store and a tree of its
	# own; shared/ (nobody's, so it could replace files there) also holds
	# documents of another owner (f0, f1) and group (g0)
	case_ "not root: setup"
	chmod 0711 "$T"
	NB=$T/nb
	mkdir "$NB" "$NB/home"
	cp -a "$S" "$NB/store"
	cp -a "$T/base/nb" "$NB/tree"
	cp -a "$T/base/nb" "$NB/tree2"
	chown -R "$NB_UID:$NB_GID" "$NB"
	for _t in tree tree2; do
		chown "$XU:$XG" "$NB/$_t/shared/f0.age" "$NB/$_t/shared/f1.age"
		chmod 0644 "$NB/$_t/shared/f0.age"
		chmod 0664 "$NB/$_t/shared/f1.age"
		chown "$NB_UID:$XG" "$NB/$_t/shared/g0.age"
		chmod 0644 "$NB/$_t/shared/g0.age"
		# one of its own with an ACL, an attribute and old times
		setfacl -m "u:$XU:r,g::-" "$NB/$_t/own/o0.age"
		setfattr -n user.fsguard -v "kept" "$NB/$_t/own/o0.age"
		touch -m -d '2020-02-02 02:02:02' "$NB/$_t/own/o0.age"
		touch -a -d '2021-03-03 03:03:03' "$NB/$_t/own/o0.age"
	done
	meta_of "$NB/tree/own/o0.age" >"$T/nb.o0.meta"
	# g0 is nobody's own (in another group): its header is rewritten in
	# place, owner and group kept; a copy could not keep the group
	FOREIGN="f0 f1"
	OWN="own/o0 own/o1 own/o2 own/o3 shared/s0 shared/g0"
	fsg snap "$NB/tree" >"$T/nb.snap0"
fi
# nobody must reach the binary (a build under /root would not do)
if [ "$META" = 1 ] && ! as_nobody test -x "$RP"; then
	echo "$IT_NAME: user nobody cannot run '$RP': the cases of a runner that is not root are skipped"
	META=0
fi
if [ "$META" = 1 ]; then
	expect_rc 0 as_nobody "$RP" key list --store "$NB/store"

	case_ "not root, in place: documents of another owner skipped"
	expect_rc 1 as_nobody "$RP" run "$NB/tree" --in-place \
		--store "$NB/store" --quiet --json
	keep_report r6
	no_sanitizer
	case_ "not root, in place: its own document keeps ACL, attribute, times"
	meta_same "own/o0.age" "$T/nb.o0.meta" "$NB/tree/own/o0.age"
	case_ "not root, in place: documents of another owner skipped"
	for _f in $FOREIGN; do
		doc_in "$T/r6.json" "$NB/tree/shared/$_f.age" skipped-cannot-keep \
			"owner"
	done
	# their bytes, mode and owner: as they were
	fsg snap "$NB/tree" >"$T/nb.snap1"
	for _f in $FOREIGN; do
		_l0=$(grep -F "'shared/$_f.age'" "$T/nb.snap0")
		_l1=$(grep -F "'shared/$_f.age'" "$T/nb.snap1")
		assert_eq "$_l1" "$_l0" "shared/$_f.age (mode owner size mtime sha256)"
	done
	for _f in $OWN; do
		check "$_f.age not moved" under_b "$NB/tree/$_f.age"
	done
	for _f in own/o0 own/o1 own/o2 own/o3 shared/s0; do
		assert_eq "$(stat -c '%u:%g' "$NB/tree/$_f.age")" "$NB_UID:$NB_GID" \
			"$_f.age owner"
	done
	assert_eq "$(stat -c '%u:%g' "$NB/tree/shared/g0.age")" "$NB_UID:$XG" \
		"shared/g0.age owner and group"
	assert_eq "$(count_in "$T/r6.json" moved)" 6 "moved"

	case_ "not root, --out: documents of another owner not mirrored"
	expect_rc 1 as_nobody "$RP" run "$NB/tree2" --out "$NB/mirror" \
		--store "$NB/store" --quiet --json
	keep_report r7
	no_sanitizer
	case_ "not root, --out: its own document keeps ACL, attribute, times"
	meta_same "mirror own/o0.age" "$T/nb.o0.meta" "$NB/mirror/own/o0.age"
	case_ "not root, --out: documents of another owner not mirrored"
	# a new file in the mirror cannot be given g0's group either
	for _f in $FOREIGN g0; do
		doc_in "$T/r7.json" "$NB/tree2/shared/$_f.age" skipped-cannot-keep \
			"owner"
		assert_absent "$NB/mirror/shared/$_f.age"
	done
	for _f in own/o0 own/o1 own/o2 own/o3 shared/s0; do
		check "mirror $_f.age not under B" under_b "$NB/mirror/$_f.age"
	done
fi
if [ "$AS_ROOT" = 0 ]; then
	echo "$IT_NAME: not root: the bind mount, metadata and second user cases are skipped"
fi

assert_no_tmp
it_done
