#!/bin/sh
# it_faults.sh REPROTECT: the engine's copying path (--copy) under
# injected faults (tests/it_inplace.sh does the in-place path). For each fault
# the run either goes on (the hit document failed, with its reason) or
# stops cleanly (exit 8, the reason given), every document is left whole
# (untouched, or moved), nothing temporary stays behind, and running the
# same command again finishes the job. Then the process is killed at each
# stage of a document's life, and the same holds.
#
# Faults come from the test-only hooks (common/rp_testhook.h):
# REPROTECT_TEST_FAULT, REPROTECT_TEST_CRASH and REPROTECT_TEST_PAUSE,
# compiled only into RP_TEST_HOOKS builds (the sanitizer build); on other
# builds the test is skipped.
. "$(dirname "$0")/it_lib.sh"

need python3 age age-keygen
if ! grep -q REPROTECT_TEST_FAULT "$RP"; then
	echo "$IT_NAME: no test hooks in this build: skipped"
	exit 77
fi
export REPROTECT_PASSPHRASE='it-faults passphrase'
unset REPROTECT_TEST_FAULT REPROTECT_TEST_CRASH REPROTECT_TEST_PAUSE

# ------------------------------------------------------------ the corpus
# 30 documents in three folders under key A (x25519), then a rekey to B.
# Both identities are known, so the stock age tool checks every document.

case_ "setup"
age-keygen -o "$T/a.id" 2>/dev/null
age-keygen -o "$T/b.id" 2>/dev/null
B0=$T/base
mkdir -p "$B0/tree" "$T/plain"
expect_rc 0 "$RP" init --store "$B0/store"
expect_rc 0 "$RP" key import "$T/a.id" --activate --store "$B0/store"
for d in d0 d1 d2; do
	mkdir -p "$T/plain/$d" "$B0/tree/$d"
	for i in 0 1 2 3 4 5 6 7 8 9; do
		# sizes from empty to several 64 KiB chunks
		mkfile "$T/plain/$d/$i" $(((i * i * 7919) % 300000))
		expect_rc 0 "$RP" protect "$T/plain/$d/$i" --store "$B0/store" \
			-o "$B0/tree/$d/$i.age"
	done
done
expect_rc 0 "$RP" key import "$T/b.id" --store "$B0/store"
KB=$(head -n 1 "$OUT" | cut -d" " -f1)
expect_rc 0 "$RP" rekey --to "$KB" --store "$B0/store"
N=30

# snap TREE FILE: "sha256 path" for every document
snap() {
	(cd "$1" && find . -type f -name '*.age' -exec sha256sum {} + | sort -k2)
}
snap "$B0/tree" >"$T/snap0"

# judge REPORT SNAP TREE STOPPED WANT_FAILED REASON: the report against
# the tree. WANT_FAILED: a number, "+" for at least one, "*" for any. Every failed
# document holds its old bytes and names REASON (or the stop); every
# moved one changed; the stop reason names REASON when STOPPED is true.
judge() {
	py - "$@" <<'PY'
import hashlib, json, os, sys
rep, snapf, tree, stopped, want, reason = sys.argv[1:7]
r = json.load(open(rep))
old = {}
for line in open(snapf):
    h, p = line.split(None, 1)
    old[os.path.normpath(os.path.join(tree, p.strip()))] = h
def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()
errs = []
if str(r["stopped"]).lower() != stopped:
    errs.append("stopped=%s, want %s" % (r["stopped"], stopped))
if stopped == "true" and reason not in r.get("stop_reason", ""):
    errs.append("stop reason %r lacks %r" % (r.get("stop_reason"), reason))
failed = [d for d in r["documents"] if d["outcome"].startswith("failed")]
if want == "+" and not failed or want not in "+*" and len(failed) != int(want):
    errs.append("%d failed, want %s" % (len(failed), want))
for d in failed:
    p = os.path.normpath(d["path"])
    if reason not in d["reason"] and "the run stopped" not in d["reason"]:
        errs.append("%s: reason %r lacks %r" % (p, d["reason"], reason))
    if not os.path.exists(p):
        errs.append("%s: missing" % p)
    elif sha(p) != old[p]:
        errs.append("%s: failed but changed" % p)
moved = r["outcomes"].get("moved", {}).get("documents", 0)
changed = sum(1 for p, h in old.items() if os.path.exists(p) and sha(p) != h)
if changed != moved:
    errs.append("%d documents changed, %d moved" % (changed, moved))
missing = [p for p in old if not os.path.exists(p)]
if missing:
    errs.append("missing: %s" % missing[:3])
if errs:
    print("; ".join(errs))
    sys.exit(1)
PY
}

