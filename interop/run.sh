#!/usr/bin/env bash
# Interop suite: real Kafka clients (kcat, librdkafka via confluent-kafka-python,
# kafka-python, kafkajs, sarama, segmentio/kafka-go, franz-go, Burrow) and
# franz-go's own test suite (franzgo_suite.sh) against the real gregor
# binary over TCP. Prints one PASS/FAIL/SKIP line per check and a final
# "N passed, M failed" line; exits non-zero when any check failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY=/usr/bin/python3
CHECK_TIMEOUT="${CHECK_TIMEOUT:-150}"

log() { echo "run.sh: $*" >&2; }

# ---- build ------------------------------------------------------------------
(cd "$ROOT" && go build -o "$ROOT/bin/gregor" ./cmd/gregor) || { log "go build failed"; echo "0 passed, 1 failed"; exit 1; }
# The Go clients live in their own module (interop/goclients); build them up
# front so compilation time does not count against a check's time limit.
GOCLIENTS_OK=1
(cd "$HERE/goclients" && go build -o "$ROOT/bin/interop-goclients" .) || { log "go build interop/goclients failed"; GOCLIENTS_OK=0; }
# franz-go's own test suite (pkg/kgo), compiled once for both phases.
KGOSUITE_OK=1
bash "$HERE/franzgo_suite.sh" build || { log "building franz-go's test suite failed"; KGOSUITE_OK=0; }

