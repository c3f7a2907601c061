"""Table writes sent in batches (streams.changelog) reach the broker whole and in order."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streams import faust_compat


def test_records_sent_in_batches_arrive_whole_and_in_order_with_their_tombstones(bootstrap: str) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}-changelog"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    # Writes of one key more than once, a tombstone, and a record larger than a batch: the
    # last write of a key must stay last, and a batch always takes its first record.
    records: list[tuple[bytes, bytes | None]] = [(f"term-{i % 300}".encode(), b'{"n": %d}' % i) for i in range(1_000)]
    records[500] = (b"term-7", None)
    records[600] = (b"big", b"x" * 5_000)

    async def send() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=2_048, linger_ms=0)
        await producer.start()
        try:
            futures = await faust_compat.send_in_batches(producer, topic, 1, records)
            await asyncio.gather(*futures)
            return len(futures)
        finally:
            await producer.stop()

    batches = asyncio.run(send())
    assert batches > 10  # 2 KiB batches: the records did not fit one

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10_000)
    tp = TopicPartition(topic, 1)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    read: list[tuple[bytes, bytes | None]] = []
    while len(read) < len(records):
        polled = consumer.poll(timeout_ms=5_000)
        if not polled:
            break
        read += [(message.key, message.value) for message in polled.get(tp, [])]
    consumer.close()
    assert read == records
