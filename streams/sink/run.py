"""``social-streams sink``: the output topics, appended to Delta Lake tables exactly once.

A sink worker is a plain consumer in its own group (``<app id>-sink``): start
as many as the topics have partitions and they share them. It reads committed
records only (an exactly-once pipeline's aborted writes never reach a table),
buffers rows per topic, and appends when a batch is full (rows or bytes) or old
(seconds), one Delta commit per table that carries the batch's offsets (see
``streams.sink.table``). Offsets are also committed to Kafka after each append,
for lag monitoring only: on (re)assignment a partition resumes from the table.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from streams.clients import KafkaConnection
from streams.kafka_compat import await_pending_joins, topic_id
from streams.sink.schema import TableSchema
from streams.sink.table import LiveSource, PartitionMoved, SourceChanged, TopicTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkOptions:
    connection: KafkaConnection
    group: str
    root: str
    topics: dict[str, str]  # topic read -> its contract name (the table's name and schema)
    batch_rows: int = 5000
    batch_bytes: int = 64 << 20
    batch_s: float = 10.0
    storage_options: dict[str, str] | None = None
    idle_exit_s: float | None = None  # stop after this long without records (tests, backfills)
    reset_source: bool = False  # a re-created or truncated topic: go on from its start, old rows kept


@dataclass
class Buffer:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    size: int = 0
    count: int = 0
    since: float = 0.0

    def add(self, topic: str, row: dict[str, Any], size: int) -> None:
        if not self.count:
            self.since = time.monotonic()
        self.rows.setdefault(topic, []).append(row)
        self.size += size
        self.count += 1

    def clear(self) -> None:
        self.rows, self.size, self.count = {}, 0, 0


class Sink(ConsumerRebalanceListener):
    def __init__(self, options: SinkOptions) -> None:
        self.options = options
        self.tables = {
            topic: TopicTable(options.root, TableSchema.of(contract), options.group, options.storage_options)
            for topic, contract in options.topics.items()
        }
        self.buffer = Buffer()
        self.written = 0
        self.stopping = False
        self.unchecked: set[TopicPartition] = set()  # assigned, paused until their source is checked
        await_pending_joins()  # else a join that outlives a poll can leave the sink with no partitions
        self.consumer = KafkaConsumer(
            **options.connection.kafka_python(),
            group_id=options.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=2000,
            # A crashed sink worker's partitions move after 10 s, not the client default of 45 s.
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )

    # ConsumerRebalanceListener: called inside poll(), between two appends.
    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.flush()

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # Checked after the poll: asking the broker for offsets blocks, which a listener may not.
        fresh = list(assigned)
        self.consumer.pause(*fresh)
        self.unchecked.update(fresh)

    def check_sources(self) -> None:
        """Seek each newly assigned partition to where its table resumes, once the table's
        offsets are known to belong to the topic as it is now (``TopicTable.check_source``)."""
        partitions = sorted(self.unchecked, key=lambda tp: (tp.topic, tp.partition))
        self.unchecked.clear()
        partitions = [tp for tp in partitions if tp in self.consumer.assignment()]
        if not partitions:
            return
        beginnings = self.consumer.beginning_offsets(partitions)
        ends = self.consumer.end_offsets(partitions)
        for tp in partitions:
            table = self.tables[tp.topic]
            live = LiveSource(topic_id(self.consumer, tp.topic), beginnings[tp], ends[tp])
            try:
                offset = table.check_source(tp.partition, live)
            except SourceChanged as exc:
                if not self.options.reset_source:
                    raise
                log.warning("sink: %s; going on as --reset-source asks", exc)
                table.reset_source(live, [tp.partition])
                offset = table.resume_offset(tp.partition)
                offset = live.beginning if offset is not None and offset < live.beginning else offset
            table.adopt_source(live)
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
            self.consumer.resume(tp)
            log.info("sink: %s[%d] resumes at %s", tp.topic, tp.partition, offset if offset is not None else "start")

    def run(self) -> int:
        self.consumer.subscribe(list(self.options.topics), listener=self)
        last_record = time.monotonic()
        try:
            while not self.stopping:
                polled = self.consumer.poll(timeout_ms=200)
                if self.unchecked:
                    polled = {
                        tp: m for tp, m in polled.items() if tp not in self.unchecked
                    }  # read again after the seek
                    self.check_sources()
                for tp, messages in polled.items():
                    schema = self.tables[tp.topic].schema
                    for m in messages:
                        row = schema.row(m.value, m.key, m.partition, m.offset, m.timestamp)
                        self.buffer.add(tp.topic, row, len(m.value or b"") + len(m.key or b""))
                    last_record = time.monotonic()
                if self.due():
                    self.flush()
                idle = self.options.idle_exit_s
                if idle is not None and not polled and time.monotonic() - last_record > idle:
                    break
            self.flush()
        finally:
            self.consumer.close(autocommit=False)
        log.info("sink: %d rows written", self.written)
        return 0

    def due(self) -> bool:
        b, o = self.buffer, self.options
        return (
            b.count >= o.batch_rows
            or b.size >= o.batch_bytes
            or (b.count > 0 and time.monotonic() - b.since >= o.batch_s)
        )

    def flush(self) -> None:
        if not self.buffer.count:
            return
        started = time.perf_counter()
        committed: dict[TopicPartition, OffsetAndMetadata] = {}
        for topic, rows in self.buffer.rows.items():
            table = self.tables[topic]
            try:
                self.written += table.append(rows)
            except PartitionMoved as exc:  # another sink worker owns it now: its rows are not ours to write
                log.warning("sink: %s; dropping this worker's batch of %s and re-reading from the table", exc, topic)
                self.rewind(topic, {row["_partition"] for row in rows})
                continue
            for row in rows:
                tp = TopicPartition(topic, row["_partition"])
                committed[tp] = OffsetAndMetadata(row["_offset"] + 1, "", -1)
        log.info("sink: appended %d rows in %.2fs", self.buffer.count, time.perf_counter() - started)
        self.buffer.clear()
        self.commit_for_monitoring(committed)

    def rewind(self, topic: str, partitions: set[int]) -> None:
        for partition in partitions:
            tp = TopicPartition(topic, partition)
            if tp in self.consumer.assignment():
                offset = self.tables[topic].resume_offset(partition)
                self.consumer.seek(tp, offset or 0)

    def commit_for_monitoring(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - the table holds the offsets that count
            log.info("sink: Kafka offset commit skipped (%r); lag metrics may lag", exc)

    def stop(self, *_: Any) -> None:
        self.stopping = True


def run_sink(options: SinkOptions) -> int:
    sink = Sink(options)
    signal.signal(signal.SIGTERM, sink.stop)
    signal.signal(signal.SIGINT, sink.stop)
    return sink.run()
