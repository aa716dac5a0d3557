#!/usr/bin/env bash
# Burrow 1.2 (LinkedIn's consumer lag monitor, sarama inside) against
# $BOOTSTRAP. Burrow keeps its own state in ZooKeeper, so this starts a private
# ZooKeeper on a free loopback port with its own data dir; both are stopped by
# PID on exit, also on failure. A group commits offsets 4 and 7 on a
# two-partition topic holding 10 records per partition; Burrow finds the group
# by reading __consumer_offsets and must report lag 6 and 3 (total 9) on
# /v3/kafka/<cluster>/consumer/<group>/lag, and end offsets 10 and 10 on
# /v3/kafka/<cluster>/topic/<topic>. Burrow's cluster module asks for end
# offsets with ListOffsets v0 whatever the client profile, so both depend on
# it. Prints PASS/FAIL/SKIP lines.
set -uo pipefail
B="${BOOTSTRAP:?BOOTSTRAP must be set (host:port)}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3
T="${BURROW_TIMEOUT:-60}"
ZK_JAR=/usr/share/java/zookeeper.jar
S=$RANDOM
TOPIC="burrow-lag-$S"
GROUP="burrow-group-$S"
CLUSTER=gregor

pass() { echo "PASS burrow: $*"; }
fail() { echo "FAIL burrow: $*"; }

if ! command -v Burrow >/dev/null 2>&1 || [ ! -f "$ZK_JAR" ] || ! command -v java >/dev/null 2>&1; then
	echo "SKIP burrow: Burrow or ZooKeeper not installed (apt: burrow zookeeper)"
	exit 0
fi

