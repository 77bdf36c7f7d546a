#!/bin/sh
# it_secrets.sh REPROTECT: secret hygiene. Two checks, each with a
# positive control that proves it can see what it looks for.
#
# (a) Memory. With REPROTECT_TEST_PAUSE=cli:exit:MS the process sleeps
#     just before main() returns, after every store is closed and every
#     key freed. The test waits for that sleep, stops the process
#     (SIGSTOP, so timing does not matter), reads every readable mapping
#     through /proc/PID/mem (tests/secrets/rpsecrets.py scan) and looks
#     for: the store passphrase (given with --passphrase-file, so it is
#     not in the environment), the scrypt KEK, the world key and the keys
#     derived from it, the tenant private keys (X25519 scalars and age
#     identity strings from age-keygen, the Ed25519 seeds derived from
#     them; 32-byte chunks of an RSA key's d, p and q, both big-endian as
#     in DER and little-endian as in OpenSSL's BIGNUM limbs, and a line of
#     its PEM), every document's file key, header MAC key and payload key
#     (unwrapped in Python from the documents with the keys above and
#     checked against the header MAC), and 32-byte windows of the
#     plaintext (random bytes, so zstd keeps them as literals). Commands:
#     key import (X25519, RSA), protect (plain and --compress), unprotect
#     to a file, rekey, run --in-place (rewrap) and run --mode reencrypt.
#     Controls: `unprotect -o -` blocked on a pipe nobody reads must show
#     the plaintext, the payload key and the world key; a process given
#     the passphrase in REPROTECT_PASSPHRASE must show it at the pause.
#
#     Which build: the pause point exists only with RP_TEST_HOOKS, which
#     the sanitizer build (build-asan) has; elsewhere the script exits 77.
#     ASan suits this check: a freed block waits in quarantine
#     (quarantine_size_mb, set to 512 below) and is not refilled
#     (max_free_fill_size=0, the default), so memory that was freed
#     without being cleansed still holds the secret when we look; only
#     a freed block's first bytes may hold allocator metadata (a key
#     that starts a block and was overwritten there is missed; the
#     controls show keys inside structs are found). ASan fills new
#     blocks (malloc_fill_byte, first 4 KiB) but that only hides data
#     that was reused, which quarantine delays. With glibc's malloc (a release build configured with
#     -DRP_TEST_HOOKS=ON) the check still runs but freed blocks get
#     reused and merged sooner, so it finds less. The ASan shadow
#     (mappings of 1 TiB or more) holds no program data and is skipped.
#
# (b) Disk. `run --in-place` (rewrap) and `run --mode reencrypt`, over a
#     plain and a --compress document, run under strace -f -xx -y with
#     umask 000: no buffer written by any write call may hold a plaintext
#     window; every payload copy (copy_file_range) must read from a
#     protected document; every temporary file gets exactly as many bytes
#     through the traced calls as the document it becomes (so a write we
#     cannot see, such as one through io_uring, would fail the check);
#     every file created (open with O_CREAT) has mode 0600 and every
#     folder 0700 even though the umask would allow more. After each
#     command the store's files are 0600 and its folders 0700.
#     Controls: strace of `unprotect -o -` must show the plaintext being
#     written; strace of a shell creating a file under umask 000 must be
#     reported as a bad mode.
#
# Leaks found and not fixed yet are listed in KNOWN (below): they are
# reported as XFAIL, and an entry that no longer matches fails, so the
# list shrinks with each fix. Empty it to make the test strict.
#
# Needs python3, age-keygen, openssl, strace, and the right to read
# another process's memory (root, or ptrace_scope 0): skipped without.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/it_lib.sh"
need python3 age-keygen openssl strace

if ! grep -q REPROTECT_TEST_PAUSE "$RP"; then
	echo "$IT_NAME: SKIP: no test hooks in this build" >&2
	exit 77
fi
H=$HERE/secrets/rpsecrets.py
if [ ! -f "$H" ]; then
	echo "$IT_NAME: '$H' is missing" >&2
	exit 2
fi
# ASan: keep freed blocks in quarantine, unfilled (see above)
export ASAN_OPTIONS="quarantine_size_mb=512:max_free_fill_size=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

