#!/bin/sh
# it_k8s.sh: the Kubernetes Indexed Job of deploy/k8s runs what the CLI
# accepts and fails the way the CLI fails. Every manifest parses as YAML;
# the Job (as written, and as kustomize renders the base and the root
# overlay) is Indexed, retries per index, and its podFailurePolicy names
# exit codes. The real binary is then driven into every exit code a
# `run` shard can end with (a wrong passphrase, a bad option, an index
# past --shard N, a tampered store, a missing root, a report that cannot
# be written, a busy document, SIGTERM, a document under a retiring key),
# each tried twice and in two shards: a code a rerun cures must be
# retried (Count or Ignore), one that comes back the same in every shard
# must fail the Job, one that comes back in one shard only must fail that
# index; a code cured in one case and not in another is counted. The
# policy must name exactly the codes seen, each with its action. The
# container's arguments use only options `run --help` lists, the
# passphrase comes from a Secret file (never the environment), and then
# the manifest's own command line is run for every index, as many at once
# as its parallelism, over a store, corpus and output folder laid out as
# its volumes are: every document moves exactly once, each index writes
# its report and journal, and the store's audit chain stays whole.
# With kubectl (no cluster needed): kustomize renders both
# kustomizations, and the Job decodes into the typed batch/v1 API with no
# field dropped (a misspelt field would be).
# Usage: sh tests/it_k8s.sh PATH/TO/reprotect
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
K8S=$HERE/../deploy/k8s
. "$HERE/it_lib.sh"
need python3

if [ ! -f "$K8S/base/job.yaml" ]; then
	fail "deploy/k8s/base/job.yaml is missing"
	it_done
fi
K8S=$(cd "$K8S" && pwd)

# PyYAML: the interpreter's own (with its site packages), else Debian's
YPY=
for _c in "$PY" /usr/bin/python3; do
	if [ -x "$_c" ] && "$_c" -I -c 'import yaml' 2>/dev/null; then
		YPY=$_c
		break
	fi
done
if [ -z "$YPY" ]; then
	echo "$IT_NAME: SKIP: PyYAML is not installed (Debian: python3-yaml)" >&2
	exit 77
fi
# kubectl, when present, only ever works offline here
KUBECTL=
if command -v kubectl >/dev/null 2>&1; then
	KUBECTL=$(command -v kubectl)
	export KUBECONFIG="$T/no-kubeconfig"
fi

# report FILE: the lines "PASS desc" / "FAIL desc" of a checker, as
# assertions (a checker that printed nothing, or died, fails)
report() {
	if [ ! -s "$1" ]; then
		fail "the checker said nothing ($1)"
		return 0
	fi
	while IFS= read -r _l; do
		case $_l in
		"PASS "*) pass ;;
		"FAIL "*) fail "${_l#FAIL }" ;;
		*) fail "checker: $_l" ;;
		esac
	done <"$1"
}

cat >"$T/chk.py" <<'PY'
import json, math, re, sys
import yaml

out = []
def ok(cond, desc):
    out.append(("PASS " if cond else "FAIL ") + desc)
    return cond

def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

def parse(files):
    for p in files:
        try:
            docs = load(p)
        except Exception as e:  # a parse error names the file and line
            ok(False, "%s does not parse as YAML: %s" % (p, str(e).replace("\n", " ")))
            continue
        ok(len(docs) > 0, "%s holds a document" % p)
        for d in docs:
            ok(isinstance(d, dict) and isinstance(d.get("apiVersion"), str)
               and isinstance(d.get("kind"), str),
               "%s: every document has apiVersion and kind" % p)
            if d.get("kind") == "PersistentVolumeClaim":
                ok("ReadWriteMany" in d["spec"].get("accessModes", []),
                   "%s: claim %s is ReadWriteMany (shared by every shard)"
                   % (p, d["metadata"]["name"]))

def cpus(q):
    q = str(q)
    return math.ceil(int(q[:-1]) / 1000) if q.endswith("m") else math.ceil(float(q))