# opens_all TREE: the stock age tool opens every document to its bytes
opens_all() {
	for _d in d0 d1 d2; do
		for _i in 0 1 2 3 4 5 6 7 8 9; do
			age -d -i "$T/a.id" -i "$T/b.id" "$1/$_d/$_i.age" \
				>"$T/.open" 2>/dev/null || return 1
			cmp -s "$T/.open" "$T/plain/$_d/$_i" || return 1
		done
	done
}

# resumes DIR: a run without faults finishes the job; all under B
resumes() {
	expect_rc 0 "$RP" run "$1/tree" --store "$1/store" --in-place --quiet \
		--json
	cp "$OUT" "$T/r-again.json"
	assert_json "$T/r-again.json" '["stopped"]' false
	assert_json "$T/r-again.json" \
		'["outcomes"].get("failed-io", {}).get("documents", 0)' 0
	_cur=$(json_get "$T/r-again.json" \
		'["outcomes"].get("current", {}).get("documents", 0)')
	_mv=$(json_get "$T/r-again.json" \
		'["outcomes"].get("moved", {}).get("documents", 0)')
	assert_json "$T/r-again.json" '["documents_seen"]' "$N"
	if [ "$((_cur + _mv))" -eq "$N" ]; then pass; else
		fail "again: $_mv moved + $_cur current != $N"
	fi
	assert_no_tmp "$1"
	check "every document opens with age after the resume" opens_all "$1/tree"
}

# fault NAME RULE MODE WANT_RC STOPPED WANT_FAILED REASON
fault() {
	case_ "$1 ($2)"
	rm -rf "$T/c"
	cp -a "$B0" "$T/c"
	expect_rc "$4" env REPROTECT_TEST_FAULT="$2" "$RP" run "$T/c/tree" \
		--store "$T/c/store" --in-place --copy --quiet --json --jobs 2 \
		--mode "$3"
	cp "$OUT" "$T/r.json"
	json_ok "$T/r.json"
	if _why=$(judge "$T/r.json" "$T/snap0" "$T/c/tree" "$5" "$6" "$7"); then
		pass
	else
		fail "report vs tree: $_why"
	fi
	if [ "$5" = true ]; then
		assert_grep "$ERR" "stopped: "
		assert_grep "$ERR" "run the same command again"
	fi
	assert_no_tmp "$T/c"
	check "every document opens with age after the fault" opens_all "$T/c/tree"
	expect_rc 0 "$RP" audit verify --store "$T/c/store"
	resumes "$T/c"
}

# One document fails, the run goes on (exit 1).
fault "EIO on write" io:write:EIO:3 rewrap 1 false 1 "Input/output error"
fault "EIO on write, reencrypt" io:write:EIO:9 reencrypt 1 false 1 \
	"Input/output error"
fault "EIO on read" io:read:EIO:7 rewrap 1 false 1 "cannot read"
fault "EIO on read, reencrypt" io:read:EIO:12 reencrypt 1 false 1 \
	"cannot read"
fault "EIO in the kernel copy" io:copy:EIO:4 rewrap 1 false 1 "cannot copy"
fault "fsync fails" io:fsync:EIO:5 rewrap 1 false 1 "cannot fsync"
fault "rename fails" io:rename:EIO:2 rewrap 1 false 1 "cannot rename"
fault "close fails" io:close:EIO:3 rewrap 1 false 1 "cannot close"
fault "permission denied opening a document" io:open:EACCES:6 rewrap 1 \
	false 1 "Permission denied"
