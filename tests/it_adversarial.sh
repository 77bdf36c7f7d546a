#!/bin/sh
# it_adversarial.sh: hostile inputs, each with its exact expected outcome,
# driven through the real commands. Built at test time from real files
# this script makes (so they follow the current format):
#  - documents (tests/adversarial/gen.py; the expectations are its CASES
#    table): header and stanza sizes, license TLV lengths, signature
#    blocks, licenses that do not belong, algorithms that do not match,
#    payloads cut short or extended; several carry a valid signature
#    (re-signed with the test's own RSA keys) so their one fault is the
#    only one. Each must give `unprotect` and `inspect` their exit code and
#    one stderr line naming the file and the fault, `verify` and
#    `run --in-place` their outcome and reason in the JSON report, and be
#    byte for byte untouched, with no output or temporary file anywhere;
#  - the file system under `run`: symlinks out of the tree (to a file, a
#    folder, a FIFO), symlinks to an ancestor, a FIFO, a ~4,000-byte path
#    and one over PATH_MAX, names with newlines and invalid UTF-8 (the
#    report must stay valid JSON), an unreadable file (not as root), hard
#    links (skipped-cannot-keep: a rename would split them);
#  - the store: a keyring edited, truncated or rolled back, key backups
#    from another world or damaged, admin shares damaged, repeated, too
#    few or from another world.
# Usage: sh tests/it_adversarial.sh PATH/TO/reprotect
set -eu
ADV=$(cd "$(dirname "$0")/adversarial" && pwd)
# shellcheck source=tests/it_lib.sh
. "$(dirname "$0")/it_lib.sh"
need python3 openssl timeout sha256sum mkfifo

export REPROTECT_PASSPHRASE='adversarial pass'
export REPROTECT_STORE="$T/store"
NL='
'
AS_ROOT=0
if [ "$(id -u)" = 0 ]; then
	AS_ROOT=1
fi

# first_field: the first word of the last command's stdout (a key id)
first_field() {
	head -n 1 "$OUT" | cut -d' ' -f1
}

# words_err NAME WORDS: assert_err_line with '|'-separated WORDS
words_err() {
	_w_name=$1
	_w_words=$2
	_w_ifs=$IFS
	IFS='|'
	# shellcheck disable=SC2086 # split on |
	set -- $_w_words
	IFS=$_w_ifs
	assert_err_line "$_w_name" "$@"
}