def job(label, path, helpf, prefix, root):
    docs = load(path)
    jobs = [d for d in docs if d.get("kind") == "Job"]
    if not ok(len(jobs) == 1, "%s: one Job" % label):
        return
    j = jobs[0]
    with open(prefix + ".job.json", "w") as f:
        json.dump(j, f)
    s = j["spec"]
    n = s.get("completions")
    ok(s.get("completionMode") == "Indexed", "%s: completionMode Indexed" % label)
    ok(isinstance(n, int) and n >= 1, "%s: completions set" % label)
    ok(isinstance(s.get("parallelism"), int) and 1 <= s["parallelism"] <= (n or 0),
       "%s: 1 <= parallelism <= completions" % label)
    ok(isinstance(s.get("backoffLimitPerIndex"), int) and s["backoffLimitPerIndex"] >= 1,
       "%s: backoffLimitPerIndex >= 1 (an index is retried alone)" % label)
    ok(isinstance(s.get("maxFailedIndexes"), int), "%s: maxFailedIndexes set" % label)
    ok(s.get("podReplacementPolicy") == "Failed",
       "%s: podReplacementPolicy Failed (no two pods of one index at once)" % label)
    pod = s["template"]["spec"]
    ok(pod.get("restartPolicy") == "Never", "%s: restartPolicy Never" % label)
    cs = pod["containers"]
    if not ok(len(cs) == 1, "%s: one container" % label):
        return
    c = cs[0]
    rules = s.get("podFailurePolicy", {}).get("rules", [])
    ok(len(rules) > 0, "%s: a podFailurePolicy" % label)
    policy, first_exit8, disruption = {}, None, None
    for i, r in enumerate(rules):
        oc = r.get("onExitCodes")
        if oc is None:
            for pc in r.get("onPodConditions", []):
                if pc.get("type") == "DisruptionTarget":
                    disruption = i
                    ok(pc.get("status") == "True" and r.get("action") == "Ignore",
                       "%s: DisruptionTarget (status True) is ignored" % label)
            continue
        vals = oc.get("values", [])
        ok(oc.get("operator") == "In", "%s: rule %d: operator In" % (label, i))
        ok(oc.get("containerName") == c["name"],
           "%s: rule %d: containerName is the container's" % (label, i))
        ok(vals == sorted(set(vals)) and all(isinstance(v, int) and 0 < v < 256 for v in vals),
           "%s: rule %d: values sorted, distinct, 1..255" % (label, i))
        for v in vals:
            ok(v not in policy, "%s: exit %s in one rule only" % (label, v))
            policy[v] = r.get("action")
            if v == 8 and first_exit8 is None:
                first_exit8 = i
    ok(len(policy) > 0, "%s: the policy names exit codes" % label)
    ok(disruption is not None and (first_exit8 is None or disruption < first_exit8),
       "%s: the DisruptionTarget rule comes before the exit-8 rule" % label)
    with open(prefix + ".policy", "w") as f:
        for v in sorted(policy):
            f.write("%d %s\n" % (v, policy[v]))

    # the command line: reprotect run ..., options run --help lists
    argv = c.get("command", []) + c.get("args", [])
    ok(len(argv) > 2 and argv[0].rsplit("/", 1)[-1] == "reprotect" and argv[1] == "run",
       "%s: the container runs 'reprotect run'" % label)
    # an option's line in the help: "  --name [ARG]  what it does"
    takes, flags = set(), set()
    for line in open(helpf, encoding="utf-8"):
        m = re.match(r"\s+(?:-\w, )?(--[a-z][a-z0-9-]*)( [A-Za-z][A-Za-z/|]*)?(\s|$)", line)
        if m:
            (takes if m.group(2) else flags).add(m.group(1))
    ok(len(takes) > 8 and "--in-place" in flags, "%s: run --help lists its options" % label)
    opts = {}
    i = 2
    while i < len(argv):
        a = argv[i]
        if a.startswith("-"):
            ok(a in takes | flags, "%s: option %s is one run --help lists" % (label, a))
            opts[a] = argv[i + 1] if a in takes and i + 1 < len(argv) else True
            i += 2 if a in takes else 1
        else:
            opts.setdefault("ROOTS", []).append(a)
            i += 1
    ok(opts.get("--shard") == str(n),
       "%s: --shard N alone, N = completions (%s), the index from JOB_COMPLETION_INDEX"
       % (label, n))
    ok("--in-place" in opts or "--out" in opts, "%s: --in-place or --out" % label)
    ok("$(JOB_COMPLETION_INDEX)" in str(opts.get("--report", "")),
       "%s: --report names the index" % label)
    ok("$(JOB_COMPLETION_INDEX)" in str(opts.get("--journal", "")),
       "%s: --journal names the index" % label)

    # the environment: no secret in it; every $(VAR) defined
    env = {e["name"]: e for e in c.get("env", [])}
    ok("envFrom" not in c, "%s: no envFrom" % label)
    ok(not {"REPROTECT_PASSPHRASE", "REPROTECT_PKCS11_PIN"} & set(env),
       "%s: no passphrase or PIN in the environment" % label)
    ok(not any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values()),
       "%s: no environment variable from a Secret" % label)
    values = {"JOB_COMPLETION_INDEX": "$(JOB_COMPLETION_INDEX)"}
    limits = c.get("resources", {}).get("limits", {})
    requests = c.get("resources", {}).get("requests", {})
    ok("cpu" in requests and "memory" in requests and "memory" in limits,
       "%s: cpu and memory requested, memory limited" % label)
    for name, e in env.items():
        vf = e.get("valueFrom", {})
        if "value" in e:
            values[name] = e["value"]
        elif vf.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            values[name] = "reprotect-run-$(JOB_COMPLETION_INDEX)-x7k2p"
        elif vf.get("resourceFieldRef", {}).get("resource") == "limits.cpu":
            values[name] = str(cpus(limits["cpu"]))
    used = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(argv)))
    ok(used <= set(values), "%s: every $(VAR) of the arguments is defined: %s"
       % (label, sorted(used - set(values))))
    if "--jobs" in opts:
        m = re.fullmatch(r"\$\((\w+)\)", opts["--jobs"])
        ok(m is not None and "resourceFieldRef" in env.get(m.group(1), {}).get("valueFrom", {}),
           "%s: --jobs follows the container's CPU limit" % label)

    # volumes: what each path of the command line is on
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = c.get("volumeMounts", [])
    def mount_of(p):
        best = None
        for m in mounts:
            mp = m["mountPath"].rstrip("/")
            if (p == mp or p.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"])):
                best = m
        return best
    def kind(m):
        v = vols.get(m["name"], {}) if m else {}
        return next((k for k in ("persistentVolumeClaim", "secret", "emptyDir",
                                 "csi", "nfs", "hostPath") if k in v), None)
    pf = opts.get("--passphrase-file")
    m = mount_of(pf) if isinstance(pf, str) else None
    if ok(m is not None and kind(m) == "secret" and m.get("readOnly") is True,
          "%s: --passphrase-file is a file of a Secret, mounted read-only" % label):
        items = vols[m["name"]]["secret"].get("items")
        rel = pf[len(m["mountPath"].rstrip("/")) + 1:]
        ok(items is None or rel in [it["path"] for it in items],
           "%s: the Secret's items hold %s" % (label, rel))
    shared = ("persistentVolumeClaim", "csi", "nfs")
    for what, p in [("--store", opts.get("--store"))] + \
            [("the root", r) for r in opts.get("ROOTS", [])] + \
            [("--report", opts.get("--report")), ("--journal", opts.get("--journal"))]:
        m = mount_of(p) if isinstance(p, str) else None
        ok(m is not None and kind(m) in shared and not m.get("readOnly"),
           "%s: %s (%s) is on a shared volume mounted read-write" % (label, what, p))

    # security
    psc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
    is_root = psc.get("runAsUser") == 0
    ok(is_root or psc.get("runAsNonRoot") is True, "%s: runAsNonRoot (or the root overlay)" % label)
    ok("fsGroup" not in psc, "%s: no fsGroup (it would chgrp every document)" % label)
    ok(sc.get("readOnlyRootFilesystem") is True, "%s: readOnlyRootFilesystem" % label)
    ok(sc.get("allowPrivilegeEscalation") is False, "%s: no privilege escalation" % label)
    ok(sc.get("privileged") in (None, False), "%s: not privileged" % label)
    caps = sc.get("capabilities", {})
    ok(caps.get("drop") == ["ALL"], "%s: drops ALL capabilities" % label)
    add = set(caps.get("add", []))
    ok(add <= ({"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"} if is_root else set()),
       "%s: adds no capability but what a root run needs: %s" % (label, sorted(add)))
    ok(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
       "%s: seccomp RuntimeDefault" % label)

    # the command line as run here: each mount under ROOT/VOLUME
    def local(a):
        for mm in sorted(mounts, key=lambda x: -len(x["mountPath"])):
            mp = mm["mountPath"].rstrip("/")
            if a == mp or a.startswith(mp + "/"):
                return root + "/" + mm["name"] + a[len(mp):]
        return a
    def subst(a):
        for k, v in values.items():
            a = a.replace("$(%s)" % k, v)
        return a
    with open(prefix + ".argv", "w") as f:
        for a in argv[1:]:
            f.write(local(subst(a)) + "\n")
    with open(prefix + ".paths", "w") as f:
        f.write("shards %d\n" % n)
        f.write("parallelism %d\n" % s.get("parallelism", 1))
        f.write("store %s\n" % local(opts.get("--store", "")))
        f.write("passfile %s\n" % local(pf or ""))
        for r in opts.get("ROOTS", []):
            f.write("root %s\n" % local(r))
        f.write("report %s\n" % local(subst(opts.get("--report", ""))))

def typed(src, typedf):
    # every field of the Job as written survives kubectl's typed decoding
    a = json.load(open(src))
    b = json.load(open(typedf))
    missing = []
    def walk(x, y, p):
        if isinstance(x, dict):
            if not isinstance(y, dict):
                missing.append(p)
                return
            for k, v in x.items():
                if k not in y:
                    missing.append(p + "." + k)
                else:
                    walk(v, y[k], p + "." + k)
        elif isinstance(x, list):
            if not isinstance(y, list) or len(y) < len(x):
                missing.append(p)
                return
            for i, v in enumerate(x):
                walk(v, y[i], "%s[%d]" % (p, i))
        elif str(x) != str(y) and not (isinstance(x, bool) and x == y):
            missing.append("%s (%r -> %r)" % (p, x, y))
    walk(a, b, "")
    ok(not missing, "%s: fields the batch/v1 API does not know or read otherwise: %s"
       % (src.rsplit("/", 1)[-1], missing))

mode = sys.argv[1]
if mode == "parse":
    parse(sys.argv[2:])
elif mode == "job":
    job(*sys.argv[2:7])
elif mode == "typed":
    typed(sys.argv[2], sys.argv[3])
print("\n".join(out))
PY

chk() {
	"$YPY" -I "$T/chk.py" "$@" >"$T/.chk" 2>&1 || true
	report "$T/.chk"
}

"$RP" run --help >"$T/run-help.txt"

case_ "every manifest parses"
find "$K8S" -name '*.yaml' | sort >"$T/manifests"
assert_eq "$(wc -l <"$T/manifests" | tr -d ' ')" \
	"$(grep -c . "$T/manifests")" "manifest list"
# shellcheck disable=SC2046
chk parse $(cat "$T/manifests")

case_ "the Job as written (base/job.yaml)"
mkdir "$T/vol"
chk job job.yaml "$K8S/base/job.yaml" "$T/run-help.txt" "$T/raw" "$T/vol"
JOBS="$T/raw"

if [ -n "$KUBECTL" ]; then
	case_ "kubectl, offline: kustomize renders base and root"
	expect_rc 0 "$KUBECTL" kustomize "$K8S/base"
	cp "$OUT" "$T/base.yaml"
	expect_rc 0 "$KUBECTL" kustomize "$K8S/root"
	cp "$OUT" "$T/root.yaml"
	chk parse "$T/base.yaml" "$T/root.yaml"
	chk job "kustomize base" "$T/base.yaml" "$T/run-help.txt" "$T/base" "$T/vol"
	chk job "kustomize root" "$T/root.yaml" "$T/run-help.txt" "$T/root" "$T/vol"
	JOBS="$JOBS $T/base $T/root"
	check "root overlay runs as root" grep -q 'runAsUser: 0' "$T/root.yaml"

	case_ "kubectl, offline: the Job decodes into batch/v1, no field dropped"
	for _j in $JOBS; do
		expect_rc 0 "$KUBECTL" set env --local -f "$_j.job.json" \
			RP_IT_K8S=1 -o json
		cp "$OUT" "$_j.typed.json"
		chk typed "$_j.job.json" "$_j.typed.json"
	done
else
	echo "$IT_NAME: no kubectl: kustomize and the typed decoding not checked" >&2
fi

case_ "the policy is the same in every rendering"
for _j in $JOBS; do
	check "$_j.policy" cmp -s "$T/raw.policy" "$_j.policy"
done

# ------------------------------------------------- the binary's exit codes
export REPROTECT_STORE="$T/store"
printf 'k8s-pass\n' >"$T/pass"
printf 'not-the-pass\n' >"$T/wrong"
PASSF=$T/pass
# rp ARGS...: reprotect with the passphrase from a file, as in the pod
rp() {
	"$RP" --passphrase-file "$PASSF" "$@"
}
expect_rc 0 rp init
expect_rc 0 rp key create --alg x25519 --activate
mkdir "$T/c"
i=0
while [ $i -lt 40 ]; do
	mkfile "$T/c/d$i" $((i * 29 + 1))
	i=$((i + 1))
done
expect_rc 0 rp protect "$T"/c/d*
find "$T/c" -type f ! -name '*.age' -delete
cp "$T/c/d5.age" "$T/old-d5.age" # stays under the first key
K1=$(rp key list --json | py -c 'import json, sys
print([k["id"] for k in json.load(sys.stdin) if k["state"] == "active"][0])')
expect_rc 0 rp rekey --alg x25519

# observe CODE KIND: a run ended with CODE; KIND: cured (a rerun after
# the cause went finished), store-wide (the same in every shard and on a
# rerun), shard-local (the same on a rerun, in the shard concerned only)
: >"$T/observed"
observe() {
	echo "$1 $2" >>"$T/observed"
}
# store_wide CODE ARGS...: `run ARGS --shard 2` exits CODE as index 0
# and as index 1, and again as index 0
store_wide() {
	_L_want=$1
	shift
	for _L_i in 0 1 0; do
		expect_rc "$_L_want" env JOB_COMPLETION_INDEX=$_L_i \
			"$RP" run "$@" --shard 2
	done
	observe "$_L_want" store-wide
}

case_ "exit 7: a wrong passphrase (the Secret)"
store_wide 7 "$T/c" --in-place --quiet --passphrase-file "$T/wrong"
case_ "exit 7: a --from key the store does not have"
store_wide 7 "$T/c" --in-place --quiet --passphrase-file "$PASSF" \
	--from deadbeefdeadbeef
case_ "exit 2: an option run does not know"
store_wide 2 "$T/c" --in-place --quiet --passphrase-file "$PASSF" \
	--no-such-option
case_ "exit 2: an index past --shard N (completions > N)"
for _i in 2 3 2; do
	expect_rc 2 env JOB_COMPLETION_INDEX=$_i "$RP" run "$T/c" --in-place \
		--quiet --passphrase-file "$PASSF" --shard 2
done
observe 2 store-wide
case_ "exit 3: the store's keyring edited"
cp -R "$T/store" "$T/store-bad"
flip_byte "$T/store/keyring" "$T/store-bad/keyring" \
	$(($(file_size "$T/store/keyring") - 40))
store_wide 3 "$T/c" --in-place --quiet --passphrase-file "$PASSF" \
	--store "$T/store-bad"
case_ "exit 6: the corpus not where the Job mounts it"
store_wide 6 "$T/no-such-corpus" --in-place --quiet --passphrase-file "$PASSF"

case_ "exit 6: the report cannot be written; a rerun finishes"
expect_rc 6 rp run "$T/c" --in-place --quiet --report "$T/no-out/report-0.json"
mkdir "$T/no-out"
expect_rc 0 rp run "$T/c" --in-place --quiet --report "$T/no-out/report-0.json"
observe 6 cured
assert_json "$T/no-out/report-0.json" '["outcomes"]["current"]["documents"]' 40

case_ "exit 1: a document busy (another run holds it); a rerun finishes"
expect_rc 0 rp rekey --alg x25519
# (the interpreter itself in the background, so that $! is the holder)
"$PY" -I -S -c 'import fcntl, sys, time
f = open(sys.argv[1], "rb")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(30)' "$T/c/d3.age" "$T/locked" &
LOCKER=$!
_w=0
while [ ! -e "$T/locked" ] && [ $_w -lt 500 ]; do
	sleep 0.02
	_w=$((_w + 1))
done
expect_rc 1 rp run "$T/c" --in-place --quiet --report "$T/r1.json"
kill "$LOCKER" 2>/dev/null || true
wait "$LOCKER" 2>/dev/null || true
assert_json "$T/r1.json" '["outcomes"]["skipped-busy"]["documents"]' 1
expect_rc 0 rp run "$T/c" --in-place --quiet --report "$T/r1b.json"
assert_json "$T/r1b.json" '["outcomes"]["moved"]["documents"]' 1
observe 1 cured

case_ "exit 8: SIGTERM (the pod deleted or evicted); a rerun finishes"
expect_rc 0 rp rekey --alg x25519
# --key-ops: the run lasts 2 s at least (40 unwraps and a signature at
# 20 a second), however fast the machine, so the signal lands inside it
"$RP" --passphrase-file "$PASSF" run "$T/c" --in-place --quiet --jobs 1 \
	--key-ops 20 --report "$T/r8.json" --journal "$T/j8" \
	>"$T/.o8" 2>"$T/.e8" &
RUNNER=$!
_w=0
while [ ! -e "$T/j8" ] && [ $_w -lt 1000 ]; do
	sleep 0.02
	_w=$((_w + 1))
done
sleep 0.2 # the journal is created just before the signals are taken
kill -TERM "$RUNNER" 2>/dev/null || true
_rc=0
wait "$RUNNER" || _rc=$?
assert_eq "$_rc" 8 "exit code after SIGTERM"
assert_json "$T/r8.json" '["stopped"]' true
expect_rc 0 rp run "$T/c" --in-place --quiet --report "$T/r8b.json"
assert_json "$T/r8b.json" '["stopped"]' false
observe 8 cured

case_ "exit 9: a document under a retiring key, in one shard only"
expect_rc 0 rp census "$T/c" --quiet --report "$T/census.txt"
expect_rc 0 rp key retire "$K1" --census "$T/census.txt" --root "$T/c"
mkdir "$T/c9"
cp "$T/old-d5.age" "$T/c9/found.age"
cp "$T"/c/d1*.age "$T/c9/"
_nine=0
_zero=0
for _i in 0 1 0 1; do
	run_rp env JOB_COMPLETION_INDEX=$_i "$RP" run "$T/c9" --in-place \
		--quiet --passphrase-file "$PASSF" --shard 2
	case $LAST_RC in
	9) _nine=$((_nine + 1)) ;;
	0) _zero=$((_zero + 1)) ;;
	*) fail "shard $_i of c9: exit $LAST_RC" ;;
	esac
