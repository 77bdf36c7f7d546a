#!/bin/sh
# it_slurm.sh: deploy/slurm/reprotect-array.sbatch on a real one-machine
# Slurm cluster that this test starts as plain processes (munged with its
# own key and socket, slurmctld and slurmd on free ports; nothing of the
# system's) and always stops, checking that nothing is left. A corpus of
# 2,000 documents under two roots (one with a space in its name) is moved
# by a 4-task array after each of two rekeys. Round 1: the script as
# shipped (--array=0-3%2), roots as arguments, the passphrase in the
# environment. Round 2: the four tasks at once on the one store, paced by
# --key-ops, roots in REPROTECT_ROOTS, the passphrase from a 0600 file;
# task 2 is cancelled (scancel) once its journal shows moved documents,
# ends with exit 8, and is requeued (scontrol requeue). Each round: every
# document moved exactly once (no path twice in the journals of every
# attempt, the reports' 'moved' add up to the corpus), every document
# verifies and is under the active key (census), a sample opens with the
# stock age, the audit chain verifies, and `reprotect report merge` of the
# final reports gives the corpus. The script's own refusals run without
# Slurm. Skips (77) only when a Slurm or munge program is missing.
# Usage: sh tests/it_slurm.sh PATH/TO/reprotect
set -eu
# the script under test (before it_lib.sh changes to its temp dir)
SBATCH=$(cd "$(dirname "$0")/../deploy/slurm" && pwd)/reprotect-array.sbatch
. "$(dirname "$0")/it_lib.sh"

for _t in munged munge slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
	if ! command -v "$_t" >/dev/null 2>&1; then
		echo "$IT_NAME: SKIP: '$_t' is not installed (sh scripts/deps.sh" \
			"installs slurmctld, slurmd, slurm-client and munge)" >&2
		exit 77
	fi
done
need python3

NDOCS=2000
# deadlines (seconds): generous, for a loaded machine; none orders events
UP_WAIT=60
ROUND_WAIT=150

