#!/usr/bin/env bash
# RF=3 on a local 3-node cluster against RF=1 on one node (issue 11):
# both started fresh and warmed with one discarded run, then PAIRS
# alternating unthrottled runs (single node, cluster, ...), each on a new
# topic deleted after its run, and the median ratio cluster/single; then
# the cluster's sustained maximum (unthrottled for SUSTAIN, 10 s by
# default: a short burst lands in the page cache and overstates what the
# disks keep up with), and produce latency at half of it.
#
#   bash bench/rf3.sh [PAIRS] [BIN]          (BIN: a built gregor; default: build one)
#   PARTITIONS=8 SIZE=1024 RECORDS=300000 RATE_RUNS=3 bash bench/rf3.sh 5
#   RATES="10000 20000 40000" bash bench/rf3.sh 3     (also latency at these rates)
#   SET="log.preallocate=true" bash bench/rf3.sh 3    (broker configs, --set, on every node)
#
# Every topic is acks=all with min.insync.replicas=2 on the cluster, so an
# answer means the batch is fsynced on every ISR member. Prints each pair,
# the median and range, the half-load runs' p50/p99, and each broker's peak
# RSS (VmHWM). Uses ports 19592-19594 (single) and 196x2-196x4 (cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-5}
bin=${2:-}
parts=${PARTITIONS:-8} size=${SIZE:-1024} records=${RECORDS:-300000} rateRuns=${RATE_RUNS:-3}
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
if [[ -z $bin ]]; then
	CGO_ENABLED=0 go build -trimpath -o "$work/gregor" ./cmd/gregor
	bin=$work/gregor
fi
"$bin" serve --data-dir "$work/single" --kafka-addr 127.0.0.1:19592 \
	--controller-addr 127.0.0.1:19593 --http-addr 127.0.0.1:19594 "${sets[@]}" >"$work/single.log" 2>&1 &
pids+=($!)
voters=controller.quorum.voters=1@127.0.0.1:19613,2@127.0.0.1:19623,3@127.0.0.1:19633
for n in 1 2 3; do
	"$bin" serve --node-id $n --data-dir "$work/n$n" --kafka-addr 127.0.0.1:196${n}2 \
		--controller-addr 127.0.0.1:196${n}3 --http-addr 127.0.0.1:196${n}4 --set "$voters" "${sets[@]}" >"$work/n$n.log" 2>&1 &
	pids+=($!)
done
for port in 19594 19614 19624 19634; do
	for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
done
single=127.0.0.1:19592
cluster=127.0.0.1:19612,127.0.0.1:19622,127.0.0.1:19632
field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
run() { # run BROKERS RF TOPIC [extra flags] -> JSON line
	local b=$1 rf=$2 topic=$3
	shift 3
	local cfg=()
	[[ $rf -gt 1 ]] && cfg=(--topic-config min.insync.replicas=2)
	"$bin" bench produce -b "$b" --topic "$topic" --replication-factor "$rf" --partitions "$parts" \
		--size "$size" --records "$records" --acks all --progress never --json "${cfg[@]}" "$@" 2>/dev/null
	"$bin" topic delete -b "$b" "$topic" >/dev/null 2>&1 || true
}
echo "warming: RF=1 $(run $single 1 warm-1 | field records_per_sec), RF=3 $(run $cluster 3 warm-3 | field records_per_sec) rec/s"
ratios=() rf3=()
for i in $(seq 1 "$pairs"); do
	a=$(run $single 1 "rf1-$i" | field records_per_sec)
	b=$(run $cluster 3 "rf3-$i" | field records_per_sec)
	r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')
	ratios+=("$r") rf3+=("$b")
	printf 'pair %d: RF=1 %.0f rec/s, RF=3 %.0f rec/s, RF3/RF1 %s (load %s)\n' "$i" "$a" "$b" "$r" "$(cut -d' ' -f1 /proc/loadavg)"
done
median() { sort -g | awk '{ a[NR] = $1 } END { printf "%s", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med=$(printf '%s\n' "${ratios[@]}" | median)
lo=$(printf '%s\n' "${ratios[@]}" | sort -g | head -1)
hi=$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)
max3=$(printf '%s\n' "${rf3[@]}" | median)
echo "median RF3/RF1 over $pairs pairs: $med (range $lo-$hi); median RF=3 burst max $max3 rec/s"
sustain=${SUSTAIN:-10s}
sus=$(run $cluster 3 sustained --duration "$sustain" --records 1000000000 | field records_per_sec)
printf 'RF=3 sustained for %s: %.0f rec/s (load %s)\n' "$sustain" "$sus" "$(cut -d' ' -f1 /proc/loadavg)"
half=$(awk -v m="$sus" 'BEGIN { printf "%d", m / 2 }')
for i in $(seq 1 "$rateRuns"); do
	j=$(run $cluster 3 "half-$i" --rate "$half" --duration 10s --records $((half * 10)))
	printf 'RF=3 at %d rec/s (half): %s rec/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms (load %s)\n' "$half" \
		"$(echo "$j" | field records_per_sec | cut -d. -f1)" "$(echo "$j" | field p50_ns | awk '{print $1/1e6}')" \
		"$(echo "$j" | field p99_ns | awk '{print $1/1e6}')" "$(echo "$j" | field max_ns | awk '{print $1/1e6}')" \
		"$(cut -d' ' -f1 /proc/loadavg)"
done
# Extra rate points (RATES="10000 20000 40000"): where the latency target holds.
for r in ${RATES:-}; do
	j=$(run $cluster 3 "rate-$r" --rate "$r" --duration 10s --records $((r * 10)))
	printf 'RF=3 at %d rec/s: %s rec/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms (load %s)\n' "$r" \
		"$(echo "$j" | field records_per_sec | cut -d. -f1)" "$(echo "$j" | field p50_ns | awk '{print $1/1e6}')" \
		"$(echo "$j" | field p99_ns | awk '{print $1/1e6}')" "$(echo "$j" | field max_ns | awk '{print $1/1e6}')" \
		"$(cut -d' ' -f1 /proc/loadavg)"
done
for p in "${pids[@]}"; do
	printf 'peak RSS pid %s: %s MiB\n' "$p" "$(awk '/VmHWM/ {print int($2/1024)}' /proc/$p/status)"
done