# can we read another process's memory, and trace one?
sleep 30 &
_probe=$!
if ! py -c 'import sys; f = open("/proc/%s/mem" % sys.argv[1], "rb")' \
	"$_probe" 2>/dev/null; then
	kill "$_probe"
	echo "$IT_NAME: SKIP: cannot read another process's memory" >&2
	exit 77
fi
kill "$_probe"
wait "$_probe" 2>/dev/null || true
if ! strace -f -o /dev/null true 2>/dev/null; then
	echo "$IT_NAME: SKIP: strace does not work here" >&2
	exit 77
fi

STORE=$T/store
PASS=$T/pass
printf 'pw-%s\n' "$(od -An -N 16 -tx1 /dev/urandom | tr -d ' \n')" >"$PASS"
rp() {
	"$RP" --store "$STORE" --passphrase-file "$PASS" "$@"
}
# sec CMD ARGS...: rpsecrets.py
sec() {
	py "$H" "$@"
}

# store_modes: every file in the store is 0600, every folder 0700
store_modes() {
	_bad=$(find "$STORE" \( -type f ! -perm 0600 -printf '%m %p;' \) -o \
		\( -type d ! -perm 0700 -printf '%m %p;' \))
	if [ -z "$_bad" ]; then
		pass
	else
		fail "store modes: $_bad"
	fi
}

# ---------------------------------------------------------------- setup
case_ "setup"
age-keygen -o a.key 2>/dev/null
age-keygen -o b.key 2>/dev/null
openssl genrsa -out c.pem 2048 2>/dev/null
{ sec x25519 a.key A && sec x25519 b.key B && sec rsa c.pem C; } >keys.nd
expect_rc 0 rp init
sec world "$STORE" "$PASS" >world.nd
for n in 1 2 z; do
	mkfile "d$n" 150000
	sec plain "d$n" "d$n" >>plain.nd
done
# expected: the number of needles of each kind
if [ "$(wc -l <keys.nd)" -ne 15 ] || [ "$(wc -l <world.nd)" -ne 6 ] ||
	[ "$(wc -l <plain.nd)" -ne 24 ]; then
	fail "cannot compute the secrets"
	it_done
fi

# doc_nd NAME FILE: the document's secrets, appended to docs.nd
doc_nd() {
	sec doc "$2" "$1" a.key b.key c.pem >>docs.nd ||
		fail "cannot unwrap $2 with the test's keys"
}

