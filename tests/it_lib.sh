# it_lib.sh: shared helpers for the tests/it_*.sh integration tests.
# Sourced (POSIX sh, `set -eu`) by a script that got the reprotect binary as
# $1. Sets up:
#   RP            absolute path of the reprotect binary
#   T             a private temp dir (mktemp -d), removed on exit; the cwd
#   OUT, ERR      stdout and stderr of the last expect_rc/run_rp command
#   LAST_RC       its exit code
# and the helpers below. Each assertion counts one pass or one fail; the
# script ends with `it_done`, which prints "NAME: N passed, N failed" and
# exits 1 if anything failed. Run directly (`sh tests/it_lib.sh BINARY`,
# as CTest does for every tests/it_*.sh), it tests its own helpers.
set -eu

IT_NAME=$(basename "$0" .sh)

if [ $# -lt 1 ] || [ -z "$1" ]; then
	echo "usage: $0 PATH/TO/reprotect" >&2
	exit 2
fi
case $1 in
/*) RP=$1 ;;
*) RP=$(pwd)/$1 ;;
esac
if [ ! -x "$RP" ]; then
	echo "$IT_NAME: '$RP' is not an executable" >&2
	exit 2
fi

# need TOOL...: skip the whole script (exit 77) when a tool is missing.
# For python3, sets PY to the interpreter itself (a version manager's shim
# costs ~0.1 s a call) and runs it without site packages.
PY=python3
need() {
	for _L_t in "$@"; do
		if ! command -v "$_L_t" >/dev/null 2>&1; then
			echo "$IT_NAME: SKIP: '$_L_t' is not installed" >&2
			exit 77
		fi
	done
	case " $* " in
	*" python3 "*)
		PY=$(python3 -c 'import sys; print(sys.executable)') || PY=
		[ -x "$PY" ] || PY=$(command -v python3)
		;;
	esac
}

# py ARGS...: python3 (see need), isolated and without site packages
py() {
	"$PY" -I -S "$@"
}

umask 077
T=$(mktemp -d "${TMPDIR:-/tmp}/rp-it.XXXXXX")
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM HUP
cd "$T" || exit 1
OUT=$T/.out
ERR=$T/.err
LAST_RC=0

# Nothing from the caller's environment may pick a store or a passphrase.
unset REPROTECT_STORE REPROTECT_PASSPHRASE XDG_DATA_HOME
export HOME="$T/home"
mkdir "$HOME"

IT_PASS=0
IT_FAIL=0
CASE="(setup)"

# case_ NAME: names the case that the next assertions belong to.
case_() {
	CASE=$*
}

pass() {
	IT_PASS=$((IT_PASS + 1))
}

# fail MSG...: one failed assertion, printed with the current case.
fail() {
	IT_FAIL=$((IT_FAIL + 1))
	echo "FAIL [$CASE]: $*" >&2
}

# check DESC CMD...: passes when CMD exits 0.
check() {
	_L_desc=$1
	shift
	if "$@" >/dev/null 2>&1; then
		pass
	else
		fail "$_L_desc"
	fi
}

show_err() {
	if [ -s "$ERR" ]; then
		sed 's/^/    stderr: /' "$ERR" | head -n 20 >&2
	fi
}

# run_rp CMD...: runs CMD, stdout to $OUT, stderr to $ERR, code in LAST_RC.
run_rp() {
	LAST_RC=0
	"$@" >"$OUT" 2>"$ERR" </dev/null || LAST_RC=$?
}

# expect_rc N CMD...: CMD must exit with code N.
expect_rc() {
	_L_want=$1
	shift
	run_rp "$@"
	if [ "$LAST_RC" -eq "$_L_want" ]; then
		pass
	else
		fail "exit $LAST_RC, want $_L_want: $*"
		show_err
	fi
}

# wait_for TEST...: waits until `[ TEST... ]` holds (`wait_for -s FILE`),
# polling every 20 ms, at most 30 s; the caller checks what follows.
wait_for() {
	_L_w=0
	while ! [ "$@" ] && [ "$_L_w" -lt 1500 ]; do
		sleep 0.02
		_L_w=$((_L_w + 1))
	done
}

# stop_run JOURNAL MAX CMD...: runs CMD (a run or verify with --journal
# JOURNAL) in the background, sends it SIGTERM a second after its journal
# is open (its signal handlers are set by then), and checks that it exits
# 8 within MAX seconds of the signal
stop_run() {
	_L_j=$1
	_L_max=$2
	shift 2
	"$@" >/dev/null 2>"$T/.stop-err" &
	_L_pid=$!
	wait_for -e "$_L_j"
	sleep 1
	_L_t0=$(date +%s)
	kill -TERM "$_L_pid"
	_L_rc=0
	wait "$_L_pid" || _L_rc=$?
	_L_t1=$(date +%s)
	assert_eq "$_L_rc" 8 "exit after SIGTERM"
	if [ $((_L_t1 - _L_t0)) -le "$_L_max" ]; then pass; else
		fail "the stop took $((_L_t1 - _L_t0)) s, want at most $_L_max"
	fi
}

# busy_rate_ok REPORT LIMIT DOCS: a run under a keystore busy above LIMIT
# operations a second (REPROTECT_TEST_BUSY) moved all DOCS documents,
# failed none, was told busy, and its operations done (asked minus
# answered busy) ran at 0.90 to 1.0 x LIMIT
busy_rate_ok() {
	if py - "$1" "$2" "$3" <<'PY'; then pass; else fail "$(cat "$1")"; fi
import json, sys
r = json.load(open(sys.argv[1]))
limit, n = float(sys.argv[2]), int(sys.argv[3])
k = r["key_ops"]
done = k["count"] - k["busy"]
rate = done / r["seconds"]
print("rate %.1f/s of %.0f (%.2f), %d busy answers, %.1f s, pace at end %s"
      % (rate, limit, rate / limit, k["busy"], r["seconds"],
         k["pace_at_end"]), file=sys.stderr)
assert r["outcomes"]["moved"]["documents"] == n, r["outcomes"]
assert not [d for d in r["documents"] if d["outcome"].startswith("failed")]
assert k["busy"] > 0, k
assert done >= n, k
assert rate <= limit * 1.02 + limit / r["seconds"], rate
assert rate >= limit * 0.90, rate
PY
}

# assert_eq GOT WANT WHAT: the two strings are equal.
assert_eq() {
	if [ "$1" = "$2" ]; then pass; else fail "$3: got '$1', want '$2'"; fi
}

# assert_gt GOT LIMIT WHAT: the integer GOT is greater than LIMIT.
assert_gt() {
	if [ "$1" -gt "$2" ] 2>/dev/null; then pass; else
		fail "$3: got '$1', want more than '$2'"
	fi
}

# assert_same A B: the two files hold the same bytes.
assert_same() {
	if [ -f "$1" ] && [ -f "$2" ] && cmp -s "$1" "$2"; then
		pass
	else
		fail "'$1' and '$2' differ (or one is missing)"
	fi
}

assert_exists() {
	if [ -f "$1" ]; then pass; else fail "'$1' is missing"; fi
}

assert_absent() {
	if [ -e "$1" ] || [ -L "$1" ]; then
		fail "'$1' exists but must not"
	else
		pass
	fi
}

# assert_no_tmp [DIR...]: no atomic-write temp file (.NAME.rp-tmp-HEX) is
# left anywhere under DIR (default: the whole temp dir).
assert_no_tmp() {
	if [ $# -eq 0 ]; then
		set -- "$T"
	fi
	_L_left=$(find "$@" -name '.*.rp-tmp-*' 2>/dev/null | head -n 5)
	if [ -n "$_L_left" ]; then
		fail "temp files left: $(echo "$_L_left" | tr '\n' ' ')"
	else
		pass
	fi
}

# assert_mode600 FILE: a regular file created 0600.
assert_mode600() {
	_L_m=$(stat -c %a "$1" 2>/dev/null || echo missing)
	if [ "$_L_m" = 600 ]; then pass; else fail "'$1' mode $_L_m, want 600"; fi
}

# assert_grep FILE PATTERN: FILE has a line matching the fixed string.
assert_grep() {
	if grep -qF -- "$2" "$1"; then
		pass
	else
		fail "'$2' not in $(basename "$1"): $(head -c 300 "$1")"
	fi
}

# assert_err_line NAME WORD...: stderr of the last command is exactly one
# line, it names NAME, and after NAME it holds one of the WORDs
# (case-insensitive).
assert_err_line() {
	_L_name=$1
	shift
	_L_n=$(wc -l <"$ERR")
	_L_one=$(head -n 1 "$ERR")
	if [ "$_L_n" -ne 1 ]; then
		fail "stderr has $_L_n lines, want 1"
		show_err
		return 0
	fi
	case $_L_one in
	*"$_L_name"*) ;;
	*)
		fail "stderr does not name '$_L_name': $_L_one"
		return 0
		;;
	esac
	# look for the words after the file name, not in it
	_L_msg=${_L_one#*"$_L_name"}
	for _L_w in "$@"; do
		if printf '%s\n' "$_L_msg" | grep -qiF -- "$_L_w"; then
			pass
			return 0
		fi
	done
	fail "stderr tells none of [$*]: $_L_one"
}

# json_ok FILE: FILE is valid JSON.
json_ok() {
	if py -m json.tool "$1" >/dev/null 2>&1; then
		pass
	else
		fail "not valid JSON: $(head -c 300 "$1")"
	fi
}

# json_get FILE EXPR: prints a value of the JSON in FILE; EXPR is a Python
# subscript chain on `d`, e.g. '["checks"]["header_mac"]["status"]'.
json_get() {
	py -c 'import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
v = eval("d" + sys.argv[2])
print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2" 2>/dev/null ||
		echo "<no $2>"
}

# assert_json FILE EXPR VALUE
assert_json() {
	_L_v=$(json_get "$1" "$2")
	if [ "$_L_v" = "$3" ]; then
		pass
	else
		fail "json $2 = '$_L_v', want '$3'"
	fi
}

# mkfile PATH SIZE: SIZE random bytes.
mkfile() {
	head -c "$2" /dev/urandom >"$1"
	if [ "$(wc -c <"$1")" -ne "$2" ]; then
		echo "$IT_NAME: cannot make $1" >&2
		exit 1
	fi
}

# file_size PATH
file_size() {
	wc -c <"$1" | tr -d ' '
}

# byte_at FILE OFFSET: the byte's value, decimal.
byte_at() {
	od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' \n'
}

# put_byte FILE OFFSET VALUE: overwrite one byte in place (VALUE decimal).
put_byte() {
	# shellcheck disable=SC2059
	printf "\\$(printf '%03o' "$3")" |
		dd of="$1" bs=1 seek="$2" count=1 conv=notrunc 2>/dev/null
}

# flip_byte SRC DST OFFSET [MASK]: DST = SRC with byte OFFSET xor MASK (1).
flip_byte() {
	cp "$1" "$2"
	_L_b=$(byte_at "$1" "$3")
	if [ -z "$_L_b" ]; then
		echo "$IT_NAME: offset $3 is past the end of $1" >&2
		exit 1
	fi
	put_byte "$2" "$3" $((_L_b ^ ${4:-1}))
}

# header_len FILE: bytes up to and including the LF of the '--- ' MAC line.
header_len() {
	_L_l=$(grep -a -n -m 1 '^--- ' "$1" | cut -d: -f1)
	head -n "$_L_l" "$1" | wc -c | tr -d ' '
}

# it_done: the closing line and the exit code.
# flip_license_byte SRC DST OFFSET: DST is SRC with one bit of byte
# OFFSET of its rp-license body changed (the body decoded, flipped and
# re-encoded as age wraps it); the rest of the file as it was
flip_license_byte() {
	py -c 'import base64, sys
src, dst, off = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
end = data.index(b"\n---") + 1
lines = data[:end].split(b"\n")
i = lines.index(b"-> rp-license 1") + 1
j = i
while len(lines[j]) == 64:
    j += 1
body = b"".join(lines[i:j + 1])
raw = bytearray(base64.b64decode(body + b"=" * (-len(body) % 4)))
raw[off] ^= 1
enc = base64.b64encode(bytes(raw)).rstrip(b"=")
new = [enc[k:k + 64] for k in range(0, len(enc), 64)]
if len(new[-1]) == 64:
    new.append(b"")
lines[i:j + 1] = new
open(dst, "wb").write(b"\n".join(lines) + data[end:])' "$1" "$2" "$3"
}

# softhsm_token LABEL: a SoftHSM2 token of its own under $T (user PIN
# 1234), SOFTHSM2_CONF exported; the caller has checked softhsm2-util
softhsm_token() {
	mkdir -p "$T/tokens"
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$T" >"$T/softhsm2.conf"
	export SOFTHSM2_CONF="$T/softhsm2.conf"
	softhsm2-util --init-token --free --label "$1" --pin 1234 \
		--so-pin 5678 >/dev/null
}

it_done() {
	echo "$IT_NAME: $IT_PASS passed, $IT_FAIL failed"
	if [ "$IT_FAIL" -ne 0 ]; then
		exit 1
	fi
	exit 0
}

# Run directly (CTest registers every tests/it_*.sh), this file tests its
# own helpers: each must catch what it is there to catch.
if [ "$IT_NAME" = it_lib ]; then
	need python3
	# must_fail CMD...: CMD is an assertion that has to record a failure
	must_fail() {
		_L_before=$IT_FAIL
		"$@" 2>/dev/null
		if [ "$IT_FAIL" -eq $((_L_before + 1)) ]; then
			IT_FAIL=$_L_before
			pass
		else
			fail "did not catch: $*"
		fi
	}
	case_ "expect_rc"
	expect_rc 3 sh -c 'exit 3'
	must_fail expect_rc 0 sh -c 'exit 3'
	expect_rc 0 sh -c 'echo out; echo err >&2'
	assert_grep "$OUT" out
	assert_grep "$ERR" err
	case_ "assert_err_line"
	run_rp sh -c "echo \"reprotect: 'd/f-mac.age': header MAC mismatch\" >&2"
	assert_err_line f-mac.age mac
	must_fail assert_err_line f-mac.age nonce
	must_fail assert_err_line other.age mac
	run_rp sh -c "printf 'reprotect: f.age: MAC\nmore\n' >&2"
	must_fail assert_err_line f.age mac
	case_ "bytes"
	printf 'abc' >b
	put_byte b 1 0
	if [ "$(od -An -tx1 b | tr -d ' \n')" = 610063 ]; then pass; else
		fail "put_byte 0"
	fi
	flip_byte b b2 0 255
	if [ "$(byte_at b2 0)" = 158 ] && [ "$(byte_at b2 2)" = 99 ]; then
		pass
	else
		fail "flip_byte"
	fi
	assert_exists b2
	must_fail assert_same b b2
	must_fail assert_absent b2
	case_ "header_len"
	printf 'age-encryption.org/v1\n-> X 1\n\n--- abc\nNONCE' >h.age
	if [ "$(header_len h.age)" = 38 ]; then pass; else
		fail "header_len $(header_len h.age)"
	fi
	case_ "json"
	printf '{"a": {"b": "x\\"y"}, "n": [1, 2]}' >j.json
	json_ok j.json
	assert_json j.json '["a"]["b"]' 'x"y'
	assert_json j.json '["n"].__len__()' 2
	must_fail assert_json j.json '["a"]["c"]' x
	printf '{"a": 1,}' >bad.json
	must_fail json_ok bad.json
	case_ "temp files and modes"
	assert_no_tmp
	: >".x.rp-tmp-0011"
	must_fail assert_no_tmp
	rm -f ".x.rp-tmp-0011"
	: >m
	chmod 644 m
	must_fail assert_mode600 m
	chmod 600 m
	assert_mode600 m
	it_done
fi
