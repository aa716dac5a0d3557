"""Sets up the group Burrow must report (used by burrow_check.sh).

Creates TOPIC with two partitions, produces 10 records to each, and commits
offsets 4 (partition 0) and 7 (partition 1) for GROUP, so the group's lag is
6 and 3. Prints nothing on success; exits non-zero with the error otherwise.

usage: burrow_group.py BOOTSTRAP TOPIC GROUP
"""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

COMMITS = {0: 4, 1: 7}
RECORDS = 10


def main():
    bootstrap, topic, group = sys.argv[1:4]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for p in COMMITS:
        for i in range(RECORDS):
            producer.send(topic, value=b"v%d" % i, partition=p).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    tps = {p: TopicPartition(topic, p) for p in COMMITS}
    consumer.assign(list(tps.values()))
    consumer.commit({tps[p]: OffsetAndMetadata(off, "") for p, off in COMMITS.items()})
    got = {p: consumer.committed(tps[p]) for p in COMMITS}
    consumer.close()
    if got != COMMITS:
        sys.exit("committed offsets read back as %r, want %r" % (got, COMMITS))


if __name__ == "__main__":
    main()
