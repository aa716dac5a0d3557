#!/usr/bin/env bash
# franzgo_suite.sh build | run LABEL RF RECORDS [TESTS]
#
# franz-go's own test suite (package pkg/kgo, at the version interop/goclients
# uses) against gregor: a public client test suite, including its
# exactly-once consume-transform-produce test under rebalances (TestTxnEtl)
# and its group ETL test (TestGroupETL).
#
# build: copies the module from the Go module cache (downloading it if
# needed; the cache is read-only) to bin/kgo-suite/ and compiles the test
# binary there, so that compilation does not count against a check's time
# limit. The tests run in that package directory: some read its sources.
# run: runs the compiled tests against $BOOTSTRAP (KGO_SEEDS) with
# replication factor RF and KGO_TEST_RECORDS=RECORDS; TESTS is a -run
# pattern (default: every test). Prints one PASS or FAIL line. Tests the
# suite skips itself (share groups and SASL, which gregor does not
# offer) are counted, not failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SRC="$ROOT/bin/kgo-suite"
BIN="$SRC/kgo.test"

case "${1:-}" in
build)
	version=$(awk '$1 == "github.com/twmb/franz-go" { print $2 }' "$HERE/goclients/go.mod")
	dir=$(cd "$HERE/goclients" && go mod download -json "github.com/twmb/franz-go@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$dir" ] || [ ! -d "$dir/pkg/kgo" ]; then
		echo "franzgo_suite.sh: franz-go $version not in the module cache" >&2
		exit 1
	fi
	rm -rf "$SRC" && mkdir -p "$SRC"
	cp -r "$dir/." "$SRC/" && chmod -R u+w "$SRC"
	(cd "$SRC/pkg/kgo" && go test -c -o "$BIN" .) || exit 1
	echo "$version" >"$BIN.version"
	;;
run)
	label="$2" rf="$3" records="$4" tests="${5:-.}"
	version=$(cat "$BIN.version" 2>/dev/null || echo "?")
	out=$(mktemp /tmp/kgo-suite-out.XXXXXX)
	trap 'rm -f "$out"' EXIT
	start=$SECONDS
	cd "$SRC/pkg/kgo" || exit 1
	KGO_SEEDS="$BOOTSTRAP" KGO_TEST_RF="$rf" KGO_TEST_RECORDS="$records" KGO_TEST_UNSAFE=1 \
		"$BIN" -test.run "$tests" -test.count=1 -test.timeout=10m -test.v >"$out" 2>&1
	rc=$?
	took=$((SECONDS - start))
	pass=$(grep -cE '^ *--- PASS' "$out")
	skip=$(grep -cE '^ *--- SKIP' "$out")
	failed=$(grep -E '^ *--- FAIL' "$out" | awk '{print $3}' | sort -u | tr '\n' ' ')
	what="franz-go $version pkg/kgo tests ($tests) against $label, KGO_TEST_RF=$rf, $records records"
	if [ "$rc" = 0 ] && [ -z "$failed" ] && [ "$pass" -gt 0 ]; then
		echo "PASS franz-go suite: $what: $pass tests and subtests passed, $skip skipped by the suite (share groups, SASL), in ${took}s"
	else
		echo "FAIL franz-go suite: $what: exit $rc, failed: ${failed:-none named}; last lines: $(grep -vE '^ *(---|===)' "$out" | tail -5 | tr '\n' ' ' | cut -c1-600)"
	fi
	;;
*)
	echo "usage: franzgo_suite.sh build | run LABEL RF RECORDS [TESTS]" >&2
	exit 2
	;;
esac
