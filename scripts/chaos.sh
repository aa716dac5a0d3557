#!/usr/bin/env bash
# The fault-injection safety suite (test/chaos): `make chaos` and `make soak`
# call this, and so does the README's test command (scripts/test.sh).
#
#   bash scripts/chaos.sh [ci|soak] [extra -chaos.* flags]
#
# ci: at least 60 faults over at least 100,000 acknowledged records, about
# 10 minutes; soak: 60 minutes, 300 faults, 1,000,000 records. Both end
# with the one-line `chaos: ...` summary; the report, the timeline, node
# logs and data go to CHAOS_OUT (default chaos-out/, soak in chaos-out/soak).
# Needs root (network namespaces); without it the suite skips and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-ci}
shift || true
out=${CHAOS_OUT:-$PWD/chaos-out}
timeout=40m
if [ "$profile" = soak ]; then
	out=$out/soak
	timeout=120m
fi
# iproute2 makes the namespaces; a fresh Debian image may not have it.
if ! command -v ip >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null 2>&1 || echo "chaos: apt-get install iproute2 failed"
fi
mkdir -p "$out"
rm -f "$out/summary.txt"
status=0
go test -count=1 -timeout "$timeout" -v -run '^TestChaos$' ./test/chaos \
	-args -chaos.profile="$profile" -chaos.out="$out" "$@" || status=$?
cat "$out/summary.txt" 2>/dev/null || echo "chaos: no summary (the run did not finish, or the suite skipped)"
exit $status
