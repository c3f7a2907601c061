"""Group consumers of kafka-python (the sink's) take up their assignment every time."""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, KafkaProducer

from streams.kafka_compat import await_pending_joins

GROUPS = 30
WAIT_S = 20.0


def test_a_consumer_in_a_new_group_reads_its_topic_even_when_a_join_outlives_a_poll(bootstrap: str) -> None:
    # A fresh consumer joins before it knows its topic's metadata, then joins again once it
    # does; polls of 10 ms end during that second join. Unpatched, kafka-python 3.0 leaves a
    # consumer without partitions (polling nothing, at full CPU) within the first few groups
    # here; with the sink's 200 ms polls, about one start in eight on a busy machine.
    await_pending_joins()
    topic = f"t{uuid.uuid4().hex[:10]}-groups"
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, b"post").get(timeout=30)
    producer.close()
    for attempt in range(GROUPS):
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"{topic}-{attempt}", enable_auto_commit=False,
                                 auto_offset_reset="earliest", session_timeout_ms=10_000)  # fmt: skip
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + WAIT_S
            read: dict[object, object] = {}
            while not read and time.monotonic() < deadline:
                read = consumer.poll(timeout_ms=10)
            assert read, f"group {attempt + 1} of {GROUPS} read nothing in {WAIT_S} s: assigned {consumer.assignment()}"
        finally:
            consumer.close(autocommit=False)
