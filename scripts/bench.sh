#!/bin/sh
# bench.sh BUILD_DIR: run the micro-benchmarks (BUILD_DIR/bench/rp_bench,
# three repetitions, medians) and, in the same run, `openssl speed` as the
# reference; then print the ratios that docs/BENCHMARKS.md tracks. Absolute
# figures drift on shared machines; the ratios are what to compare.
#
# Environment: RP_BENCH_ARGS (more rp_bench options, split on spaces, e.g.
# "--benchmark_min_time=0.1" for a quick run), RP_BENCH_OSSL_SECONDS
# (seconds per openssl speed test, default 3).
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
bin="$1/bench/rp_bench"
if [ ! -x "$bin" ]; then
	echo "bench.sh: no '$bin': configure with -DRP_BENCH=ON and without" \
		"RP_SANITIZE, then build the rp_bench target" >&2
	exit 1
fi
secs="${RP_BENCH_OSSL_SECONDS:-3}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "== machine"
echo "nproc:   $(nproc)"
echo "cpu:     $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "kernel:  $(uname -sr)"
echo "openssl: $(openssl version)"
echo "load:    $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo

echo "== rp_bench (3 repetitions; mean, median, stddev, cv)"
# shellcheck disable=SC2086 # RP_BENCH_ARGS is split on purpose
"$bin" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
	--benchmark_out="$tmp/rp.json" --benchmark_out_format=json \
	${RP_BENCH_ARGS:-}
echo

echo "== openssl speed -seconds $secs rsa2048"
openssl speed -seconds "$secs" rsa2048 >"$tmp/rsa.txt" 2>/dev/null
grep -E '^ +sign|^rsa ' "$tmp/rsa.txt"
echo
echo "== openssl speed -seconds $secs -evp chacha20-poly1305"
openssl speed -seconds "$secs" -evp chacha20-poly1305 \
	>"$tmp/chacha.txt" 2>/dev/null
grep -A 1 '^type' "$tmp/chacha.txt"
echo

if grep -q '"error_occurred": true' "$tmp/rp.json"; then
	echo "bench.sh: a benchmark failed:" >&2
	grep '"error_message"' "$tmp/rp.json" >&2
	exit 1
fi

# The median of each benchmark: "name rate" lines, rate in items/s (or
# bytes/s for the stream benchmarks, whose names say so with a "B:" prefix).
awk '
/^[[:space:]]*{/ { run = ""; agg = ""; items = ""; bytes = "" }
/"run_name":/ { v = $2; gsub(/[",]/, "", v); run = v }
/"aggregate_name":/ { v = $2; gsub(/[",]/, "", v); agg = v }
/"items_per_second":/ { v = $2; gsub(/,/, "", v); items = v }
/"bytes_per_second":/ { v = $2; gsub(/,/, "", v); bytes = v }
/^[[:space:]]*}/ {
	if (agg == "median" && run != "") {
		if (bytes != "" && run ~ /stream/) {
			print "B:" run, bytes
		} else if (items != "") {
			print run, items
		}
	}
	run = ""
}' "$tmp/rp.json" >"$tmp/medians.txt"

# openssl's rsa2048 sign/s: the column named "sign/s" in the header line;
# data lines start with 3 more words ("rsa 2048 bits").
ossl_sign=$(awk '
/sign\/s/ { for (i = 1; i <= NF; i++) if ($i == "sign/s") col = i + 3 }
/^rsa 2048 bits/ && col { print $col; exit }' "$tmp/rsa.txt")
# openssl's chacha20-poly1305 rate at 16384-byte blocks, in bytes/s: the
# header reads "type 16 bytes 64 bytes ...", the value is in 1000s of B/s.
ossl_chacha=$(awk '
/^type/ { for (i = 1; i <= NF; i++) if ($i == "16384") col = (i - 2) / 2 + 2
	  getline; v = $col; sub(/k$/, "", v); printf "%.0f\n", v * 1000; exit }' \
	"$tmp/chacha.txt")

get() {
	awk -v n="$1" '$1 == n { print $2; exit }' "$tmp/medians.txt"
}

# ratio LABEL NUM DEN UNIT: one table row; "n/a" when a value is missing.
ratio() {
	awk -v l="$1" -v a="$2" -v b="$3" -v u="$4" 'BEGIN {
		if (a == "" || b == "" || b + 0 == 0) {
			printf "| %-42s | %16s | %16s | %7s |\n", l, "n/a", "n/a", "n/a"
			exit
		}
		s = (u == "MB/s") ? 1e6 : 1
		printf "| %-42s | %11.1f %-4s | %11.1f %-4s | %7.3f |\n",
			l, a / s, u, b / s, u, a / b
	}'
}

echo "== medians"
awk '{
	if ($1 ~ /^B:/) printf "%-32s %12.1f MB/s\n", substr($1, 3), $2 / 1e6
	else printf "%-32s %12.1f /s\n", $1, $2
}' "$tmp/medians.txt"
printf "%-32s %12.1f /s\n" "openssl rsa2048 sign" "${ossl_sign:-0}"
printf "%-32s %12.1f MB/s\n" "openssl chacha20-poly1305 16K" \
	"$(awk -v v="${ossl_chacha:-0}" 'BEGIN { print v / 1e6 }')"
echo

echo "== ratios (medians; compare these, not the absolute figures)"
printf "| %-42s | %16s | %16s | %7s |\n" "ratio" "ours" "reference" "ratio"
echo "|--------------------------------------------|------------------|------------------|---------|"
b1=$(get license_sign_batch/1)
ratio "signing docs/s, batch 64 / batch 1" \
	"$(get license_sign_batch/64)" "$b1" "/s"
ratio "signing docs/s, batch 1024 / batch 1" \
	"$(get license_sign_batch/1024)" "$b1" "/s"
ratio "signing batch 1 / openssl rsa2048 sign" "$b1" "$ossl_sign" "/s"
ratio "ssh-rsa unwrap / openssl rsa2048 sign" \
	"$(get sshrsa_unwrap)" "$ossl_sign" "/s"
ratio "STREAM seal 16 MiB / openssl chacha 16 KiB" \
	"$(get B:age_stream_seal/16777216)" "$ossl_chacha" "MB/s"
ratio "STREAM open 16 MiB / openssl chacha 16 KiB" \
	"$(get B:age_stream_open/16777216)" "$ossl_chacha" "MB/s"
ratio "STREAM seal 64 KiB / openssl chacha 16 KiB" \
	"$(get B:age_stream_seal/65536)" "$ossl_chacha" "MB/s"
