#!/usr/bin/python3
"""confluent-kafka-python (librdkafka) checks against $BOOTSTRAP.

Prints one "PASS|FAIL|SKIP confluent-kafka-python: ..." line per check.
Group checks run only when $INTEROP_GROUPS is "yes" (see apiversions.py).
"""
import os
import sys
import time
import traceback
import uuid

from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

CLIENT = "confluent-kafka-python"
B = os.environ["BOOTSTRAP"]
GROUPS = os.environ.get("INTEROP_GROUPS", "no") == "yes"
RUN = uuid.uuid4().hex[:8]
failures = 0


def report(status, what):
    global failures
    if status == "FAIL":
        failures += 1
    print("%s %s: %s" % (status, CLIENT, what), flush=True)


def check(name):
    """Decorator: run the check, report PASS with its return text or FAIL with the exception."""
    def wrap(fn):
        def run():
            try:
                msg = fn()
                if msg is not None:
                    report("PASS", msg)
            except Exception as e:  # report, never crash the suite
                traceback.print_exc(file=sys.stderr)
                report("FAIL", "%s: %s: %s" % (name, type(e).__name__, str(e)[:300]))
        run.__name__ = fn.__name__
        return run
    return wrap


def assigned_consumer(topic, partition, offset, extra=None):
    # librdkafka insists on group.id even for assign(); nothing is committed.
    conf = {"bootstrap.servers": B, "group.id": "interop-unused-" + RUN,
            "enable.auto.commit": False, "enable.auto.offset.store": False}
    conf.update(extra or {})
    c = Consumer(conf)
    c.assign([TopicPartition(topic, partition, offset)])
    return c


def read_n(c, n, timeout=20.0):
    out, deadline = [], time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(m.error())
        out.append(m)
    return out


def produce_all(p, topic, values, **kw):
    results = []

    def cb(err, msg):
        results.append((err, msg))

    for i, v in enumerate(values):
        p.produce(topic, value=v, on_delivery=cb, **{k: f(i) for k, f in kw.items()})
        p.poll(0)
    left = p.flush(20)
    if left:
        raise AssertionError("%d records still undelivered after 20s" % left)
    return results


@check("idempotent producer")
def idempotent_producer():
    topic, n = "ck-idem-" + RUN, 2000
    p = Producer({"bootstrap.servers": B, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "batch.num.messages": 100})
    res = produce_all(p, topic, [b"%d" % i for i in range(n)], key=lambda i: b"k%d" % (i % 7))
    errs = [e for e, _ in res if e is not None]
    if errs:
        raise AssertionError("%d delivery errors, first: %s" % (len(errs), errs[0]))
    offs = [m.offset() for _, m in res]
    if offs != list(range(n)):
        raise AssertionError("delivery offsets not 0..%d in order: first bad at %s" % (
            n - 1, next(i for i, o in enumerate(offs) if o != i)))
    c = assigned_consumer(topic, 0, 0)
    try:
        got = read_n(c, n)
        got += read_n(c, 1, timeout=1.5)  # one more poll: duplicates would show
    finally:
        c.close()
    vals = [int(m.value()) for m in got]
    if vals != list(range(n)):
        raise AssertionError("read back %d records, want exactly 0..%d once in order" % (len(vals), n - 1))
    return "idempotent producer (enable.idempotence, acks=all) delivered %d records exactly once, in order, offsets 0..%d" % (n, n - 1)


@check("offsets_for_times")
def offsets_for_times():
    topic = "ck-times-" + RUN
    base = int(time.time() * 1000) - 60000
    p = Producer({"bootstrap.servers": B})
    produce_all(p, topic, [b"v%d" % i for i in range(10)], timestamp=lambda i: base + i * 1000)
    c = assigned_consumer(topic, 0, 0)
    try:
        got = {}
        for ts, want in ((base + 2500, 3), (base, 0), (base + 9000, 9), (base + 99000, -1)):
            r = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            got[ts - base] = r[0].offset
            if r[0].error or r[0].offset != want:
                raise AssertionError("ts base+%d: offset %d err %s, want %d" % (ts - base, r[0].offset, r[0].error, want))
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        if (lo, hi) != (0, 10):
            raise AssertionError("watermarks (%d,%d), want (0,10)" % (lo, hi))
    finally:
        c.close()
    return "offsets_for_times maps CreateTime timestamps to offsets (+2.5s->3, exact->0, last->9, future->-1); watermarks (0,10)"


