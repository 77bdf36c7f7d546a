#!/bin/sh
# make_vectors.sh regenerates the age header vectors with stock age
# (Debian's age 1.1.1), OpenSSL and ssh-keygen. Every run makes new keys
# and new files; tests/test_age_header.c and tests/test_age_recip.c only
# rely on what the files say about each other, not on fixed bytes.
#
# Outputs:
#   x25519.key          age-keygen identity (with its "# public key:" line)
#   rsa{2048,3072,4096}.pem  RSA private keys (PKCS#8, from openssl genrsa)
#   rsa{2048,3072,4096}.pub  "ssh-rsa AAAA..." lines from ssh-keygen -y
#   plain.txt           the plaintext
#   x25519.age          age -r <x25519 recipient>
#   rsa{2048,3072,4096}.age  age -R rsaN.pub
#   multi.age           age -r <x25519> -R rsa2048.pub (two stanzas)
set -eu
cd "$(dirname "$0")"

rm -f x25519.key rsa*.pem rsa*.pub plain.txt ./*.age
umask 077
age-keygen -o x25519.key 2>/dev/null
for bits in 2048 3072 4096; do
	openssl genrsa -out "rsa$bits.pem" "$bits" 2>/dev/null
	ssh-keygen -y -f "rsa$bits.pem" >"rsa$bits.pub"
done
umask 022
chmod 644 x25519.key rsa*.pem rsa*.pub

printf 'reprotect age header vector\n' >plain.txt
recip=$(age-keygen -y x25519.key)
age -r "$recip" -o x25519.age plain.txt
for bits in 2048 3072 4096; do
	age -R "rsa$bits.pub" -o "rsa$bits.age" plain.txt
done
age -r "$recip" -R rsa2048.pub -o multi.age plain.txt

# each file must decrypt with stock age
for f in x25519 rsa2048 rsa3072 rsa4096; do
	if [ "$f" = x25519 ]; then id=x25519.key; else id=$f.pem; fi
	age -d -i "$id" "$f.age" | cmp -s - plain.txt
done
age -d -i rsa2048.pem multi.age | cmp -s - plain.txt
age -d -i x25519.key multi.age | cmp -s - plain.txt