TMP="$(mktemp -d /tmp/gregor-burrow.XXXXXX)"
ZKPID=""
BPID=""
cleanup() {
	for pid in "$BPID" "$ZKPID"; do
		if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# tail_of FILE: the last lines of a log, one line, for FAIL messages.
tail_of() { tail -5 "$1" 2>/dev/null | tr '\n' ' ' | cut -c1-400; }

# ---- private ZooKeeper --------------------------------------------------------
ZKPORT=$(free_port)
mkdir -p "$TMP/zk"
cat >"$TMP/zoo.cfg" <<CFG
tickTime=2000
dataDir=$TMP/zk
clientPort=$ZKPORT
clientPortAddress=127.0.0.1
maxClientCnxns=20
admin.enableServer=false
4lw.commands.whitelist=ruok
CFG
java -Xmx128m -cp "/etc/zookeeper/conf_example:$ZK_JAR" org.apache.zookeeper.server.ZooKeeperServerMain "$TMP/zoo.cfg" >"$TMP/zk.log" 2>&1 &
ZKPID=$!
zk_ok=0
for _ in $(seq 1 150); do
	r="$( (exec 3<>"/dev/tcp/127.0.0.1/$ZKPORT" && echo ruok >&3 && timeout 1 cat <&3) 2>/dev/null)"
	if [ "$r" = imok ]; then zk_ok=1; break; fi
	kill -0 "$ZKPID" 2>/dev/null || break
	sleep 0.2
done
if [ "$zk_ok" != 1 ]; then
	fail "private ZooKeeper did not start on 127.0.0.1:$ZKPORT: $(tail_of "$TMP/zk.log")"
	exit 1
fi

# ---- a group with lag -----------------------------------------------------------
if ! $PY "$HERE/python/burrow_group.py" "$B" "$TOPIC" "$GROUP" 2>"$TMP/group.err"; then
	fail "could not set up group $GROUP with kafka-python: $(tail_of "$TMP/group.err")"
	exit 1
fi

# ---- Burrow ----------------------------------------------------------------------
HPORT=$(free_port)
# kafka-version 0.11.0: the oldest sarama profile that fetches record batches
# (v2), the only format gregor stores (0.10.0 sends Fetch v2). offset-refresh 1 s so the broker end
# offsets are fresh; min-distance 1 s between stored commits.
cat >"$TMP/burrow.toml" <<CFG
[general]
pidfile="$TMP/burrow.pid"
stdout-logfile="$TMP/burrow.out"

[logging]
filename="$TMP/burrow.log"
level="${BURROW_LOG_LEVEL:-info}"

[zookeeper]
servers=[ "127.0.0.1:$ZKPORT" ]
timeout=6
root-path="/burrow"

[client-profile.gregor]
client-id="burrow-interop"
kafka-version="${BURROW_KAFKA_VERSION:-0.11.0}"

[cluster.$CLUSTER]
class-name="kafka"
servers=[ "$B" ]
client-profile="gregor"
topic-refresh=5
offset-refresh=1

[consumer.$CLUSTER]
class-name="kafka"
cluster="$CLUSTER"
servers=[ "$B" ]
client-profile="gregor"
start-latest=false
group-whitelist="^burrow-group-.*$"

[httpserver.default]
address="127.0.0.1:$HPORT"

[storage.default]
class-name="inmemory"
workers=4
intervals=10
expire-group=604800
min-distance=1
CFG
Burrow -config-dir "$TMP" >"$TMP/burrow.stdout" 2>&1 &
BPID=$!

URL="http://127.0.0.1:$HPORT/v3/kafka/$CLUSTER/consumer/$GROUP/lag"
verdict=""
deadline=$((SECONDS + T))
while [ $SECONDS -lt $deadline ]; do
	if ! kill -0 "$BPID" 2>/dev/null; then verdict="Burrow exited: $(tail_of "$TMP/burrow.stdout") $(tail_of "$TMP/burrow.log")"; break; fi
	body="$(curl -fsS "$URL" 2>/dev/null)"
	if [ -n "$body" ]; then
		verdict="$(printf '%s' "$body" | $PY -c '
import json, sys
want = {0: (4, 6), 1: (7, 3)}  # partition: (last commit, current lag)
st = json.load(sys.stdin).get("status") or {}
parts = {p["partition"]: p for p in st.get("partitions") or [] if p.get("topic") == sys.argv[1]}
got = {n: ((p.get("end") or {}).get("offset"), p.get("current_lag")) for n, p in parts.items()}
if got == want and st.get("totallag") == 9:
    print("ok")
else:
    print("group %s: status %s, totallag %s, partitions (last commit, current lag) %s" % (
        st.get("group"), st.get("status"), st.get("totallag"), sorted(got.items())))
' "$TOPIC")"
		[ "$verdict" = ok ] && break
	fi
	sleep 1
done
if [ "$verdict" = ok ]; then
	pass "Burrow 1.2 reads group $GROUP from __consumer_offsets and reports its lag: partition 0 committed 4 lag 6, partition 1 committed 7 lag 3, totallag 9"
else
	fail "Burrow lag for $GROUP not as expected within ${T}s: ${verdict:-no answer from $URL} $(grep -iE 'error|warn' "$TMP/burrow.log" 2>/dev/null | tail -3 | tr '\n' ' ' | cut -c1-400)"
fi

# The end offsets Burrow's cluster module got with ListOffsets v0.
URL="http://127.0.0.1:$HPORT/v3/kafka/$CLUSTER/topic/$TOPIC"
got=""
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ] && kill -0 "$BPID" 2>/dev/null; do
	got="$(curl -fsS "$URL" 2>/dev/null | $PY -c 'import json, sys; print(json.load(sys.stdin).get("offsets"))' 2>/dev/null)"
	[ "$got" = "[10, 10]" ] && break
	sleep 1
done
if [ "$got" = "[10, 10]" ]; then
	pass "Burrow reports end offsets [10, 10] for $TOPIC (its cluster module asks with ListOffsets v0)"
else
	fail "Burrow topic end offsets for $TOPIC: got '${got:-no answer}', want [10, 10] $(grep -iE 'error|warn' "$TMP/burrow.log" 2>/dev/null | grep -v consume | tail -3 | tr '\n' ' ' | cut -c1-400)"
fi
