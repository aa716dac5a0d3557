#!/usr/bin/python3
"""kafka-python in the cluster phase of run.sh.

An acks=all producer writes to an RF=3 topic on three nodes while
$INTEROP_FAULT kills the leader of partition 0 with kill -9. kafka-python 2.0
has no idempotent producer, so it retries with one request in flight per
connection: a batch whose acknowledgement the kill lost can be written twice.
Every acknowledged record must be read back at its acknowledged offset;
extra copies of acknowledged records are counted, anything else fails.
"""
import os
import subprocess
import sys
import time
import traceback
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

CLIENT = "kafka-python"
B = os.environ["BOOTSTRAP"].split(",")
RUN = uuid.uuid4().hex[:8]


def leader_of(consumer, topic, partition, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        consumer._client.cluster.request_update()
        consumer._client.poll(timeout_ms=500)
        leader = consumer._client.cluster.leader_for_partition(TopicPartition(topic, partition))
        if leader is not None and leader >= 0:
            return leader
        time.sleep(0.2)
    raise RuntimeError("no leader for %s-%d" % (topic, partition))


def main():
    topic = "interop-cluster-kafkapython-" + RUN
    admin = KafkaAdminClient(bootstrap_servers=B, client_id="gregor-interop-kafkapython-cluster")
    admin.create_topics([NewTopic(topic, 3, 3, topic_configs={"min.insync.replicas": "2"})], timeout_ms=30000)
    admin.close()
    c = KafkaConsumer(bootstrap_servers=B, enable_auto_commit=False, consumer_timeout_ms=1000)
    leader = leader_of(c, topic, 0)
    total, chunk = 3000, 100
    acked = {}
    p = KafkaProducer(bootstrap_servers=B, acks="all", retries=1000, retry_backoff_ms=250,
                      max_in_flight_requests_per_connection=1, linger_ms=5,
                      metadata_max_age_ms=1000, request_timeout_ms=30000)
    killed_at, resumed = None, None
    for i in range(0, total, chunk):
        if i == total // 3:
            subprocess.run(["bash", "-c", "%s %d" % (os.environ["INTEROP_FAULT"], leader)], check=True)
            killed_at = time.time()
        futures = [(b"v%d" % j, p.send(topic, key=b"k%d" % j, value=b"v%d" % j)) for j in range(i, i + chunk)]
        for v, f in futures:
            md = f.get(timeout=120)
            acked[v] = (md.partition, md.offset)
        if killed_at is not None and resumed is None:
            resumed = time.time() - killed_at
    p.close()
    if len(acked) != total:
        raise RuntimeError("%d of %d acknowledged" % (len(acked), total))

    tps = [TopicPartition(topic, part) for part in range(3)]
    c.assign(tps)
    c.seek_to_beginning()
    end = c.end_offsets(tps)
    at_ack, dups, read = set(), 0, 0
    deadline = time.time() + 60
    while read < sum(end.values()) and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                read += 1
                if m.value not in acked:
                    raise RuntimeError("read %r at %d/%d, never acknowledged" % (m.value, m.partition, m.offset))
                if acked[m.value] == (m.partition, m.offset):
                    at_ack.add(m.value)
                else:
                    dups += 1
    c.close()
    if len(at_ack) != total:
        raise RuntimeError("%d of %d acknowledged records at their acknowledged offsets (read %d of %d)"
                           % (len(at_ack), total, read, sum(end.values())))
    return ("3 nodes, RF=3: %d acks=all records (retries, no idempotence in kafka-python 2.0) through kill -9 of "
            "leader %d (first batch acked %.1fs after the kill), each read back at its acked offset, "
            "%d extra copies from retries" % (total, leader, resumed, dups))


if __name__ == "__main__":
    try:
        print("PASS %s: %s" % (CLIENT, main()), flush=True)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        print("FAIL %s: cluster leader kill: %s: %s" % (CLIENT, type(e).__name__, str(e)[:300]), flush=True)
        sys.exit(1)
