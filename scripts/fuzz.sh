#!/usr/bin/env bash
# Runs every Go fuzz target for a while: FUZZTIME per target (default 5s, the
# smoke run of the test command; `make fuzz` runs them for 2 minutes each).
# The committed seed corpora under testdata/fuzz also run in every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-${FUZZTIME:-5s}}"
fail=0
for pkg in $(go list ./internal/...); do
	targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		echo "fuzz $pkg $t ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/gregor-fuzz.log 2>&1; then
			# Go's fuzzer sometimes ends a clean time-boxed run with a bare
			# "context deadline exceeded" when the time is up mid-exchange with
			# a worker. A real finding always writes its failing input.
			if grep -q 'context deadline exceeded' /tmp/gregor-fuzz.log &&
				! grep -q 'Failing input written' /tmp/gregor-fuzz.log &&
				! grep -q 'hung or terminated unexpectedly' /tmp/gregor-fuzz.log; then
				echo "  (time ran out mid-exchange with a worker; no failing input)"
				continue
			fi
			cat /tmp/gregor-fuzz.log
			fail=1
		fi
	done
done
exit $fail
