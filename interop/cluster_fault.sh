#!/usr/bin/env bash
# cluster_fault.sh NODE_ID: the fault of run.sh's cluster phase. Kills node
# NODE_ID with kill -9 and, in the background, starts it again 3 s later from
# the same data directory ($CLUSTER_DIR/node-ID.sh; its new PID goes to
# $CLUSTER_DIR/node-ID.pid, which run.sh's cleanup kills).
set -euo pipefail
id="$1"
pidfile="$CLUSTER_DIR/node-$id.pid"
kill -9 "$(cat "$pidfile")"
echo "cluster_fault: killed node $id" >&2
# node-ID.restarting marks the restart as pending, so run.sh's stop_cluster
# waits for it instead of missing the new process.
touch "$CLUSTER_DIR/node-$id.restarting"
setsid bash -c "sleep 3; bash '$CLUSTER_DIR/node-$id.sh' & echo \$! >'$pidfile'; rm -f '$CLUSTER_DIR/node-$id.restarting'" </dev/null >/dev/null 2>&1 &