# ---- dependencies (idempotent, quiet) ----------------------------------------
apt_updated=0
apt_install() {
	if [ "$apt_updated" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || log "apt-get update failed"
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || log "apt-get install $* failed"
}
if ! command -v kcat >/dev/null 2>&1 || ! $PY -c 'import confluent_kafka' 2>/dev/null || ! $PY -c 'import kafka' 2>/dev/null; then
	apt_install kcat python3-confluent-kafka python3-kafka
fi
# Optional codec libraries for kafka-python (its codec checks SKIP without them).
if ! $PY -c 'import snappy, lz4.frame, zstandard' 2>/dev/null; then
	apt_install python3-snappy python3-lz4 python3-zstandard
fi
# Burrow (consumer lag monitor) and the ZooKeeper it keeps its state in.
if ! command -v Burrow >/dev/null 2>&1 || [ ! -f /usr/share/java/zookeeper.jar ]; then
	apt_install burrow zookeeper
fi
if [ ! -d "$HERE/node/node_modules" ]; then
	npm ci --prefix "$HERE/node" --silent --no-audit --no-fund >/dev/null 2>&1 || log "npm ci failed"
fi

# ---- start gregor --------------------------------------------------------------
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
KPORT=$(free_port); CPORT=$(free_port); HPORT=$(free_port)
DATA="$(mktemp -d /tmp/gregor-interop.XXXXXX)"
GREGOR_LOG="$DATA.log"
GPID=""
# stop_cluster SIGNAL: stops the cluster phase's nodes by the PIDs in their
# pid files, once no restart by cluster_fault.sh is pending (bounded wait).
stop_cluster() {
	local f p
	for _ in $(seq 1 100); do
		ls "$DATA"/cluster/node-*.restarting >/dev/null 2>&1 || break
		sleep 0.1
	done
	for f in "$DATA"/cluster/node-*.pid; do
		[ -f "$f" ] && p=$(cat "$f") && kill "-$1" "$p" 2>/dev/null || continue
		for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
}
cleanup() {
	if [ -n "$GPID" ]; then kill "$GPID" 2>/dev/null; wait "$GPID" 2>/dev/null; fi
	stop_cluster KILL
	rm -rf "$DATA"
	if [ "${KEEP_LOG:-0}" = 1 ]; then log "gregor log kept at $GREGOR_LOG"; else rm -f "$GREGOR_LOG"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/bin/gregor" serve --data-dir "$DATA" --kafka-addr "127.0.0.1:$KPORT" \
	--controller-addr "127.0.0.1:$CPORT" --http-addr "127.0.0.1:$HPORT" \
	--log-level "${GREGOR_LOG_LEVEL:-info}" 2>"$GREGOR_LOG" &
GPID=$!
ready=0
for _ in $(seq 1 300); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$HPORT/readyz" 2>/dev/null; then ready=1; break; fi
	kill -0 "$GPID" 2>/dev/null || break
	sleep 0.1
done
if [ "$ready" != 1 ]; then
	log "gregor did not become ready; log:"; tail -20 "$GREGOR_LOG" >&2
	echo "FAIL gregor: broker did not become ready"; echo "0 passed, 1 failed"; exit 1
fi

export BOOTSTRAP="127.0.0.1:$KPORT"
export INTEROP_GROUPS="$($PY "$HERE/python/apiversions.py" "$BOOTSTRAP" groups)"
log "gregor pid $GPID at $BOOTSTRAP (groups advertised: $INTEROP_GROUPS)"

# ---- checks --------------------------------------------------------------------
RESULTS="$DATA.results"
: >"$RESULTS"
# run_check CLIENT CMD...: runs one check program; its PASS/FAIL/SKIP lines are
# echoed and recorded; a crash or timeout without lines becomes a FAIL.
run_check() {
	local client="$1"; shift
	local out rc
	out="$(cd "$HERE" && timeout --kill-after=5 "$CHECK_TIMEOUT" "$@" 2>"$DATA.stderr")"; rc=$?
	local lines
	lines="$(printf '%s\n' "$out" | grep -E '^(PASS|FAIL|SKIP) ' || true)"
	if [ -n "$lines" ]; then printf '%s\n' "$lines" | tee -a "$RESULTS"; fi
	if [ "$rc" != 0 ] && ! printf '%s\n' "$lines" | grep -q '^FAIL '; then
		local why="exit status $rc"; [ "$rc" = 124 ] && why="timed out after ${CHECK_TIMEOUT}s"
		echo "FAIL $client: check program failed ($why): $(tail -3 "$DATA.stderr" | tr '\n' ' ' | cut -c1-300)" | tee -a "$RESULTS"
	fi
	if [ "${VERBOSE:-0}" = 1 ]; then cat "$DATA.stderr" >&2; fi
}

if [ "${INTEROP_SINGLE:-1}" = 1 ]; then
	run_check kcat bash "$HERE/kcat_check.sh"
	run_check confluent-kafka-python $PY "$HERE/python/confluent_check.py"
	run_check kafka-python $PY "$HERE/python/kafkapython_check.py"
	run_check kafkajs node "$HERE/node/check.js"
	run_check burrow bash "$HERE/burrow_check.sh"
	if [ "$GOCLIENTS_OK" = 1 ]; then
		run_check goclients "$ROOT/bin/interop-goclients"
	else
		echo "FAIL goclients: interop/goclients did not build" | tee -a "$RESULTS"
	fi
	if [ "$KGOSUITE_OK" = 1 ]; then
		# Every test of the package: about 2 minutes on a quiet machine.
		CHECK_TIMEOUT=600 run_check "franz-go suite" bash "$HERE/franzgo_suite.sh" run "1 node" 1 20000
	else
		echo "FAIL franz-go suite: franz-go's test suite did not build" | tee -a "$RESULTS"
	fi
fi

# ---- cluster phase ----------------------------------------------------------------
# Three nodes (each broker and controller), RF=3 topics with min.insync.replicas=2; each
# client's check kills the leader of its partition 0 with kill -9 mid-stream
# (cluster_fault.sh) and reads every acknowledged record back.
if [ "${INTEROP_CLUSTER:-1}" = 1 ]; then
	kill "$GPID" 2>/dev/null; wait "$GPID" 2>/dev/null; GPID=""
	CLUSTER_DIR="$DATA/cluster"; mkdir -p "$CLUSTER_DIR"; export CLUSTER_DIR
	declare -a CK CC CH
	for i in 1 2 3; do CK[$i]=$(free_port); CC[$i]=$(free_port); CH[$i]=$(free_port); done
	VOTERS="1@127.0.0.1:${CC[1]},2@127.0.0.1:${CC[2]},3@127.0.0.1:${CC[3]}"
	for i in 1 2 3; do
		cat >"$CLUSTER_DIR/node-$i.sh" <<EOS
exec "$ROOT/bin/gregor" serve --node-id $i --data-dir "$CLUSTER_DIR/d$i" --kafka-addr 127.0.0.1:${CK[$i]} \
	--controller-addr 127.0.0.1:${CC[$i]} --http-addr 127.0.0.1:${CH[$i]} --log-level "${GREGOR_LOG_LEVEL:-info}" \
	--set controller.quorum.voters=$VOTERS --set broker.session.timeout.ms=3000 \
	--set broker.heartbeat.interval.ms=500 2>>"$CLUSTER_DIR/node-$i.log"
EOS
		bash "$CLUSTER_DIR/node-$i.sh" & echo $! >"$CLUSTER_DIR/node-$i.pid"; disown
	done
	# cluster_ready: every node answers /readyz and Metadata lists three brokers.
	cluster_ready() {
		local i
		for _ in $(seq 1 240); do
			local ok=1
			for i in 1 2 3; do curl -fsS -o /dev/null "http://127.0.0.1:${CH[$i]}/readyz" 2>/dev/null || ok=0; done
			if [ "$ok" = 1 ] && [ "$($PY -c "$BROKER_COUNT" "$BOOTSTRAP" 2>/dev/null)" = 3 ]; then return 0; fi
			sleep 0.5
		done
		return 1
	}
	export BOOTSTRAP="127.0.0.1:${CK[1]},127.0.0.1:${CK[2]},127.0.0.1:${CK[3]}"
	BROKER_COUNT='import sys; from confluent_kafka.admin import AdminClient
print(len(AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=3).brokers))'
	export INTEROP_FAULT="bash $HERE/cluster_fault.sh"
	for c in franz-go confluent-kafka-python kafkajs sarama kafka-go kafka-python franz-go-suite; do
		if ! cluster_ready; then
			echo "FAIL $c: the 3-node cluster did not become ready" | tee -a "$RESULTS"; continue
		fi
		case $c in
		franz-go | sarama | kafka-go) # one Go client per run, so each starts on a whole cluster
			if [ "$GOCLIENTS_OK" = 1 ]; then run_check "$c" env INTEROP_ONLY="$c: cluster" "$ROOT/bin/interop-goclients" cluster; fi ;;
		kafka-python) run_check "$c" $PY "$HERE/python/kafkapython_cluster.py" ;;
		confluent-kafka-python) run_check "$c" $PY "$HERE/python/confluent_cluster.py" ;;
		kafkajs) run_check "$c" node "$HERE/node/cluster.js" ;;
		franz-go-suite) # exactly-once consume-transform-produce and group ETL on RF=3
			# topics while kgo drops its own connections (KGO_TEST_CHAOS)
			if [ "$KGOSUITE_OK" = 1 ]; then
				CHECK_TIMEOUT=600 run_check "franz-go suite" env KGO_TEST_CHAOS=1 \
					bash "$HERE/franzgo_suite.sh" run "3 nodes, kgo dropping connections" 3 50000 'TestGroupETL|TestTxnEtl'
			fi ;;
		esac
	done
	stop_cluster TERM
	if [ "${KEEP_LOG:-0}" = 1 ]; then cp "$CLUSTER_DIR"/node-*.log /tmp/ 2>/dev/null; log "cluster logs copied to /tmp/node-*.log"; fi
fi

passed=$(grep -c '^PASS ' "$RESULTS" || true)
failed=$(grep -c '^FAIL ' "$RESULTS" || true)
rm -f "$RESULTS" "$DATA.stderr"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
