#!/usr/bin/env bash
# Where a produce request's cycle goes with one request in flight (the
# issue's setting: franz-go, idempotence off). For RUNS runs of one produce
# case on a fresh single node it prints the records per second, the
# produce requests the run took, their mean size, the mean cycle per
# request (the run's time over its requests: the client builds a request,
# sends it, waits for the answer, and only then builds the next) and the
# broker's mean time per request from its own histogram
# (gregor_request_duration_seconds, from reading the request to writing
# the answer: the appends and the fdatasync). The rest of the cycle is the
# client's and the loopback's.
#
#   bash bench/cycle.sh [RUNS] -- <gregor bench produce flags>
#   bash bench/cycle.sh 5 -- --partitions 8 --size 1024 --records 500000 --acks all
#
# Needs: go, curl. Uses ports 19092-19094 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
[[ ${1:-} == -- ]] && shift
flags=("$@")
[[ ${#flags[@]} -gt 0 ]] || flags=(--partitions 8 --size 1024 --records 500000 --acks all)

work=$(mktemp -d)
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
CGO_ENABLED=0 go build -trimpath -o "$work/gregor" ./cmd/gregor
"$work/gregor" serve --data-dir "$work/data" --kafka-addr 127.0.0.1:19092 \
	--controller-addr 127.0.0.1:19093 --http-addr 127.0.0.1:19094 >"$work/gregor.log" 2>&1 &
pid=$!
sleep 2

# produce_stats prints the Produce histogram's count and sum (seconds).
produce_stats() {
	curl -s http://127.0.0.1:19094/metrics | awk '
		/^gregor_request_duration_seconds_count\{api="Produce"\}/ { c = $2 }
		/^gregor_request_duration_seconds_sum\{api="Produce"\}/ { s = $2 }
		END { printf "%d %.9f\n", c, s }'
}

for i in $(seq 0 "$runs"); do
	read -r c0 s0 < <(produce_stats)
	out=$("$work/gregor" bench produce -b 127.0.0.1:19092 --topic "cycle-$i" --progress never --json "${flags[@]}" 2>/dev/null)
	read -r c1 s1 < <(produce_stats)
	"$work/gregor" topic delete -b 127.0.0.1:19092 "cycle-$i" >/dev/null 2>&1 || true
	rps=$(sed -n 's/.*"records_per_sec":\([0-9.e+-]*\).*/\1/p' <<<"$out")
	elapsed=$(sed -n 's/.*"elapsed_ns":\([0-9]*\).*/\1/p' <<<"$out")
	bytes=$(sed -n 's/.*"bytes":\([0-9]*\).*/\1/p' <<<"$out")
	label="run $i"
	[[ $i == 0 ]] && label="warm-up (discarded)"
	awk -v l="$label" -v rps="$rps" -v el="$elapsed" -v by="$bytes" -v n=$((c1 - c0)) -v s0="$s0" -v s1="$s1" \
		-v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
		if (n <= 0) { printf "%s: no produce requests counted\n", l; exit }
		cyc = el / 1e6 / n; brk = (s1 - s0) * 1e3 / n
		printf "%s: %.0f rec/s, %d requests of %.2f MB, cycle %.2f ms, broker %.2f ms (%.0f%%), client and loopback %.2f ms (load %s)\n",
			l, rps, n, by / n / 1e6, cyc, brk, 100 * brk / cyc, cyc - brk, load }'
done