done
assert_eq "$_nine $_zero" "2 2" \
	"exit 9 in the shard that has it, twice; 0 in the other"
observe 9 shard-local

case_ "the policy names exactly the codes run ends with, each as it behaves"
# the action each code must have, from how it behaved above
py - "$T/observed" "$T/raw.policy" >"$T/.cmp" <<'PY' || true
import sys
seen = {}
for line in open(sys.argv[1]):
    code, kind = line.split()
    seen.setdefault(int(code), set()).add(kind)
policy = {}
for line in open(sys.argv[2]):
    code, action = line.split()
    policy[int(code)] = action
def want(kinds):
    if kinds == {"cured"}:
        return {"Count", "Ignore"}
    if "cured" in kinds:
        return {"Count"}
    if kinds == {"store-wide"}:
        return {"FailJob"}
    if kinds == {"shard-local"}:
        return {"FailIndex"}
    return set()
for code in sorted(set(seen) | set(policy)):
    if code not in seen:
        print("FAIL the policy names exit %d, which no run here ended with" % code)
    elif code not in policy:
        print("FAIL exit %d (%s) is not in the policy" % (code, "/".join(sorted(seen[code]))))
    elif policy[code] not in want(seen[code]):
        print("FAIL exit %d (%s) is %s in the policy, want %s"
              % (code, "/".join(sorted(seen[code])), policy[code], " or ".join(sorted(want(seen[code])))))
    else:
        print("PASS exit %d: %s" % (code, policy[code]))
