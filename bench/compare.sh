#!/usr/bin/env bash
# Compare gregor with franz-go's in-memory kfake on one produce case, the way
# docs/performance.md asks: both peers started fresh and warmed with one
# discarded run each, then PAIRS alternating runs (gregor, kfake, gregor, ...),
# each on a new topic, and the median of the per-pair ratios gregor/kfake.
#
#   bash bench/compare.sh [PAIRS] -- <gregor bench produce flags>
#   bash bench/compare.sh 5 -- --partitions 8 --size 1024 --records 500000 --acks all
#
# METRIC (env) picks the JSON field compared: records_per_sec (default) or a
# latency such as p99_ns (then a ratio below 1 favours gregor). CONSUME=1
# measures the catch-up re-read instead: each run produces the topic with
# the flags (untimed), then one consumer reads it all from the start
# (`gregor bench consume`). Each broker's peak RSS (VmHWM) closes the report.
#
# SET (env) is a space-separated list of broker configs given to gregor with
# --set, such as SET="log.preallocate=true".
#
# Needs: go. Uses ports 19092 (gregor) and 19192 (kfake) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-4}
shift || true
[[ ${1:-} == -- ]] && shift
flags=("$@")
[[ ${#flags[@]} -gt 0 ]] || flags=(--partitions 8 --size 1024 --records 500000 --acks all)

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
sets=()
for kv in ${SET:-}; do sets+=(--set "$kv"); done

CGO_ENABLED=0 go build -trimpath -o "$work/gregor" ./cmd/gregor
(cd bench && go build -o "$work/kfake" ./kfake)

"$work/gregor" serve --data-dir "$work/data" --kafka-addr 127.0.0.1:19092 \
	--controller-addr 127.0.0.1:19093 --http-addr 127.0.0.1:19094 "${sets[@]}" >"$work/gregor.log" 2>&1 &
pids+=($!)
"$work/kfake" --addr 127.0.0.1:19192 >"$work/kfake.log" 2>&1 &
pids+=($!)
sleep 2

metric=${METRIC:-records_per_sec}
run() { # run ADDR TOPIC -> the metric
	if [[ -n ${CONSUME:-} ]]; then
		"$work/gregor" bench produce -b "$1" --topic "$2" --progress never --json "${flags[@]}" >/dev/null 2>&1
		"$work/gregor" bench consume -b "$1" --topic "$2" --progress never --json 2>/dev/null |
			sed -n "s/.*\"$metric\":\([0-9.e+-]*\).*/\1/p"
	else
		"$work/gregor" bench produce -b "$1" --topic "$2" --progress never --json "${flags[@]}" 2>/dev/null |
			sed -n "s/.*\"$metric\":\([0-9.e+-]*\).*/\1/p"
	fi
	# kfake keeps every record in memory and gregor's disk is shared: drop each topic.
	"$work/gregor" topic delete -b "$1" "$2" >/dev/null 2>&1 || true
}

echo "warming: gregor $(run 127.0.0.1:19092 warm-g), kfake $(run 127.0.0.1:19192 warm-k) ($metric)"
ratios=()
for i in $(seq 1 "$pairs"); do
	g=$(run 127.0.0.1:19092 "cmp-g-$i")
	k=$(run 127.0.0.1:19192 "cmp-k-$i")
	r=$(awk -v g="$g" -v k="$k" 'BEGIN { printf "%.2f", g / k }')
	ratios+=("$r")
	printf 'pair %d: gregor %.0f, kfake %.0f (%s), ratio %s (load %s)\n' "$i" "$g" "$k" "$metric" "$r" "$(cut -d' ' -f1 /proc/loadavg)"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END {
	m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
	printf "median ratio gregor/kfake over %d pairs: %.2f (range %.2f-%.2f)\n", NR, m, a[1], a[NR] }'
printf 'peak RSS: gregor %s MiB, kfake %s MiB\n' "$(awk '/VmHWM/ {print int($2/1024)}' /proc/${pids[0]}/status)" \
	"$(awk '/VmHWM/ {print int($2/1024)}' /proc/${pids[1]}/status)"