# snap DIR FILE: every entry under DIR (symlinks not followed, special
# files not opened) with the sha256 of each regular file, one a line
snap() {
	py -c 'import hashlib, os, stat, sys
out = []
for d, dirs, files, dfd in os.fwalk(sys.argv[1].encode()):
    rel = os.path.relpath(d, sys.argv[1].encode())
    for n in dirs + files:
        r = ascii(os.path.normpath(os.path.join(rel, n)))
        m = os.lstat(n, dir_fd=dfd).st_mode
        if stat.S_ISREG(m):
            try:
                fd = os.open(n, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
                with os.fdopen(fd, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                h = "unreadable:%o" % stat.S_IMODE(m)
        else:
            h = "type:%o" % stat.S_IFMT(m)
        out.append("%s %s" % (h, r))
out.sort(key=lambda l: l.split(" ", 1)[1])
with open(sys.argv[2], "w") as f:
    f.write("".join(l + "\n" for l in out))' "$1" "$2"
}
# names_of SNAP: the names of a snapshot
names_of() {
	cut -d' ' -f2- "$1"
}

# report.py: answers questions about a run or verify JSON report
cat >"$T/rep.py" <<'PY_EOF'
import json, os, sys
def load(p):
    # strict: the report must be UTF-8 and valid JSON
    with open(p, "rb") as f:
        return json.loads(f.read().decode("utf-8"))
cmd = sys.argv[1]
R = load(sys.argv[2])
if cmd == "doc":
    # doc REPORT PATH OUTCOME WORDS: one entry for PATH, with OUTCOME and a
    # reason holding one of WORDS ('|'-separated, '-' for any)
    path, want, words = sys.argv[3], sys.argv[4], sys.argv[5]
    # the report writes a byte that is not UTF-8 as U+FFFD
    path = os.fsencode(path).decode("utf-8", "replace")
    got = [d for d in R["documents"] if d["path"] == path]
    if want in ("moved", "current", "verified", "would-move", "none"):
        if got:
            print("listed as %s (%s)" % (got[0]["outcome"],
                                         got[0].get("reason")))
        sys.exit(0)
    if len(got) != 1:
        print("listed %d times, want once as %s" % (len(got), want))
        sys.exit(0)
    d = got[0]
    if d["outcome"] != want:
        print("outcome %s, want %s (%s)" % (d["outcome"], want,
                                            d.get("reason")))
    elif words != "-" and not any(w.lower() in d.get("reason", "").lower()
                                  for w in words.split("|")):
        print("reason %r tells none of %s" % (d.get("reason"), words))
elif cmd == "cases":
    # cases VERIFY CASES RUN DIR SNAP0 SNAP2 OBSDIR
    V = R
    RR = load(sys.argv[4])
    root = sys.argv[5]
    def snapd(p):
        out = {}
        for l in open(p, encoding="utf-8"):
            h, n = l.rstrip("\n").split(" ", 1)
            out[n] = h
        return out
    s0, s2 = snapd(sys.argv[6]), snapd(sys.argv[7])
    def entry(rep, path):
        return [d for d in rep["documents"] if d["path"] == path]
    def check(rep, what, path, want, words):
        got = entry(rep, path)
        if want in ("moved", "current", "verified"):
            if got:
                return "%s: listed as %s (%s), want %s" % (
                    what, got[0]["outcome"], got[0].get("reason"), want)
            return None
        if len(got) != 1:
            return "%s: listed %d times, want once as %s" % (what, len(got), want)
        d = got[0]
        if d["outcome"] != want:
            return "%s: outcome %s, want %s (%s)" % (what, d["outcome"], want,
                                                     d.get("reason"))
        if words != "-" and not any(w.lower() in d.get("reason", "").lower()
                                    for w in words.split("|")):
            return "%s: reason %r tells none of %s" % (what, d.get("reason"),
                                                       words)
        return None
    def seen(rep, path, none):
        got = entry(rep, path)
        return "%s\t%s" % ((got[0]["outcome"], got[0].get("reason"))
                            if got else (none, "-"))
    changed = 0
    for line in open(sys.argv[3], encoding="utf-8"):
        (name, up_rc, up_w, in_rc, in_chk, run_o, run_w, ver_o, ver_w,
         bug) = line.rstrip("\n").split("\t")
        path = os.path.join(root, name + ".age")
        msgs = [check(V, "verify", path, ver_o, ver_w),
                check(RR, "run", path, run_o, run_w)]
        key = ascii(os.fsencode(name + ".age"))
        moved = s0.get(key) != s2.get(key)
        changed += moved
        if moved and run_o != "moved":
            msgs.append("the run changed %s.age" % name)
        if not moved and run_o == "moved":
            msgs.append("the run did not move %s.age" % name)
        for m in msgs:
            if m:
                print("%s\t%s" % (name, m))
        with open(os.path.join(sys.argv[8], name), "a") as f:
            f.write("\t%s\t%s\t%s\n" % (
                seen(RR, path, run_o if run_o in ("moved", "current")
                     else "not listed"),
                seen(V, path, "verified"),
                "moved (new license)" if moved else "untouched"))
    with open(os.path.join(sys.argv[8], ".changed"), "w") as f:
        f.write("%d\n" % changed)
elif cmd == "outcome":
    # outcome REPORT PATH: "OUTCOME<TAB>REASON" (moved/verified: not listed)
    got = [d for d in R["documents"] if d["path"] == sys.argv[3]]
    if got:
        print("%s\t%s" % (got[0]["outcome"], got[0].get("reason")))
    else:
        print("not listed (moved, current or verified)\t-")
elif cmd == "count":
    print(R["outcomes"][sys.argv[3]]["documents"])
elif cmd == "paths":
    for d in R["documents"]:
        print("%s\t%s\t%s" % (d["outcome"], d["path"].encode(
            "unicode_escape").decode(), d.get("reason")))
PY_EOF

# doc_in REPORT PATH OUTCOME WORDS: the report lists PATH as it should
doc_in() {
	_d=$(py "$T/rep.py" doc "$@" 2>&1) || _d="report unreadable: $_d"
	if [ -n "$_d" ]; then fail "$2: $_d"; else pass; fi
}
count_in() { # REPORT OUTCOME
	py "$T/rep.py" count "$1" "$2" 2>/dev/null || echo "?"
}

# --- a store, keys and real documents ---------------------------------------
case_ "setup"
for _k in a b r u; do
	openssl genrsa -traditional -out "$T/$_k.pem" 2048 2>/dev/null
done
mkfile "$T/p" 100000
expect_rc 0 "$RP" init
expect_rc 0 "$RP" key create --alg x25519 --activate
KX=$(first_field)
expect_rc 0 "$RP" protect "$T/p" -o "$T/x.age"
expect_rc 0 "$RP" key import "$T/r.pem" --activate
KR=$(first_field)
expect_rc 0 "$RP" protect "$T/p" -o "$T/r.age"
expect_rc 0 "$RP" key backup "$KR" -o "$T/kr.rpkb"
expect_rc 0 "$RP" key import "$T/a.pem" --activate
KA=$(first_field)
for _d in a a2 fs1 fs2 fs3 fs4 fs5 fs6 fs7; do
	expect_rc 0 "$RP" protect "$T/p" -o "$T/$_d.age"
done
expect_rc 0 "$RP" key import "$T/b.pem" --activate
KB=$(first_field)
expect_rc 0 "$RP" protect "$T/p" -o "$T/b.age"
cp -p "$REPROTECT_STORE/keyring" "$T/keyring.before-revoke"
expect_rc 0 "$RP" key revoke "$KR" --yes
expect_rc 0 "$RP" init --store "$T/store2"
expect_rc 0 "$RP" key import "$T/u.pem" --activate --store "$T/store2"
KU=$(first_field)
expect_rc 0 "$RP" protect "$T/p" -o "$T/u.age" --store "$T/store2"
expect_rc 0 "$RP" key backup "$KU" -o "$T/ku.rpkb" --store "$T/store2"
assert_eq "$(printf '%s\n' "$KX" "$KR" "$KA" "$KB" "$KU" | sort -u | wc -l |
	tr -d ' ')" 5 "five key ids"

cat >"$T/keys.json" <<EOF
{"a": "$T/a.age", "a2": "$T/a2.age", "b": "$T/b.age", "x": "$T/x.age",
 "r": "$T/r.age", "u": "$T/u.age", "apem": "$T/a.pem", "bpem": "$T/b.pem",
 "rpem": "$T/r.pem", "upem": "$T/u.pem"}
EOF
H=$T/hostile
expect_rc 0 py "$ADV/gen.py" docs "$H" "$T/keys.json"
mv "$H/cases.tsv" "$T/cases.tsv"
N_CASES=$(wc -l <"$T/cases.tsv" | tr -d ' ')
assert_eq "$(find "$H" -name '*.age' | wc -l | tr -d ' ')" "$N_CASES" \
	"hostile documents made"
snap "$H" "$T/snap-h0"
mkdir "$T/out"

# --- hostile documents: unprotect and inspect --------------------------------
# cases.tsv: name, unprotect exit, its words, inspect exit, inspect check
# (stderr / CHECK=STATUS / -), run outcome, its words, verify outcome, its
# words, known bug (- for none). A case with a known bug reports XFAIL
# instead of failing (ADV_STRICT=1: it fails).
XFAILS=0
# bug_begin BUG / bug_end NAME BUG: around the assertions of a case
bug_begin() {
	_bug_f0=$IT_FAIL
}
bug_end() {
	if [ "$2" = - ]; then
		return 0
	fi
	if [ "$IT_FAIL" -gt "$_bug_f0" ]; then
		if [ -z "${ADV_STRICT:-}" ]; then
			echo "XFAIL [$1]: known bug '$2' (the FAIL lines above)" >&2
			IT_FAIL=$_bug_f0
			XFAILS=$((XFAILS + 1))
		fi
	else
		echo "XPASS [$1]: known bug '$2' no longer shows" >&2
	fi
}
# obs NAME FIELD...: a row of the observed table ($T/observed/NAME)
mkdir "$T/observed"
TAB=$(printf '\t')
first_line() {
	head -n 1 "$1" | tr '\t' ' ' | sed 's/^reprotect: //'
}

# shellcheck disable=SC2034 # the columns the second loop uses
while IFS="$TAB" read -r name up_rc up_w in_rc in_chk run_o run_w ver_o ver_w bug; do
	F=$H/$name.age
	bug_begin
	case_ "$name: unprotect"
	expect_rc "$up_rc" "$RP" unprotect "$F" -o "$T/out/$name"
	printf '%s\t%s\t%s' "$name" "exit $LAST_RC" "$(first_line "$ERR")" \
		>"$T/observed/$name"
	if [ "$up_rc" -ne 0 ]; then
		words_err "$name.age" "$up_w"
		assert_absent "$T/out/$name"
	else
		assert_same "$T/out/$name" "$T/p"
		check "unprotect wrote to stderr: $(head -c 200 "$ERR")" \
			test ! -s "$ERR"
	fi
	rm -f "$T/out/$name"
	case_ "$name: inspect"
	expect_rc "$in_rc" "$RP" inspect --json "$F"
	case $in_chk in
	stderr)
		words_err "$name.age" "$up_w"
		if [ -s "$OUT" ]; then fail "inspect printed a report"; else pass; fi
		_info="one stderr line"
		;;
	*)
		check "inspect wrote to stderr: $(head -c 200 "$ERR")" \
			test ! -s "$ERR"
		# one python call: valid JSON, and the status of the check
		_st=$(py -c 'import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
c = sys.argv[2]
print(d["checks"][c.split("=")[0]]["status"] if "=" in c else
      ",".join(sorted(set(v["status"] for v in d["checks"].values()))))' \
			"$OUT" "$in_chk" 2>/dev/null) || _st="not valid JSON"
		if [ "$in_chk" = - ]; then
			assert_eq "$_st" ok "inspect checks"
			_info="every check ok"
		else
			assert_eq "$_st" "${in_chk#*=}" "inspect ${in_chk%%=*}"
			_info="checks.${in_chk%%=*}: $_st"
		fi
		;;
	esac
	printf '\t%s\t%s' "exit $LAST_RC" "$_info" >>"$T/observed/$name"
	bug_end "$name" "$bug"
done <"$T/cases.tsv"
case_ "hostile documents: untouched, nothing written"
snap "$H" "$T/snap-h1"
check "unprotect/inspect changed the hostile documents" \
	cmp "$T/snap-h0" "$T/snap-h1"
assert_no_tmp
check "output folder is empty" test -z "$(ls -A "$T/out")"

# --- verify, then run --in-place over them ----------------------------------
case_ "hostile documents: verify"
expect_rc 1 timeout 60 "$RP" verify "$H" --report "$T/verify.json"
json_ok "$T/verify.json"
case_ "hostile documents: run --in-place"
expect_rc 1 timeout 60 "$RP" run "$H" --in-place --quiet \
	--report "$T/run-h.json" --journal "$T/j-h"
json_ok "$T/run-h.json"
if [ -n "${IT_DEBUG:-}" ]; then
	py "$T/rep.py" paths "$T/run-h.json" >&2
	py "$T/rep.py" paths "$T/verify.json" >&2
fi
snap "$H" "$T/snap-h2"
# one python call checks every case against both reports and the
# snapshots; it prints "NAME<TAB>FAIL<TAB>MESSAGE" lines, and the observed
# columns to observed/NAME
py "$T/rep.py" cases "$T/verify.json" "$T/cases.tsv" "$T/run-h.json" "$H" \
	"$T/snap-h0" "$T/snap-h2" "$T/observed" >"$T/cases.out" 2>&1 ||
	fail "checking the reports: $(tail -n 3 "$T/cases.out")"
# shellcheck disable=SC2034 # the columns the python checker uses
while IFS="$TAB" read -r name up_rc up_w in_rc in_chk run_o run_w ver_o ver_w bug; do
	bug_begin
	case_ "$name: verify and run"
	grep -F "$name$TAB" "$T/cases.out" | cut -f2- >"$T/.msgs" || true
	if [ -s "$T/.msgs" ]; then
		while IFS= read -r _m; do fail "$_m"; done <"$T/.msgs"
	else
		pass
	fi
	if [ "$run_o" = moved ]; then
		expect_rc 0 "$RP" inspect --json "$H/$name.age"
		assert_json "$OUT" '["key"]["id"]' "$KB"
	fi
	bug_end "$name" "$bug"
done <"$T/cases.tsv"
case_ "hostile documents: the report counts what changed"
assert_eq "$(count_in "$T/run-h.json" moved)" \
	"$(cat "$T/observed/.changed")" "moved"
case_ "hostile documents: nothing else written"
names_of "$T/snap-h0" >"$T/.n0"
names_of "$T/snap-h2" >"$T/.n2"
check "names changed" cmp -s "$T/.n0" "$T/.n2"
assert_no_tmp
cut -f1 "$T/cases.tsv" | while read -r name; do
	cat "$T/observed/$name"
done >"$T/observed.tsv"
if [ -n "${ADV_TABLE:-}" ]; then
	py "$ADV/gen.py" table "$T/observed.tsv" >"$ADV_TABLE"
fi

# --- the file system under run ----------------------------------------------
# F/in: the tree; $T/outside: what links in it point to (must stay unread)
case_ "fs: setup"
F=$T/fs/in
O=$T/outside
mkdir -p "$F/dir" "$O/dir"
cp "$T/fs1.age" "$F/ok.age"
cp "$T/fs2.age" "$O/secret.age"
cp "$T/fs3.age" "$O/dir/o.age"
mkfifo "$O/fifo"
ln -s "$O/secret.age" "$F/sym-out.age"
ln -s "$O/fifo" "$F/sym-fifo.age"
ln -s "$O/dir" "$F/sym-dir"
ln -s .. "$F/dir/up"
ln -s . "$F/dir/self"
ln -s "$F" "$F/dir/root"
mkfifo "$F/fifo.age"
# a path of about 4,000 bytes: 19 folders of 200 bytes, then the document
_seg=$(printf '%0200d' 0)
_p=$F/deep
mkdir "$_p"
_i=0
while [ $_i -lt 19 ]; do
	_p=$_p/$_seg
	mkdir "$_p"
	_i=$((_i + 1))
done
cp "$T/fs4.age" "$_p/deep.age"
DEEP=$_p/deep.age
# ... and one over PATH_MAX (4,096): 21 folders (built relative to the
# last, as the full path is too long for mkdir)
mkdir "$F/toolong"
py -c 'import os, sys
os.chdir(sys.argv[1])
for _ in range(21):
    os.mkdir("d" * 200)
    os.chdir("d" * 200)
with open(sys.argv[2], "rb") as i, open("long.age", "wb") as o:
    o.write(i.read())' "$F/toolong" "$T/fs5.age"
# names: a newline, invalid UTF-8 (valid documents), and a damaged one
# whose name has both
cp "$T/fs6.age" "$F/new${NL}line.age"
NAME_BAD=$(printf 'bad\377\376.age')
cp "$T/fs7.age" "$F/$NAME_BAD"
NAME_DMG=$(printf 'dmg\377\n\033[2J.age')
cp "$H/lic-other-doc.age" "$F/$NAME_DMG"
# hard links: two names, one inode
cp "$T/a2.age" "$F/hard1.age"
ln "$F/hard1.age" "$F/hard2.age"
# unreadable (only when not root: root reads it anyway)
if [ "$AS_ROOT" = 0 ]; then
	cp "$T/a.age" "$F/noread.age"
	chmod 000 "$F/noread.age"
fi
snap "$O" "$T/snap-o0"
snap "$F" "$T/snap-f0"
cp -a "$T/fs" "$T/fs-copy" 2>/dev/null || true

case_ "fs: run --in-place"
expect_rc 1 timeout 60 "$RP" run "$F" --in-place --quiet \
	--report "$T/run-f.json" --journal "$T/j-f"
if [ "$LAST_RC" = 124 ]; then fail "the run blocked (timeout)"; fi
json_ok "$T/run-f.json"
py "$T/rep.py" paths "$T/run-f.json" >"$T/run-f.paths" 2>&1 || true
if [ -n "${IT_DEBUG:-}" ]; then cat "$T/run-f.paths" >&2; fi
R=$T/run-f.json
doc_in "$R" "$F/ok.age" moved -
doc_in "$R" "$F/sym-out.age" skipped-not-file "link"
doc_in "$R" "$F/sym-fifo.age" skipped-not-file "link"
doc_in "$R" "$F/sym-dir" skipped-not-file "link"
doc_in "$R" "$F/dir/up" skipped-not-file "link"
doc_in "$R" "$F/dir/self" skipped-not-file "link"
doc_in "$R" "$F/dir/root" skipped-not-file "link"
doc_in "$R" "$F/fifo.age" skipped-not-file "fifo|special|not a regular"
doc_in "$R" "$DEEP" moved -
doc_in "$R" "$F/new${NL}line.age" moved -
doc_in "$R" "$F/$NAME_BAD" moved -
doc_in "$R" "$F/$NAME_DMG" failed-bad-document "bound"
if [ "$AS_ROOT" = 0 ]; then
	doc_in "$R" "$F/noread.age" failed-io "permission"
fi
# the path over PATH_MAX: reported, not followed into, nothing written
check "the long path is reported" grep -q 'toolong' "$T/run-f.paths"

case_ "fs: outside untouched, nothing listed from outside"
snap "$O" "$T/snap-o1"
check "outside changed" cmp -s "$T/snap-o0" "$T/snap-o1"
if grep -q "$O" "$T/run-f.paths"; then
	fail "the report lists a file outside the tree"
else
	pass
fi
if grep -qF "$O" "$T/j-f"; then
	fail "the journal lists a file outside the tree"
else
	pass
fi
case_ "fs: the moved documents open under B"
for _f in "$F/ok.age" "$DEEP" "$F/new${NL}line.age" "$F/$NAME_BAD"; do
	expect_rc 0 "$RP" inspect --json "$_f"
	assert_json "$OUT" '["key"]["id"]' "$KB"
done
case_ "fs: the damaged one and the unreadable one untouched"
_h0=$(sha256sum <"$T/fs-copy/in/$NAME_DMG" | cut -c1-64)
_h1=$(sha256sum <"$F/$NAME_DMG" | cut -c1-64)
assert_eq "$_h1" "$_h0" "damaged document"
if [ "$AS_ROOT" = 0 ]; then
	chmod 600 "$F/noread.age"
	assert_same "$F/noread.age" "$T/a.age"
fi
case_ "fs: hard links"
# rewritten in place: one inode, both names see the new header (one name
# moved, the other current), and each opens
assert_eq "$(count_in "$T/run-f.json" skipped-cannot-keep)" 0 \
	"hard-linked names skipped"
assert_eq "$(stat -c %i "$F/hard1.age")" "$(stat -c %i "$F/hard2.age")" \
	"still one inode"
assert_eq "$(stat -c %h "$F/hard1.age")" 2 "still two links"
expect_rc 0 "$RP" inspect --json "$F/hard2.age"
assert_json "$OUT" '["key"]["id"]' "$KB"
for _f in hard1 hard2; do
	expect_rc 0 "$RP" unprotect "$F/$_f.age" -o "$T/out/$_f"
	assert_same "$T/out/$_f" "$T/p"
	rm -f "$T/out/$_f"
done
assert_no_tmp
case_ "fs: a second run finds nothing to move"
expect_rc 1 timeout 60 "$RP" run "$F" --in-place --quiet \
	--report "$T/run-f2.json" --journal "$T/j-f2"
assert_eq "$(count_in "$T/run-f2.json" moved)" 0 "moved again"

# --- the store ------------------------------------------------------------
S=$T/store
K=$S/keyring
cp -a "$S" "$T/store.good"
# store_cmd RC WORDS CMD...: CMD on the store exits RC with one stderr line
# holding one of WORDS; the store's files are unchanged
store_cmd() {
	_s_rc=$1
	_s_w=$2
	shift 2
	_s_cmd=$(echo "$*" | sed "s|$RP|reprotect|; s|$T/||g")
	snap "$S" "$T/.s0"
	_s_alog=0
	if [ -f "$S/audit.log" ]; then
		cp "$S/audit.log" "$T/.alog0"
		_s_alog=1
	fi
	expect_rc "$_s_rc" "$@"
	_s_ifs=$IFS
	IFS='|'
	# shellcheck disable=SC2086
	set -- $_s_w
	IFS=$_s_ifs
	_s_n=$(wc -l <"$ERR")
	if [ "$_s_n" -ne 1 ]; then fail "stderr has $_s_n lines"; show_err; fi
	_s_ok=0
	for _s_x in "$@"; do
		if grep -qiF -- "$_s_x" "$ERR"; then _s_ok=1; fi
	done
	if [ $_s_ok = 1 ]; then pass; else fail "stderr tells none of [$*]: $(cat "$ERR")"; fi
	snap "$S" "$T/.s1"
	# the sealed audit log may grow by the refused operation's records
	# (and its head with it); it is never rewritten, and nothing else
	# of the store changes
	grep -v "'audit\.\(log\|head\)'\$" "$T/.s0" >"$T/.s0x"
	grep -v "'audit\.\(log\|head\)'\$" "$T/.s1" >"$T/.s1x"
	check "the store changed" cmp -s "$T/.s0x" "$T/.s1x"
	if [ $_s_alog = 1 ]; then
		check "the audit log was rewritten, not appended to" \
			cmp -s -n "$(stat -c %s "$T/.alog0")" "$T/.alog0" \
			"$S/audit.log"
	fi
	printf '%s\t%s\t%s\t%s\n' "$CASE" "$_s_cmd" \
		"exit $LAST_RC" "$(first_line "$ERR" | sed "s|$T/||g")" \
		>>"$T/observed-store.tsv"
}
restore_store() {
	rm -rf "$S"
	cp -a "$T/store.good" "$S"
}

case_ "store: keyring, one byte edited"
_b=$(byte_at "$K" 100)
put_byte "$K" 100 $((_b ^ 1))
store_cmd 3 "keyring integrity" "$RP" key list
store_cmd 3 "keyring integrity" "$RP" unprotect "$T/b.age" -o "$T/out/k1"
assert_absent "$T/out/k1"
store_cmd 3 "keyring integrity" "$RP" run "$H" --in-place --quiet \
	--journal "$T/j-k1"
assert_absent "$T/j-k1"
restore_store

case_ "store: keyring truncated"
head -c 200 "$T/store.good/keyring" >"$K"
store_cmd 3 "keyring" "$RP" key list
: >"$K"
store_cmd 3 "keyring" "$RP" key list
restore_store

case_ "store: keyring rolled back to before the revoke"
# a keyring of this store from before 'key revoke R': its MAC is valid,
# but its generation is below what audit.head has seen (since 2026-12-06;
# before, only the revoke's erased material stopped it)
cp "$T/keyring.before-revoke" "$K"
store_cmd 3 "older than this store has written" "$RP" unprotect \
	"$T/r.age" -o "$T/out/k3"
assert_absent "$T/out/k3"
store_cmd 3 "older than this store has written" "$RP" key list
restore_store

case_ "store: key backup from another world"
store_cmd 3 "security world" "$RP" key restore "$T/ku.rpkb"
case_ "store: key backup truncated"
head -c 100 "$T/kr.rpkb" >"$T/kr-cut.rpkb"
store_cmd 3 "backup" "$RP" key restore "$T/kr-cut.rpkb"
case_ "store: key backup, one byte changed"
flip_byte "$T/kr.rpkb" "$T/kr-flip.rpkb" 600
store_cmd 3 "backup" "$RP" key restore "$T/kr-flip.rpkb"
case_ "store: key backup with 1 MiB appended"
{
	cat "$T/kr.rpkb"
	head -c 1048576 /dev/zero
} >"$T/kr-long.rpkb"
store_cmd 3 "larger than" "$RP" key restore "$T/kr-long.rpkb"
case_ "store: the real backup still restores"
expect_rc 0 "$RP" key restore "$T/kr.rpkb"
restore_store

case_ "shares: setup"
expect_rc 0 "$RP" world backup --shares 3 --threshold 2 -o "$T/w"
expect_rc 0 "$RP" world backup --shares 3 --threshold 2 -o "$T/w2" \
	--store "$T/store2"
# new_store RC WORDS SHARE...: init --from-shares into a new folder
new_store() {
	_n_rc=$1
	_n_w=$2
	shift 2
	_n_cmd=$(echo "$*" | sed "s|$T/||g")
	rm -rf "$T/ns"
	expect_rc "$_n_rc" timeout 20 "$RP" init --store "$T/ns" --from-shares "$@"
	_n_ifs=$IFS
	IFS='|'
	# shellcheck disable=SC2086
	set -- $_n_w
	IFS=$_n_ifs
	_n_ok=0
	for _n_x in "$@"; do
		if grep -qiF -- "$_n_x" "$ERR"; then _n_ok=1; fi
	done
	if [ $_n_ok = 1 ]; then pass; else fail "stderr tells none of [$*]: $(cat "$ERR")"; fi
	printf '%s\t%s\t%s\t%s\n' "$CASE" "init --from-shares $_n_cmd" "exit $LAST_RC" \
		"$(first_line "$ERR" | sed "s|$T/||g")" >>"$T/observed-store.tsv"
	_n_n=$(wc -l <"$ERR")
	if [ "$_n_n" -ne 1 ]; then fail "stderr has $_n_n lines"; fi
	if [ -e "$T/ns" ] && [ -n "$(ls -A "$T/ns" 2>/dev/null)" ]; then
		fail "a failed init left $(find "$T/ns" -mindepth 1 | tr '\n' ' ')"
	else
		pass
	fi
}
SH="share"
case_ "shares: one share's bytes changed"
# the share line is 'reprotect-world-share-v1 BASE64': change a character
# near the end (the share value)
cp "$T/w-2.share" "$T/bad.share"
_o=$(($(file_size "$T/bad.share") - 10))
if [ "$(byte_at "$T/bad.share" $_o)" = 65 ]; then put_byte "$T/bad.share" $_o 66; else
	put_byte "$T/bad.share" $_o 65; fi
new_store 3 "$SH" "$T/w-1.share" "$T/bad.share"
case_ "shares: the same share twice"
new_store 3 "$SH|twice|duplicate|same" "$T/w-1.share" "$T/w-1.share"
case_ "shares: one share (threshold 2)"
new_store 3 "$SH|threshold|enough" "$T/w-1.share"
case_ "shares: from two worlds"
new_store 3 "$SH|world" "$T/w-1.share" "$T/w2-2.share"
case_ "shares: truncated"
head -c 40 "$T/w-2.share" >"$T/cut.share"
new_store 3 "$SH" "$T/w-1.share" "$T/cut.share"
case_ "shares: a 1 MiB line"
{
	printf 'reprotect-world-share-v1 '
	head -c 786432 /dev/zero | base64 -w 0
	echo
} >"$T/huge.share"
new_store 3 "$SH" "$T/w-1.share" "$T/huge.share"
case_ "shares: empty file"
: >"$T/empty.share"
new_store 3 "$SH" "$T/w-1.share" "$T/empty.share"
case_ "shares: a FIFO"
mkfifo "$T/fifo.share"
new_store 3 "$SH|regular|fifo" "$T/w-1.share" "$T/fifo.share"
case_ "shares: the real ones still work"
rm -rf "$T/ns"
expect_rc 0 "$RP" init --store "$T/ns" --from-shares "$T/w-3.share" \
	"$T/w-1.share"
expect_rc 0 "$RP" key restore "$T/kr.rpkb" --store "$T/ns"

assert_no_tmp
if [ -n "${ADV_TABLE:-}" ]; then
	{
		echo
		echo "run over the file-system tree (outcome, path, reason):"
		echo
		sed "s|$T/||g" "$T/run-f.paths"
		echo
		echo "store (case, command, exit, stderr):"
		echo
		cat "$T/observed-store.tsv"
	} >>"$ADV_TABLE"
fi
it_done
