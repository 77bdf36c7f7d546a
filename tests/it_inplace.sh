#!/bin/sh
# it_inplace.sh REPROTECT: the in-place rewrite (docs/ENGINE.md "In
# place"). A rewrap to a key of the same type and size overwrites the
# header alone, under the write-ahead journal:
#  - the inode, its hard links, extended attributes, ACLs and times stay;
#    the stock age tool opens every document before and after; the run
#    writes a few KiB per document, whatever its size;
#  - a document whose header cannot fit (another key type) is copied
#    once, gaining slack, and its next rewrap is in place; --copy copies;
#  - with test hooks (the sanitizer build): a document without slack (as
#    written before) is copied once; SIGKILL at each point of the in-place
#    path, a header torn half-way, a simulated power cut that kept part of
#    a header: `reprotect recover` gives every document back whole (old or
#    new key, exact bytes), and a rerun finishes; a failed write or fsync
#    leaves the document whole; SIGINT lets the batch in flight finish.
. "$(dirname "$0")/it_lib.sh"

need python3 age age-keygen openssl
export REPROTECT_PASSPHRASE='it-inplace passphrase'
unset REPROTECT_STORE REPROTECT_TEST_FAULT REPROTECT_TEST_CRASH \
	REPROTECT_TEST_PAUSE
HOOKS=0
if grep -q REPROTECT_TEST_FAULT "$RP"; then
	HOOKS=1
fi

# ------------------------------------------------------------ the corpus
# 12 documents in two folders (sizes from empty to several 64 KiB
# chunks), one of them with a second name, one with an attribute.
case_ "setup"
openssl genrsa -out "$T/r1.pem" 2048 2>/dev/null
openssl genrsa -out "$T/r2.pem" 2048 2>/dev/null
openssl genrsa -out "$T/r3.pem" 2048 2>/dev/null
openssl genrsa -out "$T/r4.pem" 2048 2>/dev/null
age-keygen -o "$T/x1.id" 2>/dev/null
age-keygen -o "$T/x2.id" 2>/dev/null
IDS="-i $T/r1.pem -i $T/r2.pem -i $T/r3.pem -i $T/r4.pem -i $T/x1.id -i $T/x2.id"
mkdir -p "$T/plain"
N=12
i=0
while [ $i -lt $N ]; do
	mkfile "$T/plain/$i" $(((i * i * 7919) % 300000))
	i=$((i + 1))
done

# corpus DIR KEYFILE [ENV...]: a store with KEYFILE active, the documents
# protected under it in DIR/tree/d0 and d1 (and DIR/tree/d0/link, a
# second name of d0/0.age)
corpus() {
	_d=$1
	_k=$2
	shift 2
	mkdir -p "$_d/tree/d0" "$_d/tree/d1"
	expect_rc 0 "$RP" init --store "$_d/store"
	expect_rc 0 "$RP" key import "$_k" --activate --store "$_d/store"
	_i=0
	while [ $_i -lt $N ]; do
		expect_rc 0 env "$@" "$RP" protect "$T/plain/$_i" \
			--store "$_d/store" -o "$_d/tree/d$((_i % 2))/$_i.age"
		_i=$((_i + 1))
	done
	ln "$_d/tree/d0/0.age" "$_d/tree/d0/link"
}

# rekey DIR KEYFILE: KEYFILE becomes the active key
rekey_to() {
	expect_rc 0 "$RP" key import "$2" --store "$1/store"
	_kid=$(head -n 1 "$OUT" | cut -d" " -f1)
	expect_rc 0 "$RP" rekey --to "$_kid" --store "$1/store"
}

# opens_all TREE: the stock age tool opens every document to its bytes
opens_all() {
	_i=0
	while [ $_i -lt $N ]; do
		# shellcheck disable=SC2086
		age -d $IDS "$1/d$((_i % 2))/$_i.age" >"$T/.open" \
			2>/dev/null || return 1
		cmp -s "$T/.open" "$T/plain/$_i" || return 1
		_i=$((_i + 1))
	done
	cmp -s "$1/d0/0.age" "$1/d0/link"
}

# inodes TREE: "inode links mtime path" of every file
inodes() {
	find "$1" -type f -printf '%i %n %T@ %p\n' | sort -k4
}

