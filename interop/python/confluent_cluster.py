#!/usr/bin/python3
"""confluent-kafka-python (librdkafka) in the cluster phase of run.sh.

An idempotent acks=all producer writes to an RF=3 topic on three nodes while
$INTEROP_FAULT kills the leader of partition 0 with kill -9; every
acknowledged record must be read back exactly once at its acknowledged offset.
"""
import os
import subprocess
import sys
import time
import traceback
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLIENT = "confluent-kafka-python"
B = os.environ["BOOTSTRAP"]
RUN = uuid.uuid4().hex[:8]


def leader_of(admin, topic, partition, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and partition in t.partitions:
            p = t.partitions[partition]
            if p.error is None and p.leader >= 0:
                return p.leader
        time.sleep(0.2)
    raise RuntimeError("no leader for %s-%d" % (topic, partition))


def main():
    topic = "interop-cluster-confluent-" + RUN
    admin = AdminClient({"bootstrap.servers": B})
    admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
    leader = leader_of(admin, topic, 0)
    total, chunk = 3000, 100
    acked, errors = {}, []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[msg.value().decode()] = (msg.partition(), msg.offset())

    p = Producer({"bootstrap.servers": B, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "message.timeout.ms": 90000, "topic.metadata.refresh.interval.ms": 1000})
    killed_at, resumed = None, None
    for i in range(0, total, chunk):
        if i == total // 3:
            subprocess.run(["bash", "-c", "%s %d" % (os.environ["INTEROP_FAULT"], leader)], check=True)
            killed_at = time.time()
        for j in range(i, i + chunk):
            p.produce(topic, key=b"k%d" % j, value=b"v%d" % j, on_delivery=on_delivery)
        if p.flush(120) != 0:
            raise RuntimeError("flush left records undelivered")
        if killed_at is not None and resumed is None:
            resumed = time.time() - killed_at
    if errors:
        raise RuntimeError("%d records failed, first: %s" % (len(errors), errors[0]))
    if len(acked) != total:
        raise RuntimeError("%d of %d acknowledged" % (len(acked), total))

    c = Consumer({"bootstrap.servers": B, "group.id": "interop-cluster-" + RUN,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, part, 0) for part in range(3)])
    seen, deadline = set(), time.time() + 60
    while len(seen) < total and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error() is not None:
            continue
        v = m.value().decode()
        if v not in acked:
            raise RuntimeError("read %r, never acknowledged" % v)
        if v in seen:
            raise RuntimeError("read %r twice" % v)
        if acked[v] != (m.partition(), m.offset()):
            raise RuntimeError("%r at %s, acknowledged at %s" % (v, (m.partition(), m.offset()), acked[v]))
        seen.add(v)
    c.close()
    if len(seen) != total:
        raise RuntimeError("read back %d of %d" % (len(seen), total))
    return ("3 nodes, RF=3: %d idempotent acks=all records through kill -9 of leader %d "
            "(first batch acked %.1fs after the kill), each read back once at its acked offset" % (total, leader, resumed))


if __name__ == "__main__":
    try:
        print("PASS %s: %s" % (CLIENT, main()), flush=True)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        print("FAIL %s: cluster leader kill: %s: %s" % (CLIENT, type(e).__name__, str(e)[:300]), flush=True)
        sys.exit(1)