fault "permission denied creating the temporary file" io:create:EACCES:4 \
	rewrap 1 false 1 "Permission denied"
# Every write or read comes back short: nothing fails (exit 0).
fault "short writes" io:write:short:1:0 reencrypt 0 false 0 "-"
fault "short reads" io:read:short:1:0 reencrypt 0 false 0 "-"
fault "short kernel copies" io:copy:short:1:0 rewrap 0 false 0 "-"
# Faults every later document would meet: the run stops (exit 8).
fault "disk full on write" io:write:ENOSPC:5 rewrap 8 true + \
	"No space left on device"
fault "disk full on fsync" io:fsync:ENOSPC:2 rewrap 8 true + \
	"No space left on device"
fault "read-only file system" io:create:EROFS:1:0 rewrap 8 true + \
	"Read-only file system"
fault "disk full, reencrypt" io:write:ENOSPC:20 reencrypt 8 true + \
	"No space left on device"
fault "read-only at the rename" io:rename:EROFS:3:0 rewrap 8 true + \
	"Read-only file system"
fault "disk full for good" io:write:ENOSPC:5:0 rewrap 8 true + \
	"No space left on device"
# a folder that does not reach the disk: the batch is in, nothing more
fault "a folder's fsync fails" io:dirsync:EIO:1 rewrap 8 true '*' \
	"cannot fsync the folder"

# ---------------------------------------------- deleted during the run
# the writer holds the batch, written but not yet renamed: a document
# deleted now must stay deleted (not come back as the run's new copy)

case_ "a document deleted during the run"
rm -rf "$T/c"
cp -a "$B0" "$T/c"
REPROTECT_TEST_PAUSE=run:before-commit:3000 "$RP" run "$T/c/tree" \
	--store "$T/c/store" --in-place --copy --quiet --json --batch 64 \
	>"$T/r.json" 2>"$T/.del-err" &
_pid=$!
_n=0
while [ "$(find "$T/c/tree" -name '.*.rp-tmp-*' -printf x | wc -c)" -lt 10 ]; do
	_n=$((_n + 1))
	if [ "$_n" -gt 400 ]; then
		fail "the run never reached its commit"
		break
	fi
	sleep 0.05
done
rm -f "$T/c/tree/d1/4.age"
_rc=0
wait "$_pid" || _rc=$?
if [ "$_rc" = 1 ]; then pass; else fail "exit $_rc, want 1"; fi
assert_json "$T/r.json" \
	'["outcomes"]["failed-changed"]["documents"]' 1
assert_grep "$T/r.json" "the file changed while the run read it"
assert_absent "$T/c/tree/d1/4.age"
assert_no_tmp "$T/c"

# ------------------------------------------------ the token fails
# both keys on a SoftHSM2 token; the token's calls fail on demand