# no_journal DIR: no write-ahead journal left in the store
no_journal() {
	[ -z "$(find "$1/store" -name '*.wal' 2>/dev/null)" ]
}

# run_json DIR ARGS...: a run over DIR/tree; the report in $T/r.json
run_json() {
	_d=$1
	_want=$2
	shift 2
	expect_rc "$_want" "$RP" run "$_d/tree" --store "$_d/store" \
		--in-place --quiet --json --batch 4 "$@"
	cp "$OUT" "$T/r.json"
}

# --------------------------------------------- RSA-2048 -> RSA-2048
R=$T/rsa
corpus "$R" "$T/r1.pem"
check "age opens every document as protected" opens_all "$R/tree"
case_ "rsa2048 -> rsa2048: in place"
rekey_to "$R" "$T/r2.pem"
if command -v setfattr >/dev/null 2>&1; then
	setfattr -n user.note -v kept "$R/tree/d1/3.age"
fi
if command -v setfacl >/dev/null 2>&1; then
	setfacl -m u:nobody:r "$R/tree/d1/5.age" 2>/dev/null || true
fi
touch -d '2020-02-02 02:02:02' "$R/tree/d1/7.age"
inodes "$R/tree" >"$T/ino0"
getfacl -p "$R/tree/d1/5.age" >"$T/acl0" 2>/dev/null || true
run_json "$R" 0
assert_json "$T/r.json" '["in_place"]' "$N"
assert_json "$T/r.json" '["copied"]' 0
assert_json "$T/r.json" '["outcomes"]["moved"]["documents"]' "$N"
# the second name of d0/0.age: current once its inode has the new header
assert_json "$T/r.json" '["outcomes"]["current"]["documents"]' 1
_bw=$(json_get "$T/r.json" '["bytes_written"]')
if [ "$_bw" -le $((N * 4096)) ]; then pass; else
	fail "$_bw bytes written for $N headers"
fi
inodes "$R/tree" >"$T/ino1"
if cmp -s "$T/ino0" "$T/ino1"; then pass; else
	fail "inodes, links or times changed: $(diff "$T/ino0" "$T/ino1" | head -4)"
fi
if command -v getfattr >/dev/null 2>&1; then
	check "the attribute stays" sh -c \
		"getfattr -n user.note --only-values '$R/tree/d1/3.age' | grep -q kept"
fi
if [ -s "$T/acl0" ]; then
	getfacl -p "$R/tree/d1/5.age" >"$T/acl1" 2>/dev/null
	assert_same "$T/acl0" "$T/acl1"
fi
check "age opens every document after the rewrap" opens_all "$R/tree"
check "no journal left" no_journal "$R"
assert_no_tmp "$R"
expect_rc 0 "$RP" verify "$R/tree" --store "$R/store" --quiet
check "the run's journal says 'in place'" sh -c \
	"cat '$R'/store/runs/*.journal | grep -q '	in place\$'"
case_ "a second run: all current, nothing written"
run_json "$R" 0
assert_json "$T/r.json" '["outcomes"]["current"]["documents"]' $((N + 1))
assert_json "$T/r.json" '["bytes_written"]' 0

case_ "--copy writes each document anew"
rekey_to "$R" "$T/r3.pem"
rm "$R/tree/d0/link" # a copy would split it (skipped-cannot-keep)
run_json "$R" 0 --copy
assert_json "$T/r.json" '["copied"]' "$N"
assert_json "$T/r.json" '["in_place"]' 0
ln "$R/tree/d0/0.age" "$R/tree/d0/link"
check "age opens every document after --copy" opens_all "$R/tree"

