#!/bin/sh
# demo.sh REPROTECT: the foundation tour on the embedded default (the soft
# keystore) and a generated corpus, in a temporary folder it leaves behind.
set -eu

R=${1:-build/reprotect}
R=$(cd "$(dirname "$R")" && pwd)/$(basename "$R")
N=${DEMO_FILES:-200}
DIR=$(mktemp -d /tmp/reprotect-demo.XXXXXX)
export REPROTECT_STORE="$DIR/store"
export REPROTECT_PASSPHRASE="demo passphrase (use a real one)"
cd "$DIR"

step() { printf '\n== %s\n' "$*"; }

step "create a store in $REPROTECT_STORE"
"$R" init

step "bring your own key: an RSA-3072 key made with openssl, imported"
openssl genrsa -out byok-rsa3072.pem 3072 2>/dev/null
"$R" key import byok-rsa3072.pem --activate

step "a rights template, signed by the active key"
"$R" template create confidential --rights view,print
"$R" template list

step "generate $N documents (0 B to 300 KiB) in $DIR/docs"
mkdir docs
i=0
while [ "$i" -lt "$N" ]; do
	size=$(( (i * 7919) % 307200 ))
	[ $((i % 10)) -eq 0 ] && size=0
	head -c "$size" /dev/urandom > "docs/doc-$i.bin"
	i=$((i + 1))
done
du -sh docs | sed 's/^/   /'

step "protect them all (names ending in 3-9 zstd-compressed first)"
start=$(date +%s.%N)
"$R" protect --owner "finance@example.org" --template confidential docs/doc-*[0-2].bin
"$R" protect --owner "finance@example.org" --compress docs/doc-*[3-9].bin
end=$(date +%s.%N)
awk -v n="$N" -v s="$start" -v e="$end" 'BEGIN { printf "   %d documents in %.2f s\n", n, e - s }'

step "inspect one"
"$R" inspect docs/doc-1.bin.age

step "open every document again and compare"
ok=0
for f in docs/*.bin; do
	"$R" unprotect "$f.age" -o "$f.out"
	cmp -s "$f" "$f.out" && ok=$((ok + 1))
	rm -f "$f.out"
done
echo "   $ok of $N documents opened to their exact bytes"

if command -v age >/dev/null 2>&1; then
	step "the stock age tool opens them too, given the key"
	age -d -i byok-rsa3072.pem docs/doc-1.bin.age | cmp - docs/doc-1.bin &&
		echo "   age -d -i byok-rsa3072.pem docs/doc-1.bin.age: same bytes"
fi

step "a tampered document is refused, and nothing is written"
cp docs/doc-2.bin.age tampered.age
printf 'X' | dd of=tampered.age bs=1 seek=200 conv=notrunc 2>/dev/null
if "$R" unprotect tampered.age -o tampered.out; then
	echo "   UNEXPECTED: the tampered document opened" >&2
	exit 1
else
	echo "   refused with exit code $?; tampered.out exists: $(test -e tampered.out && echo yes || echo no)"
fi

step "the keys"
"$R" key list

printf '\nThe demo files are in %s (store, keys, documents).\n' "$DIR"
[ "$ok" -eq "$N" ]