@check("admin")
def admin():
    topic = "ck-admin-" + RUN
    a = AdminClient({"bootstrap.servers": B})
    fs = a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                   config={"retention.ms": "3600000"})], operation_timeout=10)
    fs[topic].result(15)
    dup = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic]
    try:
        dup.result(15)
        raise AssertionError("creating the topic twice succeeded")
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    md = a.list_topics(timeout=10)
    if topic not in md.topics or len(md.topics[topic].partitions) != 3:
        raise AssertionError("list_topics: %s" % (md.topics.get(topic),))
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = a.describe_configs([res])[res].result(15)
    if cfg["retention.ms"].value != "3600000":
        raise AssertionError("describe_configs retention.ms=%s" % cfg["retention.ms"].value)
    if "cleanup.policy" not in cfg:
        raise AssertionError("describe_configs lacks cleanup.policy default")
    # confluent-kafka-python 1.7 has no incremental_alter_configs: use the
    # non-incremental AlterConfigs (replaces the topic's dynamic configs).
    alt = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "7200000", "segment.bytes": "1048576"})
    a.alter_configs([alt])[alt].result(15)
    cfg = a.describe_configs([res])[res].result(15)
    if cfg["retention.ms"].value != "7200000" or cfg["segment.bytes"].value != "1048576":
        raise AssertionError("after alter_configs retention.ms=%s segment.bytes=%s" % (
            cfg["retention.ms"].value, cfg["segment.bytes"].value))
    incr = "incremental_alter_configs" if hasattr(a, "incremental_alter_configs") else "alter_configs (incremental not in this client version)"
    return "AdminClient create_topics (3 partitions + config, duplicate -> TOPIC_ALREADY_EXISTS), list_topics, describe_configs, %s" % incr


@check("assign+seek")
def assign_seek():
    topic = "ck-seek-" + RUN
    p = Producer({"bootstrap.servers": B})
    produce_all(p, topic, [b"r%d" % i for i in range(20)])
    c = assigned_consumer(topic, 0, 0)
    try:
        first = read_n(c, 1)
        if not first or first[0].offset() != 0:
            raise AssertionError("first record not offset 0")
        c.seek(TopicPartition(topic, 0, 15))
        got = read_n(c, 5)
        offs = [m.offset() for m in got]
        if offs != [15, 16, 17, 18, 19] or [m.value() for m in got] != [b"r%d" % i for i in range(15, 20)]:
            raise AssertionError("after seek(15) got offsets %s" % offs)
    finally:
        c.close()
    return "Consumer assign()+seek(15) without a group reads offsets 15..19 with the right values"


@check("partition EOF")
def partition_eof():
    topic = "ck-eof-" + RUN
    p = Producer({"bootstrap.servers": B})
    produce_all(p, topic, [b"a", b"b"])
    c = assigned_consumer(topic, 0, 0, {"enable.partition.eof": True})
    try:
        deadline, seen, errs = time.time() + 10, [], []
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if [x.offset() for x in seen] != [0, 1]:
                        raise AssertionError("EOF after offsets %s" % [x.offset() for x in seen])
                    return "Consumer with enable.partition.eof reads both records then reports end of partition at offset 2"
                errs.append(str(m.error()))
                continue
            seen.append(m)
        raise AssertionError("no partition EOF within 10s after %d records (an empty fetch at the log end must parse); errors: %s" % (len(seen), errs[:2]))
    finally:
        c.close()