case_ "a header goes down as its document's first block, direct"
# documents of 4 KiB or more: opened O_DIRECT, one 4096-byte write at
# offset 0 (no page-cache folio dirtied); a smaller one: its header alone
D=$T/dio
mkdir -p "$D/tree"
expect_rc 0 "$RP" init --store "$D/store"
expect_rc 0 "$RP" key import "$T/r1.pem" --activate --store "$D/store"
expect_rc 0 "$RP" protect "$T/plain/1" --store "$D/store" -o "$D/tree/big.age"
expect_rc 0 "$RP" protect "$T/plain/0" --store "$D/store" -o "$D/tree/small.age"
rekey_to "$D" "$T/r2.pem"
if command -v strace >/dev/null 2>&1 &&
	strace -f -o /dev/null true 2>/dev/null; then
	# LeakSanitizer cannot run under ptrace
	# one file per thread (-ff): a call is never split in two lines there
	# by another thread's, as it can be in one file
	expect_rc 0 env "ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
		strace -ff -o "$T/dio.tr" "$RP" run "$D/tree" \
		--store "$D/store" --in-place --quiet --json --io sync
	cp "$OUT" "$T/r.json"
	cat "$T"/dio.tr.* >"$T/dio.trace"
	check "big.age is opened O_DIRECT" grep -q \
		'"big.age", O_WRONLY|O_NONBLOCK|O_DIRECT' "$T/dio.trace"
	check "its header goes down in one 4096-byte write at 0" grep -q \
		'pwrite64([0-9]*, "age-encryption.org/v1.*, 4096, 0) = 4096' \
		"$T/dio.trace"
	if grep -q 'small.age", O_WRONLY.*O_DIRECT' "$T/dio.trace"; then
		fail "a document smaller than a block was opened O_DIRECT"
	else
		pass
	fi
	# 4096 for the big one, its header for the small one
	_bw=$(json_get "$T/r.json" '["bytes_written"]')
	if [ "$_bw" -gt 4096 ] && [ "$_bw" -lt 8192 ]; then pass; else
		fail "$_bw bytes written for one block and one header"
	fi
	# shellcheck disable=SC2086
	age -d $IDS "$D/tree/small.age" >"$T/.open" 2>/dev/null ||
		fail "age cannot open small.age"
	cmp -s "$T/.open" "$T/plain/0" || fail "small.age opens to other bytes"
	# shellcheck disable=SC2086
	age -d $IDS "$D/tree/big.age" 2>/dev/null | cmp -s - "$T/plain/1" &&
		pass || fail "big.age opens to other bytes"
	expect_rc 0 "$RP" verify "$D/tree" --store "$D/store" --quiet
else
	echo "$IT_NAME: strace does not work here: direct-write case skipped"
fi

# ------------------------------------------------ X25519 -> X25519
X=$T/x
case_ "x25519 -> x25519: in place"
corpus "$X" "$T/x1.id"
rekey_to "$X" "$T/x2.id"
inodes "$X/tree" >"$T/ino0"
run_json "$X" 0
assert_json "$T/r.json" '["in_place"]' "$N"
inodes "$X/tree" >"$T/ino1"
assert_same "$T/ino0" "$T/ino1"
check "age opens every document (x25519)" opens_all "$X/tree"

case_ "x25519 -> rsa2048: copied once, then in place"
rm "$X/tree/d0/link"
rekey_to "$X" "$T/r1.pem"
run_json "$X" 0
assert_json "$T/r.json" '["copied"]' "$N"
ln "$X/tree/d0/0.age" "$X/tree/d0/link"
check "age opens every document (now rsa)" opens_all "$X/tree"
rekey_to "$X" "$T/r2.pem"
run_json "$X" 0
assert_json "$T/r.json" '["in_place"]' "$N"
check "age opens every document (rsa again)" opens_all "$X/tree"

case_ "recover with nothing to do"
expect_rc 0 "$RP" recover --store "$X/store"
assert_grep "$OUT" "nothing to recover"

if [ "$HOOKS" = 0 ]; then
	echo "$IT_NAME: no test hooks in this build: crash cases skipped"
	it_done
fi

# ---------------------------------------- a document without slack
case_ "a document without slack is copied once, then rewritten in place"
S=$T/noslack
corpus "$S" "$T/r1.pem" REPROTECT_TEST_FAULT=doc:no-pad:1
if grep -aq 'rp-pad' "$S/tree/d1/1.age"; then
	fail "the hook wrote a pad"
fi
rm "$S/tree/d0/link"
rekey_to "$S" "$T/r2.pem"
run_json "$S" 0
assert_json "$T/r.json" '["copied"]' "$N"
ln "$S/tree/d0/0.age" "$S/tree/d0/link"
rekey_to "$S" "$T/r3.pem"
run_json "$S" 0
assert_json "$T/r.json" '["in_place"]' "$N"
check "age opens every document" opens_all "$S/tree"

# ---------------------------------------------- killed in the middle
# The base: R's documents under r3 now; a rekey to r4 makes them move.
rekey_to "$R" "$T/r4.pem"
rm -rf "$T/base"
cp -a "$R" "$T/base"