PY
report "$T/.cmp"

# ------------------------------------ the manifest's own command, each index
case_ "the Job's command line, every index, on one store"
path_of() {
	sed -n "s/^$1 //p" "$T/raw.paths" | head -n 1
}
SHARDS=$(path_of shards)
STORE=$(path_of store)
PASSFILE=$(path_of passfile)
ROOT=$(path_of root)
mkdir -p "$(dirname "$STORE")" "$(dirname "$PASSFILE")" "$ROOT" \
	"$(dirname "$(path_of report)")"
printf 'k8s-pass\n' >"$PASSFILE"
unset REPROTECT_STORE
expect_rc 0 "$RP" --store "$STORE" --passphrase-file "$PASSFILE" init
expect_rc 0 "$RP" --store "$STORE" --passphrase-file "$PASSFILE" key create \
	--alg x25519 --activate
i=0
while [ $i -lt 48 ]; do
	mkdir -p "$ROOT/f$((i % 5))"
	mkfile "$ROOT/f$((i % 5))/e$i" $((i * 17 + 3))
	i=$((i + 1))
done
expect_rc 0 "$RP" --store "$STORE" --passphrase-file "$PASSFILE" protect \
	"$ROOT"/f*/e*
find "$ROOT" -type f ! -name '*.age' -delete
expect_rc 0 "$RP" --store "$STORE" --passphrase-file "$PASSFILE" rekey \
	--alg x25519