# wait_syscall PID NR...: wait until PID's only thread sleeps in one of
# the syscalls NR (up to 60 s); returns 1 if PID ended first
wait_syscall() {
	_w_pid=$1
	shift
	_w_n=0
	while kill -0 "$_w_pid" 2>/dev/null; do
		_w_sc=$(cut -d' ' -f1 "/proc/$_w_pid/syscall" 2>/dev/null ||
			echo x)
		# threads other than io_uring's workers (iou-wrk-*), which
		# the kernel lets idle a few seconds after a ring is gone
		_w_nt=$(cat "/proc/$_w_pid"/task/*/comm 2>/dev/null |
			grep -vc '^iou-' || true)
		for _w_want in "$@"; do
			if [ "$_w_sc" = "$_w_want" ] && [ "$_w_nt" -eq 1 ]; then
				return 0
			fi
		done
		_w_n=$((_w_n + 1))
		if [ "$_w_n" -gt 1200 ]; then
			return 1
		fi
		sleep 0.05
	done
	return 1
}

# scan_at_exit TAG NEEDLEFILES -- ARGS...: runs reprotect ARGS on the store
# with the exit pause, and when it sleeps there stops it, runs the
# `before_scan` hook (may add needles), scans it into TAG.found, lets it
# exit. Sets LAST_RC. Fails if the pause was never reached.
before_scan() {
	:
}
scan_at_exit() {
	_s_tag=$1
	shift
	_s_nd=""
	while [ "$1" != "--" ]; do
		_s_nd="$_s_nd $1"
		shift
	done
	shift
	if [ -n "${REPROTECT_PASSPHRASE:-}" ]; then
		set -- --store "$STORE" "$@"
	else
		set -- --store "$STORE" --passphrase-file "$PASS" "$@"
	fi
	# a plain command (not a function) so that $! is reprotect itself
	env REPROTECT_TEST_PAUSE=cli:exit:3000 "$RP" "$@" >"$OUT" 2>"$ERR" \
		</dev/null &
	_s_pid=$!
	# clock_nanosleep (230) or nanosleep (35), x86-64, or the sleep
	# resumed after a signal (restart_syscall, 219)
	if ! wait_syscall "$_s_pid" 230 35 219; then
		LAST_RC=0
		wait "$_s_pid" || LAST_RC=$?
		fail "$_s_tag: never paused at cli:exit (exit $LAST_RC)"
		show_err
		: >"$_s_tag.found"
		return 0
	fi
	kill -STOP "$_s_pid"
	before_scan
	# shellcheck disable=SC2086
	sec scan "$_s_pid" $_s_nd >"$_s_tag.found" 2>"$_s_tag.scanerr" ||
		fail "$_s_tag: scan failed: $(head -c 300 "$_s_tag.scanerr")"
	kill -CONT "$_s_pid"
	LAST_RC=0
	wait "$_s_pid" || LAST_RC=$?
	grep -q '^scanned [1-9]' "$_s_tag.found" ||
		fail "$_s_tag: scanned nothing"
}

# Known leaks, reported and not fixed yet: one "TAG:NEEDLE-GLOB" a line;
# a secret the scan TAG finds that matches is reported as XFAIL instead
# of failing. Empty: the test is strict. (The last entries, the RSA CRT
# parts OpenSSL's decoders and key generation left in freed heap blocks,
# went when libcrypto's allocator began to wipe every block it frees:
# common/rp_ossl.c, 2026-12-05.)
KNOWN='
'
# and on disk: a --report FILE created other than 0600 (1: known; empty:
# strict)
KNOWN_REPORT_MODE=

# clean TAG WANT_RC: the command exited WANT_RC and left none of the
# secrets in its memory (but those KNOWN)
clean() {
	if [ "$LAST_RC" -ne "$2" ]; then
		fail "$1: exit $LAST_RC, want $2"
		show_err
	fi
	_c_bad=""
	_c_used=""
	for _c_n in $(grep '^FOUND' "$1.found" | cut -d' ' -f2); do
		_c_k=""
		for _c_e in $KNOWN; do
			# shellcheck disable=SC2254
			case "$1:$_c_n" in
			$_c_e) _c_k=$_c_e ;;
			esac
		done
		if [ -n "$_c_k" ]; then
			_c_used="$_c_used $_c_k"
		else
			_c_bad="$_c_bad $(grep "^FOUND $_c_n " "$1.found" |
				cut -d' ' -f2-);"
		fi
	done
	if [ -n "$_c_used" ]; then
		# shellcheck disable=SC2046
		echo "$IT_NAME: XFAIL [$CASE]: $1: known leaks:" $(grep \
			'^FOUND' "$1.found" | cut -d' ' -f2 | sort) >&2
	fi
	if [ -n "$_c_bad" ]; then
		fail "$1: secrets left in memory at exit:$_c_bad"
	else
		pass
	fi
	for _c_e in $KNOWN; do
		case $_c_e in
		"$1":*)
			case " $_c_used " in
			*" $_c_e "*) ;;
			*)
				# OpenSSL's freed blocks are reused or not
				# from run to run: a known leak may not show
				echo "$IT_NAME: note [$CASE]: known leak" \
					"'$_c_e' did not show this time" >&2
				;;
			esac
			;;
		esac
	done
}

# found TAG NEEDLE: the scan of TAG found NEEDLE (a control)
found() {
	if grep -q "^FOUND $2 in" "$1.found"; then
		pass
	else
		fail "$1: control: '$2' not found: the scan is blind"
	fi
}

# ------------------------------------------------ (a) memory at exit
case_ "memory: key import"
scan_at_exit imp_a world.nd keys.nd -- key import a.key --activate
clean imp_a 0
scan_at_exit imp_b world.nd keys.nd -- key import b.key
clean imp_b 0
B_ID=$(cut -d' ' -f1 "$OUT")
scan_at_exit imp_c world.nd keys.nd -- key import c.pem
clean imp_c 0
C_ID=$(cut -d' ' -f1 "$OUT")
store_modes

case_ "memory: protect"
expect_rc 0 rp template create conf --rights view,print
before_scan() {
	doc_nd p1 d1.age
	doc_nd p2 d2.age
}
: >docs.nd
scan_at_exit protect world.nd keys.nd plain.nd docs.nd -- \
	protect d1 d2 --owner alice --template conf
clean protect 0
before_scan() {
	doc_nd pz dz.age
}
scan_at_exit protect_z world.nd keys.nd plain.nd docs.nd -- \
	protect dz --compress
clean protect_z 0
before_scan() {
	:
}

case_ "memory: unprotect"
scan_at_exit unprot world.nd keys.nd plain.nd docs.nd -- \
	unprotect d1.age -o d1.out
clean unprot 0
assert_same d1 d1.out
assert_mode600 d1.out
scan_at_exit unprot_z world.nd keys.nd plain.nd docs.nd -- \
	unprotect dz.age -o dz.out
clean unprot_z 0
assert_same dz dz.out

case_ "memory: rekey"
scan_at_exit rekey_b world.nd keys.nd docs.nd -- rekey --to "$B_ID"
clean rekey_b 0
store_modes

case_ "memory: run rewrap"
mkdir docs
cp d1.age d2.age dz.age docs/
before_scan() {
	doc_nd r1 docs/d1.age
	doc_nd r2 docs/d2.age
	doc_nd rz docs/dz.age
}
scan_at_exit rewrap world.nd keys.nd plain.nd docs.nd -- \
	run docs --in-place --quiet
clean rewrap 0
# the documents moved to B (only B's identity opens them now)
if age -d -i b.key docs/d1.age 2>/dev/null | cmp -s - d1; then pass; else
	fail "rewrap: docs/d1.age does not open with B"
fi

case_ "memory: run reencrypt"
scan_at_exit rekey_c world.nd keys.nd docs.nd -- rekey --to "$C_ID"
clean rekey_c 0

# (issue 15, 5) a job returns to the pool with its file keys wiped: paused
# inside a run after its first batch commits (--batch 1, --jobs 1), the
# file keys of the documents already moved are nowhere in its memory.
# Catches: the wipe of the keys in job_put (engine/run.c) removed (the
# pool is wiped at exit, where the other scans look).
case_ "memory: a run's finished documents, mid-run"
mkdir pool
cp docs/d1.age docs/d2.age docs/dz.age pool/
env REPROTECT_TEST_PAUSE=run:committed:5000:1 "$RP" --store "$STORE" \
	--passphrase-file "$PASS" run pool --in-place --quiet --batch 1 \
	--jobs 1 >"$OUT" 2>"$ERR" </dev/null &
_m_pid=$!
_m_n=0
_m_paused=0
while kill -0 "$_m_pid" 2>/dev/null && [ "$_m_n" -lt 1200 ]; do
	# a thread asleep in the pause: clock_nanosleep (230), nanosleep (35)
	if cut -d' ' -f1 /proc/"$_m_pid"/task/*/syscall 2>/dev/null |
		grep -qx '230\|35'; then
		_m_paused=1
		break
	fi
	_m_n=$((_m_n + 1))
	sleep 0.05
done
# the other writer may be between a document's header write and the
# return of its job to the pool: wait until every thread but the sleeper
# waits on a futex (queues, joins), so "changed on disk" means "finished"
_m_n=0
while [ "$_m_paused" = 1 ] && [ "$_m_n" -lt 100 ] &&
	cut -d' ' -f1 /proc/"$_m_pid"/task/*/syscall 2>/dev/null |
	grep -qvx '202\|230\|35'; do
	_m_n=$((_m_n + 1))
	sleep 0.02
done
if [ "$_m_paused" = 1 ]; then
	kill -STOP "$_m_pid"
	: >pool.nd
	_m_done=0
	for n in 1 2 z; do
		if ! cmp -s "pool/d$n.age" "docs/d$n.age"; then
			sec doc "pool/d$n.age" "m$n" a.key b.key c.pem |
				grep '\.file_key ' >>pool.nd
			_m_done=$((_m_done + 1))
		fi
	done
	if [ "$_m_done" -ge 1 ]; then pass; else
		fail "no document moved before the pause"
	fi
	sec scan "$_m_pid" pool.nd >pool_mid.found 2>pool_mid.scanerr ||
		fail "pool_mid: scan failed: $(head -c 300 pool_mid.scanerr)"
	kill -CONT "$_m_pid"
	LAST_RC=0
	wait "$_m_pid" || LAST_RC=$?
	grep -q '^scanned [1-9]' pool_mid.found || fail "pool_mid: scanned nothing"
	clean pool_mid 0
else
	fail "the run never paused at run:committed"
	wait "$_m_pid" || true
fi

case_ "memory: run reencrypt"
before_scan() {
	doc_nd e1 docs/d1.age
	doc_nd e2 docs/d2.age
	doc_nd ez docs/dz.age
}
scan_at_exit reenc world.nd keys.nd plain.nd docs.nd -- \
	run docs --in-place --mode reencrypt --quiet
clean reenc 0
before_scan() {
	:
}
scan_at_exit unprot_rsa world.nd keys.nd plain.nd docs.nd -- \
	unprotect docs/d2.age -o d2.out
clean unprot_rsa 0
assert_same d2 d2.out
# new file keys: the reencrypted documents' keys differ from the old ones
if [ "$(grep '^e1.file_key' docs.nd | cut -d' ' -f2)" != \
	"$(grep '^r1.file_key' docs.nd | cut -d' ' -f2)" ]; then
	pass
else
	fail "reencrypt kept the file key"
fi
store_modes

case_ "memory: controls"
# the scan sees a live process's plaintext, payload key and world key:
# unprotect to a pipe that nobody reads blocks in write(2) (1)
mkfifo fifo
sleep 120 <fifo &
_reader=$!
"$RP" --store "$STORE" --passphrase-file "$PASS" unprotect docs/d1.age \
	-o - >fifo 2>/dev/null &
_pid=$!
if wait_syscall "$_pid" 1; then
	kill -STOP "$_pid"
	sec scan "$_pid" world.nd keys.nd plain.nd docs.nd >ctl.found ||
		fail "control scan failed"
	kill -CONT "$_pid"
	found ctl world.key
	# the payload key too, unless the write that blocked was the last
	# one, after the stream was closed and wiped
	if ! grep -q '^FOUND e1.payload_key' ctl.found; then
		echo "$IT_NAME: note: the blocked unprotect had closed its" \
			"stream already" >&2
	fi
	# the first windows went into the pipe; a later one is in the buffer
	if grep -q '^FOUND d1.plain@' ctl.found; then pass; else
		fail "control: no plaintext found in the blocked unprotect"
	fi
else
	fail "control: unprotect never blocked writing"
fi
kill "$_reader" 2>/dev/null || true
wait "$_pid" 2>/dev/null || true
wait "$_reader" 2>/dev/null || true
# the passphrase in the environment is seen at the pause point
REPROTECT_PASSPHRASE=$(cat "$PASS")
export REPROTECT_PASSPHRASE
scan_at_exit ctl_env world.nd -- key list
unset REPROTECT_PASSPHRASE
found ctl_env passphrase

# ------------------------------------------------ (b) nothing to disk
# traced RUN ARGS...: strace -f of a reprotect command under umask 000
traced() {
	_t_log=$1
	shift
	LAST_RC=0
	# LeakSanitizer cannot run under ptrace
	(umask 000 && ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
		strace -f -qq -xx -y -s 1000000 -o "$_t_log" \
		-e trace=write,pwrite64,writev,pwritev,pwritev2,sendto,sendmsg,copy_file_range,sendfile,open,openat,creat,mkdir,mkdirat \
		"$RP" --store "$STORE" --passphrase-file "$PASS" "$@") \
		>"$OUT" 2>"$ERR" </dev/null || LAST_RC=$?
}

# disk_clean LOG REPORT JSON DOCS...: the checks of (b) on one traced
# run whose --report was JSON
disk_clean() {
	_d_log=$1
	_d_rep=$2
	_d_json=$3
	shift 3
	if [ "$LAST_RC" -ne 0 ]; then
		fail "$_d_log: exit $LAST_RC"
		show_err
	fi
	sec strace "$_d_log" plain.nd >"$_d_rep"
	if grep -q '^FOUND' "$_d_rep"; then
		fail "$_d_log: plaintext written: $(grep '^FOUND' "$_d_rep" |
			head -n 3 | tr '\n' ';')"
	else
		pass
	fi
	if [ -n "$KNOWN_REPORT_MODE" ]; then
		if grep -qxF "MODE $_d_json 0666" "$_d_rep"; then
			echo "$IT_NAME: XFAIL [$CASE]: known: --report file" \
				"created 0666" >&2
		else
			fail "XPASS: the --report file is no longer created" \
				"0666: empty KNOWN_REPORT_MODE"
		fi
		grep -vxF "MODE $_d_json 0666" "$_d_rep" >"$_d_rep.2" || true
	else
		cp "$_d_rep" "$_d_rep.2"
	fi
	if grep -q '^MODE' "$_d_rep.2"; then
		fail "$_d_log: created with a mode other than 0600/0700: $(grep \
			'^MODE' "$_d_rep.2" | tr '\n' ';')"
	else
		pass
	fi
	if [ -z "$KNOWN_REPORT_MODE" ]; then
		assert_mode600 "$_d_json"
	fi
	if grep -q '^CREATED [1-9]' "$_d_rep"; then pass; else
		fail "$_d_log: no file creation seen: the trace is blind"
	fi
	# payload copies read protected documents only
	if grep '^COPY' "$_d_rep" | grep -v '^COPY [^ ]*\.age -> ' |
		grep -q .; then
		fail "$_d_log: copy from a non-document: $(grep '^COPY' \
			"$_d_rep" | head -n 2 | tr '\n' ';')"
	else
		pass
	fi
	# every byte of every document went through a traced call: the
	# bytes written to temporaries equal the documents' sizes
	_d_want=0
	for _d_f in "$@"; do
		_d_want=$((_d_want + $(file_size "$_d_f")))
		assert_mode600 "$_d_f"
	done
	_d_got=$(grep "^WROTE $T/docs/\\..*\\.rp-tmp-" "$_d_rep" |
		awk '{ s += $NF } END { print s + 0 }')
	if [ "$_d_got" -eq "$_d_want" ]; then pass; else
		fail "$_d_log: $_d_got bytes traced into temporaries, the \
documents hold $_d_want"
	fi
	store_modes
}

case_ "disk: controls"
traced ctl.strace unprotect docs/d2.age -o -
sec strace ctl.strace plain.nd >ctl.rep
if grep -q '^FOUND d2.plain@' ctl.rep; then pass; else
	fail "control: plaintext written to stdout not seen in the trace"
fi
(umask 000 && strace -f -qq -xx -y -o ctl2.strace \
	-e trace=openat,open,creat sh -c ': >made') 2>/dev/null
sec strace ctl2.strace plain.nd >ctl2.rep
if grep -q '^MODE .*made 0666' ctl2.rep; then pass; else
	fail "control: a 0666 file creation not seen: $(cat ctl2.rep)"
fi

case_ "disk: run rewrap"
expect_rc 0 rp rekey --alg x25519
traced rewrap.strace run docs --in-place --quiet --report "$T/rw.json"
disk_clean rewrap.strace rewrap.rep "$T/rw.json" docs/d1.age docs/d2.age \
	docs/dz.age
assert_json rw.json '["outcomes"]["moved"]["documents"]' 3

case_ "disk: run reencrypt"
expect_rc 0 rp rekey --alg rsa2048
traced reenc.strace run docs --in-place --mode reencrypt --quiet \
	--io sync --report "$T/re.json"
disk_clean reenc.strace reenc.rep "$T/re.json" docs/d1.age docs/d2.age \
	docs/dz.age
assert_json re.json '["outcomes"]["moved"]["documents"]' 3
expect_rc 0 rp unprotect docs/dz.age -o dz.out2
assert_same dz dz.out2

it_done
