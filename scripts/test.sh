#!/usr/bin/env bash
# The one command that runs every test of the project, on a fresh Debian
# machine with Go, git, apt and npm: it installs what the tests need when it
# is missing (kcat and the Python clients from apt, kafkajs with npm ci).
#
#   bash scripts/test.sh            everything (about 25-35 minutes on 2 cores)
#   QUICK=1 bash scripts/test.sh    skip the race detector, the interop suite and the chaos suite
#   CHAOS=0 bash scripts/test.sh    skip only the chaos suite
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

step() { printf '\n== %s\n' "$*"; }

step "format and vet"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '^interop/') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted"
	exit 1
fi
go vet ./...
(cd bench && go vet ./...) # the benchmark peer's own module

if [ -z "${QUICK:-}" ]; then
	step "unit, end-to-end and crash tests (race detector)"
	go test -race -count=1 -timeout 30m ./...
else
	step "unit, end-to-end and crash tests"
	go test -count=1 -timeout 30m ./...
fi

step "fuzz smoke (every target, briefly)"
bash scripts/fuzz.sh "${FUZZTIME:-5s}"

if [ -z "${QUICK:-}" ]; then
	step "interop suite: real clients against the real binary"
	bash interop/run.sh
fi

if [ -z "${QUICK:-}" ] && [ "${CHAOS:-1}" != 0 ]; then
	# Real processes in network namespaces under a seeded fault schedule
	# (kill -9, SIGSTOP, partitions, slow links, corrupt segments), then
	# the checker; it needs root and skips, saying so, without it.
	step "fault-injection safety suite (make chaos)"
	bash scripts/chaos.sh ci
fi
