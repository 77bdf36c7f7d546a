#!/bin/sh
# deps.sh: install the Debian packages the build, tests and benchmarks need.
# Installs only what is missing; runs apt-get update first when it must
# install anything. Works as root and through sudo.
set -eu

PKGS="build-essential cmake pkg-config libssl-dev liburing-dev libzstd-dev
libxxhash-dev libcmocka-dev libbenchmark-dev libjansson-dev libp11-kit-dev softhsm2 opensc
age zstd xxd openssh-client python3 python3-yaml time strace gdb
clang libclang-rt-14-dev valgrind clang-tidy cppcheck acl attr util-linux
slurmctld slurmd slurm-client munge"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

echo "deps.sh: installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps.sh: missing packages:$missing; run as root or install sudo" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