# killed NAME IO ENV...: a run killed (SIGKILL) as ENV says; then recover,
# every document whole, and a rerun moves the rest
killed() {
	_name=$1
	_io=$2
	shift 2
	case_ "killed: $_name (--io $_io)"
	rm -rf "$T/c"
	cp -a "$T/base" "$T/c"
	expect_rc 137 env "$@" "$RP" run "$T/c/tree" --store "$T/c/store" \
		--in-place --quiet --batch 4 --jobs 2 --io "$_io"
	if no_journal "$T/c"; then
		fail "no journal after the kill"
	fi
	expect_rc 0 "$RP" recover --store "$T/c/store"
	cp "$OUT" "$T/recover.out"
	check "no journal after recover" no_journal "$T/c"
	check "age opens every document after recover" opens_all "$T/c/tree"
	expect_rc 0 "$RP" run "$T/c/tree" --store "$T/c/store" --in-place \
		--quiet --json
	cp "$OUT" "$T/r.json"
	_mv=$(json_get "$T/r.json" '["outcomes"].get("moved", {}).get("documents", 0)')
	_cur=$(json_get "$T/r.json" '["outcomes"].get("current", {}).get("documents", 0)')
	if [ $((_mv + _cur)) -eq $((N + 1)) ]; then pass; else
		fail "rerun: $_mv moved + $_cur current != $((N + 1))"
	fi
	expect_rc 0 "$RP" verify "$T/c/tree" --store "$T/c/store" --quiet
	check "age opens every document after the rerun" opens_all "$T/c/tree"
	check "no journal after the rerun" no_journal "$T/c"
	assert_no_tmp "$T/c"
}

for io in uring sync; do
	killed "after the journal append" $io \
		REPROTECT_TEST_CRASH=run:ip-journaled
	killed "between two header writes" $io \
		REPROTECT_TEST_CRASH=run:ip-wrote-one
	killed "after the writes, before the sync" $io \
		REPROTECT_TEST_CRASH=run:ip-written
	killed "after the sync, before the commit" $io \
		REPROTECT_TEST_CRASH=run:ip-synced
	killed "half a header written" $io \
		REPROTECT_TEST_FAULT=io:torn-header:1:3 REPROTECT_TEST_CRASH=run:torn
	assert_grep "$T/recover.out" "1 torn header(s) restored"
	killed "a power cut kept part of a header" $io \
		REPROTECT_TEST_FAULT=io:powercut:1 REPROTECT_TEST_CRASH=run:powercut
	assert_grep "$T/recover.out" "1 torn header(s) restored"
done

case_ "a torn header is recovered by the next run itself"
rm -rf "$T/c"
cp -a "$T/base" "$T/c"
expect_rc 137 env REPROTECT_TEST_FAULT=io:torn-header:1:2 \
	REPROTECT_TEST_CRASH=run:torn "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --quiet --batch 4
run_json "$T/c" 0
assert_json "$T/r.json" '["recovery"]["restored"]' 1
assert_json "$T/r.json" '["outcomes"].get("failed-bad-document", {}).get("documents", 0)' 0
check "age opens every document" opens_all "$T/c/tree"
check "no journal" no_journal "$T/c"

case_ "a header changed by someone else after the kill is left alone"
rm -rf "$T/c"
cp -a "$T/base" "$T/c"
expect_rc 137 env REPROTECT_TEST_FAULT=io:torn-header:1:1 \
	REPROTECT_TEST_CRASH=run:torn "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --quiet --batch 4 --jobs 1
# every document's first byte overwritten: none is the run's any more
for f in $(find "$T/c/tree" -name '*.age'); do
	printf 'Z' | dd of="$f" bs=1 count=1 conv=notrunc 2>/dev/null
done
expect_rc 0 "$RP" recover --store "$T/c/store"
assert_grep "$OUT" "0 torn header(s) restored"
check "no journal: nothing of it is the run's" no_journal "$T/c"

case_ "a file system that refuses direct writes gets plain ones"
rm -rf "$T/c"
cp -a "$T/base" "$T/c"
expect_rc 0 env REPROTECT_TEST_FAULT=io:dio:1:1:1000 "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --quiet --json --batch 4
cp "$OUT" "$T/r.json"
assert_json "$T/r.json" '["in_place"]' "$N"
check "age opens every document" opens_all "$T/c/tree"
check "no journal" no_journal "$T/c"

