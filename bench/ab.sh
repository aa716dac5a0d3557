#!/usr/bin/env bash
# A/B two gregor variants on one bench case, the way docs/performance.md
# asks: both brokers fresh, each warmed with one discarded run, then PAIRS
# alternating runs (A, B, A, B, ...), each on a new topic deleted after its
# run, and the median of the per-pair ratios B/A. A variant is a binary and
# optional extra `gregor bench` flags, so one binary can be compared with
# itself under two topic configs.
#
#   bash bench/ab.sh PAIRS BIN_A "FLAGS_A" BIN_B "FLAGS_B" -- <gregor bench produce flags>
#   bash bench/ab.sh 6 /tmp/gold "" /tmp/gnew "" -- --partitions 8 --size 1024 --records 300000
#   bash bench/ab.sh 6 ./g "" ./g "--topic-config preallocate=true" -- --partitions 1 --size 100 \
#       --records 500000 --rate 50000 --duration 10s
#
# METRIC (env) picks the JSON field compared: records_per_sec (default) or a
# latency such as produce_p99_ms (then a ratio below 1 favours B). Prints
# each pair, the median ratio and its range, and each broker's peak RSS.
# Uses ports 19292-19294 (A) and 19392-19394 (B) on 127.0.0.1.
set -euo pipefail
pairs=$1 binA=$2 flagsA=$3 binB=$4 flagsB=$5
shift 5
[[ ${1:-} == -- ]] && shift
flags=("$@")
metric=${METRIC:-records_per_sec}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
"$binA" serve --data-dir "$work/a" --kafka-addr 127.0.0.1:19292 \
	--controller-addr 127.0.0.1:19293 --http-addr 127.0.0.1:19294 >"$work/a.log" 2>&1 &
pids+=($!)
pidA=$!
"$binB" serve --data-dir "$work/b" --kafka-addr 127.0.0.1:19392 \
	--controller-addr 127.0.0.1:19393 --http-addr 127.0.0.1:19394 >"$work/b.log" 2>&1 &
pids+=($!)
pidB=$!
for port in 19294 19394; do
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
done
rssA=0 rssB=0
rss() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
run() { # run BIN ADDR TOPIC EXTRA -> metric
	local bin=$1 addr=$2 topic=$3 extra=$4
	# shellcheck disable=SC2086
	"$bin" bench produce -b "$addr" --topic "$topic" --progress never --json "${flags[@]}" $extra 2>/dev/null |
		sed -n "s/.*\"$metric\":\([0-9.e+-]*\).*/\1/p"
	"$bin" topic delete -b "$addr" "$topic" >/dev/null 2>&1 || true
}
echo "warming: A $(run "$binA" 127.0.0.1:19292 warm-a "$flagsA"), B $(run "$binB" 127.0.0.1:19392 warm-b "$flagsB") ($metric)"
ratios=()
for i in $(seq 1 "$pairs"); do
	a=$(run "$binA" 127.0.0.1:19292 "ab-a-$i" "$flagsA")
	b=$(run "$binB" 127.0.0.1:19392 "ab-b-$i" "$flagsB")
	r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')
	ratios+=("$r")
	printf 'pair %d: A %s, B %s, B/A %s (load %s)\n' "$i" "$a" "$b" "$r" "$(cut -d' ' -f1 /proc/loadavg)"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk -v m="$metric" '{ a[NR] = $1 } END {
	med = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
	printf "median B/A of %s over %d pairs: %.2f (range %.2f-%.2f)\n", m, NR, med, a[1], a[NR] }'
echo "peak RSS: A $(rss $pidA) MiB, B $(rss $pidB) MiB"
