#!/usr/bin/python3
"""kafka-python checks against $BOOTSTRAP.

Prints one "PASS|FAIL|SKIP kafka-python: ..." line per check.
Group checks run only when $INTEROP_GROUPS is "yes" (see apiversions.py).
"""
import os
import sys
import threading
import time
import traceback
import uuid

import kafka.codec
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

CLIENT = "kafka-python"
B = os.environ["BOOTSTRAP"]
GROUPS = os.environ.get("INTEROP_GROUPS", "no") == "yes"
RUN = uuid.uuid4().hex[:8]
failures = 0


def report(status, what):
    global failures
    if status == "FAIL":
        failures += 1
    print("%s %s: %s" % (status, CLIENT, what), flush=True)


def guarded(name, fn, *args):
    try:
        msg = fn(*args)
        if msg is not None:
            report("PASS", msg)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        report("FAIL", "%s: %s: %s" % (name, type(e).__name__, str(e)[:300]))


def admin_create():
    topic = "kp-admin-" + RUN
    a = KafkaAdminClient(bootstrap_servers=B, client_id="interop-kp", request_timeout_ms=15000)
    try:
        a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], timeout_ms=10000)
        try:
            a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], timeout_ms=10000)
            raise AssertionError("second create_topics succeeded")
        except TopicAlreadyExistsError:
            pass
        md = a.describe_topics([topic])
        parts = sorted(p["partition"] for p in md[0]["partitions"])
        if md[0]["error_code"] != 0 or parts != [0, 1]:
            raise AssertionError("describe_topics: %s" % md)
        if topic not in a.list_topics():
            raise AssertionError("list_topics lacks %s" % topic)
    finally:
        a.close()
    return "KafkaAdminClient create_topics (2 partitions; duplicate -> TopicAlreadyExistsError), describe_topics, list_topics"


def read_assigned(topic, n, timeout=15.0):
    c = KafkaConsumer(bootstrap_servers=B, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=1000)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out, deadline = [], time.time() + timeout
        while len(out) < n and time.time() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        # One more poll, longer than fetch_max_wait_ms (500): duplicates would
        # show, and the empty fetch at the log end must parse.
        try:
            for recs in c.poll(timeout_ms=1500).values():
                out.extend(recs)
        except Exception as e:
            raise AssertionError("read %d records, then the idle poll at the log end failed: %s: %s "
                                 "(kafka-python got a null records field in the Fetch response)" % (len(out), type(e).__name__, e))
        return out
    finally:
        c.close()


CODECS = [("none", None), ("gzip", kafka.codec.has_gzip), ("snappy", kafka.codec.has_snappy),
          ("lz4", kafka.codec.has_lz4), ("zstd", kafka.codec.has_zstd)]


def codec_round_trip(codec):
    topic, n = "kp-%s-%s" % (codec, RUN), 300
    p = KafkaProducer(bootstrap_servers=B, compression_type=None if codec == "none" else codec,
                      acks="all", linger_ms=5)
    try:
        futs = [p.send(topic, key=b"k%d" % i, value=(b"value %d " % i) * 8,
                       headers=[("h", b"%d" % i)]) for i in range(n)]
        p.flush(20)
        offs = [f.get(timeout=10).offset for f in futs]
    finally:
        p.close()
    if offs != list(range(n)):
        raise AssertionError("send offsets not 0..%d" % (n - 1))
    got = read_assigned(topic, n)
    if len(got) != n:
        raise AssertionError("read back %d of %d records" % (len(got), n))
    for i, r in enumerate(got):
        if r.offset != i or r.key != b"k%d" % i or r.value != (b"value %d " % i) * 8 or list(r.headers) != [("h", b"%d" % i)]:
            raise AssertionError("record %d differs: offset %d key %r headers %r" % (i, r.offset, r.key, r.headers))
    return "compression_type=%s: %d keyed records with headers produced (acks=all) and read back exactly via assign()" % (codec, n)


def group_of_two():
    if not GROUPS:
        report("SKIP", "group of two consumers: broker does not advertise the group APIs yet")
        return None
    topic, group = "kp-group-" + RUN, "kp-group-" + RUN
    a = KafkaAdminClient(bootstrap_servers=B)
    try:
        a.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)], timeout_ms=10000)
    finally:
        a.close()
    p = KafkaProducer(bootstrap_servers=B)
    for i in range(40):
        p.send(topic, value=b"%d" % i, partition=i % 4)
    p.flush(20)
    p.close()

    # kafka-python joins inside poll(): each member needs its own thread,
    # or one member's JoinGroup waits for the other's.
    stop = threading.Event()
    state = {1: {"recs": [], "assign": set(), "err": None}, 2: {"recs": [], "assign": set(), "err": None}}

    def member(k):
        st = state[k]
        try:
            c = KafkaConsumer(topic, bootstrap_servers=B, group_id=group, auto_offset_reset="earliest",
                              enable_auto_commit=False, session_timeout_ms=10000,
                              heartbeat_interval_ms=500, max_poll_interval_ms=30000)
            try:
                while not stop.is_set():
                    for recs in c.poll(timeout_ms=200).values():
                        st["recs"].extend(recs)
                    st["assign"] = set(c.assignment())
            finally:
                c.close()
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            st["err"] = "%s: %s" % (type(e).__name__, e)

    threads = [threading.Thread(target=member, args=(k,), daemon=True) for k in (1, 2)]
    for t in threads:
        t.start()
    deadline = time.time() + 40

    def settled():
        a1, a2 = state[1]["assign"], state[2]["assign"]
        vals = {int(r.value) for r in state[1]["recs"] + state[2]["recs"]}
        return a1 and a2 and not a1 & a2 and len(a1 | a2) == 4 and len(vals) == 40

    while time.time() < deadline and not settled() and not (state[1]["err"] or state[2]["err"]):
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(15)
    a1, a2 = state[1]["assign"], state[2]["assign"]
    if state[1]["err"] or state[2]["err"]:
        raise AssertionError("member failed: %s / %s" % (state[1]["err"], state[2]["err"]))
    if not a1 or not a2 or a1 & a2 or len(a1 | a2) != 4:
        raise AssertionError("assignments %s / %s are not a split of 4 partitions" % (
            sorted(p.partition for p in a1), sorted(p.partition for p in a2)))
    vals = {int(r.value) for r in state[1]["recs"] + state[2]["recs"]}
    # A rebalance may redeliver uncommitted records: require every record at least once.
    if vals != set(range(40)):
        raise AssertionError("group read %d distinct records, want 40" % len(vals))
    return "group of two KafkaConsumers splits 4 partitions (%d+%d) and reads all 40 records" % (len(a1), len(a2))


if __name__ == "__main__":
    guarded("admin", admin_create)
    for codec, available in CODECS:
        if available is not None and not available():
            report("SKIP", "compression_type=%s: codec library not installed for /usr/bin/python3" % codec)
            continue
        guarded("codec " + codec, codec_round_trip, codec)
    guarded("group of two", group_of_two)
    sys.exit(1 if failures else 0)