# ------------------------------------------------- faults in place
case_ "a header write fails: that document stays whole"
rm -rf "$T/c"
cp -a "$T/base" "$T/c"
expect_rc 1 env REPROTECT_TEST_FAULT=io:pwrite:EIO:3 "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --quiet --json --batch 4
cp "$OUT" "$T/r.json"
assert_json "$T/r.json" '["outcomes"]["failed-io"]["documents"]' 1
check "age opens every document" opens_all "$T/c/tree"
check "no journal" no_journal "$T/c"
run_json "$T/c" 0

case_ "an fsync fails: the journal stays, recovery settles it"
rm -rf "$T/c"
cp -a "$T/base" "$T/c"
expect_rc 1 env REPROTECT_TEST_FAULT=io:fsync:EIO:2 "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --quiet --json --batch 4 --jobs 1
cp "$OUT" "$T/r.json"
assert_json "$T/r.json" '["outcomes"]["failed-io"]["documents"]' 1
check "age opens every document" opens_all "$T/c/tree"
run_json "$T/c" 0
assert_json "$T/r.json" '["recovery"]["journals"]' 1
check "no journal" no_journal "$T/c"

case_ "a document changed before the commit is left as it is now"
rm -rf "$T/c"
cp -a "$T/base" "$T/c"
REPROTECT_TEST_PAUSE=run:before-commit:3000:1 "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --quiet --json --batch 64 --jobs 1 \
	>"$T/r.json" 2>"$T/r.err" &
_pid=$!
sleep 1.5
cat "$T/c/tree/d1/9.age" >"$T/was9"
printf 'x' >>"$T/c/tree/d1/9.age"
_rc=0
wait "$_pid" || _rc=$?
if [ "$_rc" = 1 ]; then pass; else fail "exit $_rc, want 1"; fi
assert_json "$T/r.json" '["outcomes"]["failed-changed"]["documents"]' 1
printf 'x' >>"$T/was9"
assert_same "$T/was9" "$T/c/tree/d1/9.age"

case_ "the target key revoked while a batch waits to commit: nothing under it"
rm -rf "$T/c"
cp -a "$T/base" "$T/c"
KT=$("$RP" key list --json --store "$T/c/store" | py -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["state"]=="active"][0])')
# one batch of all 12: its commit waits, no other writer has any
REPROTECT_TEST_PAUSE=run:before-commit:6000:1 "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --quiet --json --batch 64 \
	--batch-ms 1000 --jobs 1 \
	>"$T/r.json" 2>"$T/r.err" &
_pid=$!
sleep 2
expect_rc 0 "$RP" key revoke "$KT" --force --yes --store "$T/c/store"
_rc=0
wait "$_pid" || _rc=$?
if [ "$_rc" = 8 ]; then pass; else fail "exit $_rc, want 8"; fi
assert_json "$T/r.json" '["outcomes"].get("moved", {}).get("documents", 0)' 0
check "age opens every document (all under the old key)" opens_all "$T/c/tree"
if age -d -i "$T/r4.pem" "$T/c/tree/d0/2.age" >/dev/null 2>&1; then
	fail "a document went under the revoked key"
else
	pass
fi
check "no journal" no_journal "$T/c"

case_ "SIGINT: the batch in flight finishes, nothing fails"
rm -rf "$T/c"
cp -a "$T/base" "$T/c"
REPROTECT_TEST_PAUSE=run:before-commit:2000:1 "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --quiet --json --batch 4 --jobs 1 \
	>"$T/r.json" 2>"$T/r.err" &
_pid=$!
sleep 1
kill -INT "$_pid"
_rc=0
wait "$_pid" || _rc=$?
if [ "$_rc" = 8 ]; then pass; else fail "exit $_rc, want 8"; fi
assert_json "$T/r.json" '["outcomes"].get("failed-io", {}).get("documents", 0)' 0
_mv=$(json_get "$T/r.json" '["outcomes"].get("moved", {}).get("documents", 0)')
if [ "$_mv" -ge 1 ]; then pass; else fail "the batch in flight did not commit"; fi
check "age opens every document" opens_all "$T/c/tree"
check "no journal" no_journal "$T/c"
run_json "$T/c" 0

it_done