@check("consumer group")
def consumer_group():
    if not GROUPS:
        report("SKIP", "consumer group commit/resume: broker does not advertise the group APIs yet")
        return None
    topic, group = "ck-group-" + RUN, "ck-group-" + RUN
    p = Producer({"bootstrap.servers": B})
    produce_all(p, topic, [b"g%d" % i for i in range(10)])
    conf = {"bootstrap.servers": B, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    c = Consumer(conf)
    try:
        c.subscribe([topic])
        got = read_n(c, 4, timeout=30)
        if [m.value() for m in got] != [b"g0", b"g1", b"g2", b"g3"]:
            raise AssertionError("first member read %s" % [m.value() for m in got])
        c.commit(message=got[-1], asynchronous=False)
    finally:
        c.close()
    c = Consumer(conf)
    try:
        c.subscribe([topic])
        got = read_n(c, 6, timeout=30)
        if [m.value() for m in got] != [b"g%d" % i for i in range(4, 10)]:
            raise AssertionError("restarted member read %s, want g4..g9" % [m.value() for m in got])
        committed = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        if committed != 4:
            raise AssertionError("committed offset %d, want 4" % committed)
    finally:
        c.close()
    return "consumer group subscribe + manual commit: restarted member resumes at committed offset 4"


def read_all(c, idle=2.0, timeout=20.0):
    """Polls until the partition reports EOF (enable.partition.eof) and then idle seconds pass quietly."""
    out, deadline, eof_at = [], time.time() + timeout, None
    while time.time() < deadline:
        m = c.poll(0.3)
        if m is None:
            if eof_at is not None and time.time() - eof_at >= idle:
                return out
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof_at = eof_at or time.time()
                continue
            raise KafkaException(m.error())
        eof_at = None
        out.append(m)
    raise AssertionError("no quiet end of partition within %.0fs (%d records read)" % (timeout, len(out)))


@check("transactions")
def transactions():
    if not GROUPS:
        report("SKIP", "transactional producer: broker does not advertise the group APIs yet")
        return None
    src, dst, group = "ck-txsrc-" + RUN, "ck-tx-" + RUN, "ck-txgroup-" + RUN
    n, m, k = 5, 3, 4
    p = Producer({"bootstrap.servers": B, "transactional.id": "ck-txid-" + RUN,
                  "transaction.timeout.ms": 30000, "linger.ms": 1})
    p.init_transactions(15)
    # committed: n records
    p.begin_transaction()
    for i in range(n):
        p.produce(dst, value=b"commit-%d" % i)
    p.commit_transaction(15)
    # aborted: m records
    p.begin_transaction()
    for i in range(m):
        p.produce(dst, value=b"abort-%d" % i)
    p.flush(15)  # the aborted records are in the log, not just in the client
    p.abort_transaction(15)
    # consume-transform-produce: read k source records in a group, write them
    # transformed and commit the group's offsets inside the transaction.
    produce_all(Producer({"bootstrap.servers": B}), src, [b"src-%d" % i for i in range(k)])
    c = Consumer({"bootstrap.servers": B, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "session.timeout.ms": 6000})
    try:
        c.subscribe([src])
        got = read_n(c, k, timeout=30)
        if [x.value() for x in got] != [b"src-%d" % i for i in range(k)]:
            raise AssertionError("transform input %s" % [x.value() for x in got])
        p.begin_transaction()
        for x in got:
            p.produce(dst, value=b"ctp-" + x.value())
        offs = [TopicPartition(src, 0, got[-1].offset() + 1)]
        p.send_offsets_to_transaction(offs, c.consumer_group_metadata(), 15)
        p.commit_transaction(15)
    finally:
        c.close()
    want = [b"commit-%d" % i for i in range(n)] + [b"ctp-src-%d" % i for i in range(k)]
    rc = assigned_consumer(dst, 0, 0, {"isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        committed = [x.value() for x in read_all(rc)]
    finally:
        rc.close()
    if committed != want:
        raise AssertionError("read_committed read %s, want %s" % (committed, want))
    ru = assigned_consumer(dst, 0, 0, {"isolation.level": "read_uncommitted", "enable.partition.eof": True})
    try:
        uncommitted = [x.value() for x in read_all(ru)]
    finally:
        ru.close()
    want_u = [b"commit-%d" % i for i in range(n)] + [b"abort-%d" % i for i in range(m)] + [b"ctp-src-%d" % i for i in range(k)]
    if uncommitted != want_u:
        raise AssertionError("read_uncommitted read %s, want %s" % (uncommitted, want_u))
    gc = Consumer({"bootstrap.servers": B, "group.id": group, "enable.auto.commit": False})
    try:
        off = gc.committed([TopicPartition(src, 0)], timeout=10)[0].offset
    finally:
        gc.close()
    if off != k:
        raise AssertionError("group committed offset %d, want %d (sent in the transaction)" % (off, k))
    return ("transactional producer: init_transactions, commit of %d, abort of %d, consume-transform-produce of %d with "
            "send_offsets_to_transaction; read_committed sees exactly the %d committed, read_uncommitted all %d, "
            "group offset %d" % (n, m, k, n + k, n + m + k, k))


if __name__ == "__main__":
    for fn in (idempotent_producer, offsets_for_times, admin, assign_seek, partition_eof, consumer_group,
               transactions):
        fn()
    sys.exit(1 if failures else 0)
