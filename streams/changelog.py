"""A table's changelog records sent as one Kafka batch per partition, not one Faust message each.

Faust sends every table write on its own way to Kafka: a message future, a place
in its producer buffer, a step of the buffer's task, serialisation, and an
aiokafka ``send`` with its own future and callbacks. The trends windows stage
writes one record for each term a batch touches, about 11 a post: that path cost
the workers more CPU than the stage's own counting.

Inside ``BatchedChangelog.batch()``, each write still updates the table at once
(reads see it); its changelog record is serialised as Faust would and kept by
changelog partition. Leaving the block appends them to the producer in one
aiokafka batch per partition, in exactly-once mode through the transaction of
that partition (Faust's rule for a table write: tables are co-partitioned with
their input, so it is the transaction of the input that made the write), and
waits until the broker has them. The stage leaves the block before it lets Faust
acknowledge its input, so the records are written before the offsets that made
them can be committed, as Faust's flush before each commit ensures for its own
sends. Records are kept in the order written, so the last write of a key stays
the last on its partition.

Writes outside the block take Faust's path. Only in-memory stores: a RocksDB
store learns the offsets it has persisted from Faust's per-message callbacks.
Only for an agent that processes one batch at a time (a block inside another
is part of the outer one, which sends).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from streams import faust_compat
from streams.runtime import Runtime

Record = tuple[bytes | None, bytes | None]


@dataclass(frozen=True)
class Kept:
    """A kept record, as Faust's table reads a send's result: ``result.message.partition``."""

    partition: int

    @property
    def message(self) -> Kept:
        return self


class BatchedChangelog:
    def __init__(self, runtime: Runtime, table: Any) -> None:
        self.rt = runtime
        self.table = table
        self.enabled = runtime.settings.store.startswith("memory://")
        self.collecting = False
        self.pending: dict[int, list[Record]] = defaultdict(list)
        if self.enabled:
            self._take_over_sends()
            runtime.on_roll_back.append(self.forget)

    def _take_over_sends(self) -> None:
        table = self.table
        faust_send = table.send_changelog

        def send_changelog(
            partition: int | None, key: Any, value: Any, key_serializer: Any = None, value_serializer: Any = None
        ) -> Any:
            if not self.collecting or partition is None:
                return faust_send(partition, key, value, key_serializer, value_serializer)
            topic = table.changelog_topic
            key_bytes, _ = topic.prepare_key(key, key_serializer or table.key_serializer)
            value_bytes, _ = topic.prepare_value(value, value_serializer or table.value_serializer)
            self.pending[partition].append((key_bytes, value_bytes))
            return Kept(partition)

        table.send_changelog = send_changelog

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Keep the table's changelog records written inside; send them on leaving.

        On an error inside, the kept records are dropped: the stage's input is not
        acknowledged, so it is read and applied again, and each term it touches written
        again whole (its state remembers the source offsets it applied, so nothing is
        counted twice). Under exactly-once the transaction is aborted in any case.
        """
        if not self.enabled or self.collecting:  # nested: the outer block sends
            yield
            return
        self.collecting = True
        try:
            yield
        except BaseException:
            self.pending.clear()
            raise
        finally:
            self.collecting = False
        await self.flush()

    async def flush(self) -> None:
        pending, self.pending = self.pending, defaultdict(list)
        if not pending:
            return
        topic = self.table.changelog_topic.get_topic_name()
        sent = [await self._send(topic, partition, records) for partition, records in pending.items()]
        await asyncio.gather(*(future for futures in sent for future in futures))

    async def _send(self, topic: str, partition: int, records: list[Record]) -> list[Any]:
        transactions = self.rt.transactions
        if transactions is None:
            producer = faust_compat.main_producer(self.rt.app)
            return await faust_compat.send_in_batches(producer, topic, partition, records)
        return await transactions.send_records(topic, partition, records)

    def forget(self, partitions: set[int]) -> None:
        """Exactly-once aborted these partitions' work: their kept records must not be sent."""
        for partition in partitions:
            self.pending.pop(partition, None)
