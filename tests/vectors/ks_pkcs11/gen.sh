#!/bin/sh
# Regenerates the fixture keys of tests/test_ks_pkcs11.c (imported into
# SoftHSM2 there, so the test needs no slow RSA key generation on the token).
set -eu
cd "$(dirname "$0")"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform PEM |
	openssl pkey -traditional -out rsa2048-pkcs1.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2048-pkcs8.pem
age-keygen 2>/dev/null | grep '^AGE-SECRET-KEY-1' > x25519.key