MOD=/usr/lib/softhsm/libsofthsm2.so
if [ -e "$MOD" ] && command -v softhsm2-util >/dev/null 2>&1; then
	case_ "token setup"
	P=$T/p11
	mkdir -p "$P/tokens" "$P/tree/d"
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$P" >"$P/softhsm2.conf"
	export SOFTHSM2_CONF="$P/softhsm2.conf" REPROTECT_PKCS11_PIN=1234
	softhsm2-util --init-token --free --label rp-faults --pin 1234 \
		--so-pin 5678 >/dev/null
	expect_rc 0 "$RP" init --store "$P/store" --backend pkcs11 \
		--pkcs11-module "$MOD" --pkcs11-token rp-faults
	expect_rc 0 "$RP" key create --alg rsa2048 --activate --store "$P/store"
	for i in 0 1 2 3 4 5 6 7 8 9 10 11; do
		mkfile "$P/tree/d/$i" $((i * 5000))
	done
	expect_rc 0 "$RP" protect "$P"/tree/d/[0-9] "$P"/tree/d/[0-9][0-9] \
		--store "$P/store"
	rm -f "$P"/tree/d/[0-9] "$P"/tree/d/[0-9][0-9]
	expect_rc 0 "$RP" rekey --alg rsa2048 --store "$P/store"
	snap "$P/tree" >"$T/snap-p11"
	rm -rf "$P.base"
	cp -a "$P" "$P.base"
	NP=12

	# p11fault NAME RULE WANT_RC STOPPED WANT_FAILED REASON
	p11fault() {
		case_ "token: $1 ($2)"
		rm -rf "$P"
		cp -a "$P.base" "$P"
		expect_rc "$3" env REPROTECT_TEST_FAULT="$2" "$RP" run \
			"$P/tree" --store "$P/store" --in-place --quiet --json \
			--jobs 2
		cp "$OUT" "$T/r.json"
		if _why=$(judge "$T/r.json" "$T/snap-p11" "$P/tree" "$4" "$5" \
			"$6"); then
			pass
		else
			fail "report vs tree: $_why"
		fi
		assert_no_tmp "$P"
		expect_rc 0 "$RP" run "$P/tree" --store "$P/store" --in-place \
			--quiet --json
		cp "$OUT" "$T/r-again.json"
		_cur=$(json_get "$T/r-again.json" \
			'["outcomes"].get("current", {}).get("documents", 0)')
		_mv=$(json_get "$T/r-again.json" \
			'["outcomes"].get("moved", {}).get("documents", 0)')
		if [ "$((_cur + _mv))" -eq "$NP" ]; then pass; else
			fail "again: $_mv moved + $_cur current != $NP"
		fi
		expect_rc 0 "$RP" verify "$P/tree" --store "$P/store" --quiet
	}
	# transient: the retries absorb it, nothing fails
	p11fault "device error twice on unwrap" p11.C_Decrypt:0x30:3:2 0 \
		false 0 "-"
	p11fault "session lost on signing" p11.C_Sign:0xB3:1:1 0 false 0 "-"
	# for good: the run halts after the retries, nothing is damaged
	p11fault "token removed for signing" p11.C_Sign:0xE0:1:0 8 true + \
		"unavailable after"
	p11fault "token removed for unwrapping" p11.C_Decrypt:0xE0:1:0 8 true + \
		"unavailable after"
	unset SOFTHSM2_CONF REPROTECT_PKCS11_PIN
fi

# ------------------------------------------ SIGKILL at every stage
# run:read      a worker has read and classified a header
# run:signed    the signer has a batch signature
# run:written   a writer has written a temporary file
# run:synced    a batch of temporary files is durable
# run:renamed-one  the first document of a batch is swapped in
# run:renamed   every document of the batch is swapped in
# run:dirs-synced  the folders are durable, the old inodes not yet reused

for _p in run:read run:signed run:written run:synced run:renamed-one \
	run:renamed run:dirs-synced; do
	for _io in uring sync; do
		if [ "$_p" = run:renamed-one ] && [ "$_io" = uring ]; then
			continue # the ring swaps a batch in at once
		fi
		case_ "SIGKILL at $_p (--io $_io)"
		rm -rf "$T/c"
		cp -a "$B0" "$T/c"
		expect_rc 137 env REPROTECT_TEST_CRASH="$_p" "$RP" run \
			"$T/c/tree" --store "$T/c/store" --in-place --copy --quiet \
			--batch 8 --io "$_io"
		# every path holds a whole document, old or new
		if [ "$(find "$T/c/tree" -name '*.age' -printf x | wc -c)" -eq "$N" ]; then
			pass
		else
			fail "documents lost"
		fi
		check "every document opens with age after the kill" opens_all \
			"$T/c/tree"
		expect_rc 0 "$RP" verify "$T/c/tree" --store "$T/c/store" --quiet
		resumes "$T/c"
	done
done

it_done