# as the Job does: PARALLELISM indexes at once, all on the one store
PARALLELISM=$(path_of parallelism)
_i=0
while [ $_i -lt "$SHARDS" ]; do
	sed "s/\$(JOB_COMPLETION_INDEX)/$_i/g" "$T/raw.argv" >"$T/argv.$_i"
	set --
	while IFS= read -r _a; do
		set -- "$@" "$_a"
	done <"$T/argv.$_i"
	(
		_rc=0
		JOB_COMPLETION_INDEX=$_i "$RP" "$@" >"$T/idx$_i.out" \
			2>"$T/idx$_i.err" || _rc=$?
		echo "$_rc" >"$T/idx$_i.rc"
	) &
	_i=$((_i + 1))
	if [ $((_i % PARALLELISM)) -eq 0 ] || [ $_i -eq "$SHARDS" ]; then
		wait
	fi
done
_moved=0
_seen=0
_i=0
while [ $_i -lt "$SHARDS" ]; do
	assert_eq "$(cat "$T/idx$_i.rc")" 0 "index $_i: exit code"
	if [ "$(cat "$T/idx$_i.rc")" != 0 ]; then
		sed 's/^/    stderr: /' "$T/idx$_i.err" | head -n 5 >&2
	fi
	_rep=$(path_of report | sed "s/\$(JOB_COMPLETION_INDEX)/$_i/g")
	assert_exists "$_rep"
	_ms=$(json_get "$_rep" '["outcomes"]["moved"]["documents"] * 1000 + d["documents_seen"]')
	case $_ms in
	'' | *[!0-9]*) fail "index $_i: no counts in its report" ;;
	*)
		_moved=$((_moved + _ms / 1000))
		_seen=$((_seen + _ms % 1000))
		;;
	esac
	_i=$((_i + 1))
done
assert_eq "$_moved" 48 "documents moved by the $SHARDS indexes"
assert_eq "$_seen" 48 "documents seen by the $SHARDS indexes"
check "a journal per index" test "$(find "$(dirname "$(path_of report)")" \
	-name 'journal-*' | wc -l)" -eq "$SHARDS"
expect_rc 0 "$RP" --store "$STORE" --passphrase-file "$PASSFILE" run "$ROOT" \
	--dry-run --quiet --report "$T/after.json"
assert_json "$T/after.json" '["outcomes"]["current"]["documents"]' 48
# every index appended to the one audit chain
expect_rc 0 "$RP" --store "$STORE" --passphrase-file "$PASSFILE" audit verify

it_done