# poll SECONDS CMD...: runs CMD every 0.1 s until it succeeds; 1 if it has
# not within SECONDS (it_lib's wait_for takes a test, for 30 s at most)
poll() {
	_w_end=$(($(date +%s) + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		if [ "$(date +%s)" -ge "$_w_end" ]; then
			return 1
		fi
		sleep 0.1
	done
}

# ------------------------------------------------------------ the cluster

SL=$T/slurm
MUNGED_PID=
CTLD_PID=
SLURMD_PID=
SL_UP=

# strays: processes of this test's cluster other than this shell and its
# own children (the daemons are stopped by their pid): slurmstepd forks
# away from slurmd and clears its environment, so they are found by their
# working folder ($T: the jobs' --chdir), their command line or the
# variable the daemons were started with
strays() {
	_s_cand=$({
		find /proc -mindepth 2 -maxdepth 2 -name cwd \
			\( -lname "$T" -o -lname "$T/*" \) 2>/dev/null | cut -d/ -f3
		pgrep -f -- "$T" || true
		grep -laF "RP_IT_SLURM_TAG=$T" /proc/[0-9]*/environ 2>/dev/null |
			cut -d/ -f3
	} | sort -u | tr '\n' ' ') || true
	# after the search: its own processes found themselves, and are either
	# gone or this shell's descendants now
	ps -e -o pid=,ppid= 2>/dev/null | awk -v root=$$ -v cand=" $_s_cand " '
		{ p[$1] = $2 }
		END {
			for (x in p) {
				if (index(cand, " " x " ") == 0)
					continue
				y = x
				while (y != root && (y in p) && y > 1)
					y = p[y]
				if (y != root)
					print x
			}
		}' || true
}

# left_pids: anything of this test still running
left_pids() {
	{
		for _p in "$MUNGED_PID" "$CTLD_PID" "$SLURMD_PID"; do
			[ -z "$_p" ] || ! kill -0 "$_p" 2>/dev/null || echo "$_p"
		done
		strays
	} | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL if it is still there
stop_pid() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	# shellcheck disable=SC2016 # expanded by the inner sh
	poll "$2" sh -c '! kill -0 "$1" 2>/dev/null' sh "$1" ||
		kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# slurm_stop: every job cancelled (slurmd leaves its tasks running when it
# stops), the daemons stopped, then whatever is left killed. Never fails:
# it runs from the EXIT trap too.
slurm_stop() {
	[ -n "$SL_UP" ] || return 0
	SL_UP=
	if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
		_jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || true
		if [ -n "$_jobs" ]; then
			# shellcheck disable=SC2086 # a list of job ids
			scancel $_jobs 2>/dev/null || true
			# shellcheck disable=SC2016 # expanded by the inner sh
			poll 60 sh -c '[ -z "$(squeue -h -o %A 2>/dev/null)" ]' ||
				true
		fi
	fi
	stop_pid "$SLURMD_PID" 15
	stop_pid "$CTLD_PID" 15
	stop_pid "$MUNGED_PID" 15
	for _p in $(strays); do
		kill -KILL "$_p" 2>/dev/null || true
	done
}
trap 'slurm_stop; rm -rf "$T"' EXIT

# show_logs: the daemons' logs, for a failure
show_logs() {
	for _f in "$SL"/log/*; do
		[ -f "$_f" ] || continue
		echo "---- $_f (last 15 lines)" >&2
		tail -n 15 "$_f" >&2
	done
}

# die_now MSG: a failure the rest of the test cannot go on from
die_now() {
	fail "$*"
	show_logs
	it_done
}

case_ "a one-machine cluster"
mkdir -p "$SL/state" "$SL/spool" "$SL/log"
SL_UP=1
head -c 1024 /dev/urandom >"$SL/munge.key"
chmod 600 "$SL/munge.key"
# --force: the socket's folder is private to this test ($T is 0700), which
# munged warns about; root (or this user) reaches it all the same
RP_IT_SLURM_TAG=$T munged --foreground --force --socket="$SL/munge.sock" \
	--key-file="$SL/munge.key" --pid-file="$SL/munged.pid" \
	--seed-file="$SL/munged.seed" --log-file="$SL/log/munged.log" \
	>"$SL/log/munged.out" 2>&1 &
MUNGED_PID=$!
munge_ok() {
	munge -n -S "$SL/munge.sock" | unmunge -S "$SL/munge.sock" >/dev/null
}
poll "$UP_WAIT" munge_ok || die_now "munged did not answer on its socket"
pass

HOST=$(uname -n)
HOST=${HOST%%.*}
USER_NAME=$(id -un)
export SLURM_CONF="$SL/slurm.conf"

# start_daemons: slurmctld and slurmd on two free ports (the kernel's
# choice, taken again by the daemons a moment later: another program may
# take one meanwhile, so the caller tries again); 0 when the node is idle,
# 1 when a daemon exited (the other one stopped), and a failure of the test
# when the node is not idle in time
start_daemons() {
	read -r CTLD_PORT SLURMD_PORT <<PORTS
$(py -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s:
    x.bind(("", 0))
print(*[x.getsockname()[1] for x in s])')
PORTS
	cat >"$SLURM_CONF" <<-EOF
	ClusterName=rpit
	SlurmctldHost=$HOST(127.0.0.1)
	SlurmctldPort=$CTLD_PORT
	SlurmdPort=$SLURMD_PORT
	SlurmUser=$USER_NAME
	SlurmdUser=$USER_NAME
	AuthType=auth/munge
	CredType=cred/munge
	AuthInfo=socket=$SL/munge.sock,cred_expire=5
	StateSaveLocation=$SL/state
	SlurmdSpoolDir=$SL/spool/%n
	SlurmctldPidFile=$SL/slurmctld.pid
	SlurmdPidFile=$SL/slurmd-%n.pid
	SlurmctldLogFile=$SL/log/slurmctld.log
	SlurmdLogFile=$SL/log/slurmd-%n.log
	ProctrackType=proctrack/linuxproc
	TaskPlugin=task/none
	JobAcctGatherType=jobacct_gather/none
	AccountingStorageType=accounting_storage/none
	JobCompType=jobcomp/none
	MpiDefault=none
	SchedulerType=sched/backfill
	SchedulerParameters=sched_interval=2,bf_interval=1
	SelectType=select/cons_tres
	SelectTypeParameters=CR_CPU
	ReturnToService=2
	JobRequeue=1
	MinJobAge=600
	KillWait=30
	NodeName=rpnode NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
	PartitionName=rp Nodes=rpnode Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
	EOF
	RP_IT_SLURM_TAG=$T slurmctld -D -f "$SLURM_CONF" \
		>>"$SL/log/slurmctld.out" 2>&1 &
	CTLD_PID=$!
	RP_IT_SLURM_TAG=$T slurmd -D -f "$SLURM_CONF" -N rpnode \
		>>"$SL/log/slurmd.out" 2>&1 &
	SLURMD_PID=$!
	poll "$UP_WAIT" node_idle_or_dead ||
		die_now "the node is not idle: $(sinfo -h -n rpnode -o %T 2>&1)"
	if kill -0 "$CTLD_PID" 2>/dev/null && kill -0 "$SLURMD_PID" 2>/dev/null; then
		return 0
	fi
	stop_pid "$SLURMD_PID" 15
	stop_pid "$CTLD_PID" 15
	CTLD_PID=
	SLURMD_PID=
	return 1
}
node_idle_or_dead() {
	kill -0 "$CTLD_PID" && kill -0 "$SLURMD_PID" || return 0
	[ "$(sinfo -h -n rpnode -o %T 2>/dev/null)" = idle ]
}
_try=1
until start_daemons; do
	[ "$_try" -lt 3 ] || die_now "slurmctld or slurmd exited, $_try times"
	_try=$((_try + 1))
done
pass
echo "$IT_NAME: cluster up: slurmctld $CTLD_PID (port $CTLD_PORT)," \
	"slurmd $SLURMD_PID (port $SLURMD_PORT), munged $MUNGED_PID"

# ------------------------------------------------------ store and corpus

case_ "store and corpus"
export REPROTECT_STORE="$T/store"
export REPROTECT_PASSPHRASE=slurm-it-pass
expect_rc 0 "$RP" init
HAVE_AGE=
if command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1; then
	HAVE_AGE=1
fi
# new_key NAME: a new X25519 key, imported from an age identity file
# (kept, for the stock age) when age is there; prints its id
new_key() {
	if [ -n "$HAVE_AGE" ]; then
		age-keygen -o "$T/$1.id" 2>/dev/null
		"$RP" key import "$T/$1.id" | head -n 1 | cut -d' ' -f1
	else
		"$RP" key create --alg x25519 | head -n 1 | cut -d' ' -f1
	fi
}
KA=$(new_key ka)
expect_rc 0 "$RP" rekey --to "$KA"
py - "$T/src" "$NDOCS" <<'PY'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    root = "root a" if i % 5 else "b"
    d = os.path.join(top, root, "d%d" % (i % 8), "e%d" % (i % 3))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(os.urandom((i * 37) % 4000))
PY
cp -a "$T/src" "$T/data"
# shellcheck disable=SC2016 # expanded by the inner sh
expect_rc 0 sh -c 'cd "$1" && find . -type f -print0 | xargs -0 "$2" protect' \
	sh "$T/data" "$RP"
find "$T/data" -type f ! -name '*.age' -delete
assert_eq "$(find "$T/data" -type f -name '*.age' | wc -l | tr -d ' ')" \
	"$NDOCS" "documents in the corpus"
ROOT_A="$T/data/root a"
ROOT_B="$T/data/b"


# submit OUTDIR [SBATCH-OPTION...]: submits the script from $T (the roots
# as its arguments unless REPROTECT_ROOTS is set), its reports in OUTDIR;
# prints the job id
submit() {
	_s_out=$1
	shift
	mkdir -p "$_s_out"
	if [ -n "${REPROTECT_ROOTS:-}" ]; then
		set -- "$@" "$SBATCH"
	else
		set -- "$@" "$SBATCH" "$ROOT_A" "$ROOT_B"
	fi
	(cd "$T" && REPROTECT_OUT="$_s_out" REPROTECT_BIN="$RP" \
		RP_IT_SLURM_TAG=$T sbatch --parsable --chdir="$T" "$@") |
		cut -d';' -f1
}

# job_field JOB FIELD: a field of `scontrol show job` (one task: J_I)
job_field() {
	scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' |
		sed -n "s/^$2=//p" | head -n 1
}

# ended OUTDIR TASK N: the task's log has N end lines (N attempts ended)
ended() {
	[ "$(grep -c ' end ' "$1/task-$2.log" 2>/dev/null)" -ge "$3" ]
}

# array_done JOB OUTDIR: no task of JOB left in the queue, and every
# attempt of tasks 0..3 that started has ended
array_done() {
	[ -z "$(squeue -h -j "$1" 2>/dev/null)" ] || return 1
	for _a in 0 1 2 3; do
		[ -f "$2/task-$_a.log" ] || return 1
		[ "$(grep -c ' start ' "$2/task-$_a.log")" = \
			"$(grep -c ' end ' "$2/task-$_a.log")" ] || return 1
	done
}

# check_round OUTDIR: every document moved exactly once over the journals
# of every attempt (the earlier ones too), the reports' moved add up to
# the corpus, no final report failed, left busy or recovered a journal;
# then verify and the audit chain
check_round() {
	if py - "$1" "$NDOCS" "$T/data" >"$T/.round" 2>&1 <<'PY'; then pass; else fail "round: $(cat "$T/.round")"; fi
import glob, json, os, sys
out, n, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
corpus = set()
for top, _, files in os.walk(data):
    corpus.update(os.path.join(top, f) for f in files if f.endswith(".age"))
assert len(corpus) == n, len(corpus)
moved = []
for j in glob.glob(out + "/journal-*") + glob.glob(out + "/earlier/journal-*"):
    for line in open(j, encoding="utf-8", errors="surrogateescape"):
        f = line.rstrip("\n").split("\t")
        if f[0] == "moved":
            moved.append(f[3])
assert len(moved) == len(set(moved)), "a document moved twice"
assert set(moved) == corpus, (len(set(moved)), len(corpus))
total = 0
for r in glob.glob(out + "/report-*.json") + glob.glob(out + "/earlier/report-*.json"):
    total += json.load(open(r))["outcomes"]["moved"]["documents"]
assert total == n, total
for i in range(4):
    r = json.load(open("%s/report-%d.json" % (out, i)))
    assert not r["stopped"], i
    o = r["outcomes"]
    bad = sum(o[k]["documents"] for k in o
              if k.startswith("failed") or k == "skipped-busy")
    assert bad == 0, (i, o)
    assert r["recovery"]["journals"] == 0, (i, r["recovery"])
PY
	expect_rc 0 "$RP" verify "$ROOT_A" "$ROOT_B" --quiet
	expect_rc 0 "$RP" audit verify
}

# all_moved NAME: every document is under the key NAME (the active one:
# a census lists nothing), and a sample (an empty document among them)
# opens with the stock age and that key's identity to its first bytes
all_moved() {
	expect_rc 0 "$RP" census "$ROOT_A" "$ROOT_B" --quiet \
		--report "$T/census-$1.txt"
	[ -n "$HAVE_AGE" ] || return 0
	for _n in 0 1 5 7 100 1999; do
		_f=$(find "$T/data" -name "f$_n.age" | head -n 1)
		_rel=${_f#"$T/data/"}
		_rel=${_rel%.age}
		# to standard output: age makes no -o file for an empty one
		if age -d -i "$T/$1.id" "$_f" >"$T/.plain" 2>"$T/.age-err" &&
			cmp -s "$T/.plain" "$T/src/$_rel"; then
			pass
		else
			fail "age cannot open $_rel to its bytes: $(cat "$T/.age-err")"
		fi
	done
}

# merge_check OUTDIR: `report merge` of the four final reports: exit 0,
# shards 0..3 present, the corpus in moved + current
merge_check() {
	expect_rc 0 "$RP" report merge --json "$1"/report-0.json \
		"$1"/report-1.json "$1"/report-2.json "$1"/report-3.json
	cp "$OUT" "$T/.merged"
	assert_json "$T/.merged" '["shards"]["of"]' 4
	assert_json "$T/.merged" '["shards"]["present"]' '[0, 1, 2, 3]'
	assert_json "$T/.merged" '["shards"]["missing"]' '[]'
	assert_json "$T/.merged" \
		'["outcomes"]["moved"]["documents"] + d["outcomes"]["current"]["documents"]' \
		"$NDOCS"
}

# ------------------------------------ the script's own checks, no Slurm

case_ "the script refuses what would go wrong, before reprotect runs"
printf '%s\n' "$REPROTECT_PASSPHRASE" >"$T/pass"
chmod 600 "$T/pass"
cp "$T/pass" "$T/pass-644"
chmod 644 "$T/pass-644"
# script RC MESSAGE VAR=VALUE...: the script run by hand (as a task would)
# exits RC saying MESSAGE, and never starts reprotect
script() {
	_c_rc=$1
	_c_msg=$2
	shift 2
	expect_rc "$_c_rc" env -u SLURM_ARRAY_TASK_ID REPROTECT_BIN=false \
		REPROTECT_OUT="$T/out0" "$@" sh "$SBATCH" "$ROOT_A"
	assert_grep "$ERR" "$_c_msg"
}
script 2 "not a task of a job array"
script 2 "is open to group or others" SLURM_ARRAY_TASK_ID=0 \
	REPROTECT_SHARDS=4 REPROTECT_PASSPHRASE_FILE="$T/pass-644"
script 2 "REPROTECT_SHARDS is not set" SLURM_ARRAY_TASK_ID=2 \
	SLURM_ARRAY_TASK_MIN=2 SLURM_ARRAY_TASK_MAX=2 SLURM_ARRAY_TASK_COUNT=1
script 2 "task 4 is not a shard of 4" SLURM_ARRAY_TASK_ID=4 REPROTECT_SHARDS=4
script 2 "REPROTECT_STORE is not set" SLURM_ARRAY_TASK_ID=0 \
	REPROTECT_SHARDS=4 REPROTECT_STORE=
assert_absent "$T/out0"

# ------------------------------------------- round 1: the array as it is

case_ "round 1: 4 tasks, at most 2 at once (the script's #SBATCH --array)"
KB=$(new_key kb)
expect_rc 0 "$RP" rekey --to "$KB"
T0=$(date +%s)
J1=$(submit "$T/out1")
case $J1 in
'' | *[!0-9]*) die_now "sbatch gave no job id: '$J1'" ;;
esac
assert_eq "$(job_field "${J1}_0" ArrayTaskThrottle)" 2 "the array's throttle"
poll "$ROUND_WAIT" array_done "$J1" "$T/out1" ||
	die_now "round 1 not done after ${ROUND_WAIT}s: $(squeue -h -j "$J1" 2>&1)"
echo "$IT_NAME: round 1 took $(($(date +%s) - T0)) s"
for _i in 0 1 2 3; do
	assert_eq "$(job_field "${J1}_$_i" ExitCode)" 0:0 "task $_i: Slurm's exit code"
	assert_grep "$T/out1/task-$_i.log" "shard $_i/4 restart 0"
	assert_grep "$T/out1/task-$_i.log" " rc=0"
done
check_round "$T/out1"
all_moved kb
merge_check "$T/out1"
# a shard missing is named
expect_rc 2 "$RP" report merge --json "$T"/out1/report-0.json \
	"$T"/out1/report-1.json "$T"/out1/report-3.json
assert_json "$OUT" '["shards"]["missing"]' '[2]'

# ------------------------------ round 2: one task cancelled, then requeued

case_ "round 2: task 2 cancelled while it runs, then requeued"
KC=$(new_key kc)
expect_rc 0 "$RP" rekey --to "$KC"
T0=$(date +%s)
# all four at once on the one store, each at 40 key operations a second so
# a task takes seconds (about 500 documents each)
# the passphrase from a 0600 file this time, none in the environment; the
# roots in REPROTECT_ROOTS
J2=$(
	unset REPROTECT_PASSPHRASE
	export REPROTECT_SHARDS=4 REPROTECT_KEY_OPS=160
	export REPROTECT_PASSPHRASE_FILE="$T/pass"
	export REPROTECT_ROOTS="$ROOT_A:$ROOT_B"
	submit "$T/out2" --array=0-3
)
case $J2 in
'' | *[!0-9]*) die_now "sbatch gave no job id: '$J2'" ;;
esac
# the cancel lands mid-run: once the task's journal shows moved documents
# (it is written 4 KiB at a time: some 50 documents), and before its end
moved_some() {
	grep -q '^moved' "$T/out2/journal-2"
}
poll "$ROUND_WAIT" moved_some ||
	die_now "task 2 moved nothing in ${ROUND_WAIT}s: $(cat "$T/out2/task-2.log" 2>&1)"
if ended "$T/out2" 2 1; then
	die_now "task 2 ended before the cancel: $(cat "$T/out2/task-2.log")"
fi
expect_rc 0 scancel "${J2}_2"
poll "$ROUND_WAIT" ended "$T/out2" 2 1 ||
	die_now "task 2 did not stop: $(cat "$T/out2/task-2.log")"
assert_grep "$T/out2/task-2.log" " rc=8"
assert_json "$T/out2/report-2.json" '["stopped"]' true
assert_json "$T/out2/report-2.json" '["exit_code"]' 8
M1=$(json_get "$T/out2/report-2.json" '["outcomes"]["moved"]["documents"]')
if [ "$M1" -gt 0 ] && [ "$M1" -lt 800 ]; then pass; else
	fail "the stopped task moved $M1 documents"
fi
# Slurm calls it cancelled, with the script's exit code
cancelled() {
	[ "$(job_field "${J2}_2" JobState)" = CANCELLED ]
}
poll "$ROUND_WAIT" cancelled ||
	fail "task 2 is $(job_field "${J2}_2" JobState), not CANCELLED"
assert_eq "$(job_field "${J2}_2" ExitCode)" 8:0 "the stopped task: Slurm's exit code"
# requeued: a cancelled array task goes back to pending on Slurm 22.05;
# it may start again after cred_expire (5 s here, 120 s by default)
expect_rc 0 scontrol requeue "${J2}_2"
poll "$ROUND_WAIT" ended "$T/out2" 2 2 ||
	die_now "the requeued task 2 did not end: $(cat "$T/out2/task-2.log")"
poll "$ROUND_WAIT" array_done "$J2" "$T/out2" ||
	die_now "round 2 not done after ${ROUND_WAIT}s: $(squeue -h -j "$J2" 2>&1)"
echo "$IT_NAME: round 2 took $(($(date +%s) - T0)) s; task 2 stopped after" \
	"$M1 documents"
assert_grep "$T/out2/task-2.log" "shard 2/4 restart 1"
# the four first attempts ran at once, on the one store: each started
# before any ended
if py - "$T/out2" >"$T/.overlap" 2>&1 <<'PY'; then pass; else fail "not at once: $(cat "$T/.overlap")"; fi
import sys
starts, ends = [], []
for i in range(4):
    lines = open("%s/task-%d.log" % (sys.argv[1], i)).read().splitlines()
    starts.append(next(l.split()[0] for l in lines if " start " in l))
    ends.append(next(l.split()[0] for l in lines if " end " in l))
print(starts, ends)
sys.exit(0 if max(starts) < min(ends) else 1)
PY
assert_eq "$(grep -c ' start ' "$T/out2/task-2.log")" 2 "task 2's attempts"
assert_eq "$(job_field "${J2}_2" Restarts)" 1 "task 2: Slurm's restarts"
assert_eq "$(job_field "${J2}_2" ExitCode)" 0:0 "the requeued task: Slurm's exit code"
# the stopped attempt's report and journal are kept, the second has the rest
assert_json "$T/out2/earlier/report-2.try1.json" '["stopped"]' true
assert_json "$T/out2/earlier/report-2.try1.json" \
	'["outcomes"]["moved"]["documents"]' "$M1"
assert_exists "$T/out2/earlier/journal-2.try1"
assert_json "$T/out2/report-2.json" '["outcomes"]["current"]["documents"]' "$M1"
check_round "$T/out2"
all_moved kc
# given in a file, the passphrase is nowhere in Slurm's state, spool or the
# outputs; in the environment (round 1) slurmctld keeps it in its state
# folder with the job's environment
_where=$(grep -rlF -- "$REPROTECT_PASSPHRASE" "$SL/state" "$SL/spool" \
	"$T/out2" 2>/dev/null | grep -v "/job\.$J1/" || true)
assert_eq "$_where" "" "files holding the passphrase (round 2)"
if grep -rqF -- "$REPROTECT_PASSPHRASE" "$SL/state"; then
	echo "$IT_NAME: round 1's passphrase (from the environment) is in" \
		"$(grep -rlF -- "$REPROTECT_PASSPHRASE" "$SL/state" | sed "s|$T/||")"
fi
merge_check "$T/out2"
# the stopped attempt in place of the last: exit 8
expect_rc 8 "$RP" report merge --json "$T"/out2/report-0.json \
	"$T"/out2/report-1.json "$T"/out2/earlier/report-2.try1.json \
	"$T"/out2/report-3.json
# both attempts of shard 2: given twice, exit 2
expect_rc 2 "$RP" report merge --json "$T"/out2/report-[0-3].json \
	"$T"/out2/earlier/report-2.try1.json

# --------------------------------------------------------- nothing left

case_ "the cluster stops, nothing left behind"
slurm_stop
_left=$(left_pids)
assert_eq "$_left" "" "processes left"
it_done
