"""Exactly-once with any number of workers: one Kafka transaction per input partition.

Faust names a transactional producer after a topic group and partition
(``{app}-{group}-{partition}``) and starts one for each partition a worker is
assigned. Three of its rules break as soon as two workers share the group:

- A record joins the transaction of its *own* partition. A worker that writes to
  a partition of ``profiles-by-user``, ``trends-by-term`` or an output topic that
  another worker owns has no producer for it (``No transaction producer found``),
  and where it has one, the record commits in a different transaction from the
  input offsets that caused it: a crash between the two commits loses it or
  repeats it.
- A partition that stays on the worker as a standby replica is not counted as
  revoked, so its producer is never stopped. The new owner starts a producer with
  the same id, which fences the old one: the next send fails with
  ``ProducerFenced``, and the worker that still believes it owns the partition
  crashes its agent.
- A transaction commits only when its partition has new input offsets. What a
  timer wrote (closed trend windows, throttled profiles) waits in an open
  transaction until new input arrives, and an open transaction holds every
  ``read_committed`` reader of its partitions at its first record: windows and
  profiles stop appearing, the trends stage stops reading.

``SourceTransactions`` replaces the three with the rule of Kafka Streams: every
record joins the transaction of the input partition it was made for (the current
event's: agents mark it with ``faust_compat.processing``; a write made outside any
event, such as a buffered table write, joins its own partition's, which is the
partition of the event that made it, tables being co-partitioned with their
input), producers follow the active assignment exactly, and every commit also
commits each transaction that holds records, with or without new offsets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
from faust.exceptions import ProducerSendError
from faust.types import TP

from streams import faust_compat
from streams.commits import CommitGate

log = logging.getLogger(__name__)
HELD_OPEN_WARN_S = 30.0


class SourceTransactions:
    def __init__(
        self, app: faust.App, gate: CommitGate, on_roll_back: list[Callable[[set[int]], None]] | None = None
    ) -> None:
        self.app = app
        self.gate = gate
        self.on_roll_back = on_roll_back or []
        self.manager: Any = app.consumer.transactions  # Any: its producer table is undeclared
        self.written: set[str] = set()  # transactions holding records since their last commit
        self.held_since: dict[str, float] = {}  # written transactions not committed, since when
        self.warned: set[str] = set()
        self.forgotten = False  # between Faust forgetting the revoked acknowledgements and the new assignment

    def install(self) -> None:
        """Route the transaction manager's sends, rebalances and commits through this object."""
        self.manager.send = self.send
        self.manager.on_partitions_revoked = self.on_partitions_revoked
        self.manager.on_rebalance = self.on_rebalance
        faust_commit = self.manager.commit

        async def commit(offsets: dict[TP, int], start_new_transaction: bool = True) -> bool:
            done: bool = await faust_commit(offsets, start_new_transaction)
            self.written -= {self.transaction_of(tp.topic, tp.partition) for tp in offsets}
            return done

        self.manager.commit = commit
        consumer: Any = self.app.consumer  # Any: on_partitions_revoked is not in ConsumerT
        faust_revoked = consumer.on_partitions_revoked

        async def commit_then_revoke(revoked: set[TP]) -> None:
            # Faust forgets the acknowledged offsets of revoked partitions: commit them first,
            # so the work done so far is kept rather than aborted and done again.
            await self.app.consumer.commit()
            left = faust_compat.pending_acks(self.app.consumer)
            if left:
                log.info("exactly-once: revocation: offsets left uncommitted: %s",
                         {f"{tp.topic}[{tp.partition}]": faust_compat.acked_offsets(self.app.consumer, tp)
                          for tp in sorted(left)})  # fmt: skip
            self.forgotten = True
            await faust_revoked(revoked)

        consumer.on_partitions_revoked = commit_then_revoke
        tables: Any = self.app.tables  # Any: a mapping of name to table, not declared as one
        for table in tables.values():
            faust_compat.track_key_partitions(table)

    @property
    def producers(self) -> dict[str, Any]:
        return faust_compat.transaction_producers(self.manager)

    def transaction_of(self, topic: str, partition: int | None) -> str | None:
        group = faust_compat.topic_group(self.app, topic)
        return None if group is None or partition is None else f"{self.app.conf.id}-{group}-{partition}"

    def transaction_for(self, topic: str, partition: int | None) -> tuple[str | None, TP | None]:
        """The transaction a record for ``topic[partition]`` joins, and the input it was made for."""
        source = faust_compat.current_source()
        if source is not None:
            return self.transaction_of(source.topic, source.partition), source
        return self.transaction_of(topic, partition), None

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        p = self.manager.consumer.key_partition(topic, key, partition)
        tid, source = self.transaction_for(topic, p)
        if tid is None or tid not in self.producers:
            made_for = f"input {source.topic}[{source.partition}]" if source is not None else "no input event"
            raise ProducerSendError(
                f"no transaction on this worker for a record to {topic}[{p}] ({made_for}, transaction {tid}); "
                f"this worker's transactions: {sorted(self.producers)}"
            )
        self.written.add(tid)
        return await self.manager.producer.send(topic, key, value, p, timestamp, headers, transactional_id=tid)

    async def send_records(
        self, topic: str, partition: int, records: Sequence[tuple[bytes | None, bytes | None]]
    ) -> list[Any]:
        """A table's changelog records for ``topic[partition]``, batched (streams.changelog), in the
        transaction of that partition, as a table write Faust sends joins; their delivery futures."""
        tid = self.transaction_of(topic, partition)
        if tid is None or tid not in self.producers:
            raise ProducerSendError(
                f"no transaction on this worker for {len(records)} table write(s) to {topic}[{partition}] "
                f"(transaction {tid}); this worker's transactions: {sorted(self.producers)}"
            )
        self.written.add(tid)
        return await faust_compat.send_in_transaction(self.app, tid, topic, partition, records)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Abort the transactions of the revoked partitions that still hold records, and
        forget what those records changed in the tables.

        The commit made just before the revocation covers the work done so far; records
        sent after it belong to inputs whose acknowledgements Faust has now forgotten.
        Committed alone they would come again from whoever processes those inputs next;
        aborted, the inputs are processed again from the last commit and their records
        come once. The tables' in-memory state of those partitions went ahead with the
        aborted records: it is dropped and recovered from the changelogs (which hold
        committed records only) when the partitions are assigned again.
        """
        producer = self.manager.producer
        async with self.gate.commit():  # a timer that is sending finishes first
            await producer.flush()
            dirty = {tid for tp in revoked if (tid := self.transaction_of(tp.topic, tp.partition)) in self.written}
            for tid in sorted(dirty):
                if tid in self.producers:
                    await faust_compat.end_transaction(producer, tid, commit=False, begin=True)
            rolled_back = {tp.partition for tp in revoked if self.transaction_of(tp.topic, tp.partition) in dirty}
            if rolled_back:
                self.roll_back_tables(dirty, rolled_back)
            self.written -= dirty

    def roll_back_tables(self, tids: set[str], partitions: set[int]) -> None:
        forgotten = 0
        tables: Any = self.app.tables
        for table in tables.values():
            changelog = table.changelog_topic.get_topic_name()
            for partition in partitions:
                if self.transaction_of(changelog, partition) in tids:
                    forgotten += faust_compat.forget_partition(self.app, table, partition)
        for rebuild in self.on_roll_back:
            rebuild(partitions)
        log.info(
            "exactly-once: aborted %d transaction(s) holding records; %d table row(s) of partitions %s dropped, "
            "to be recovered from their changelogs", len(tids), forgotten, sorted(partitions),
        )  # fmt: skip

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]) -> None:
        """Keep a producer for each actively assigned partition, and none other.

        A producer for a partition that left (standby replicas included) is stopped
        without committing: its open transaction is aborted when the new owner starts
        a producer with the same id, and the new owner processes those inputs again
        from the last commit.
        """
        active = faust_compat.active_transactional_ids(self.manager, assigned)
        producer = self.manager.producer
        left = sorted(set(self.producers) - active)
        if left:
            log.info("exactly-once: stopping %d producer(s) of partitions that left: %s", len(left), left)
        for tid in left:
            await producer.stop_transaction(tid)
        started = sorted(active - set(self.producers))
        for tid in started:
            await producer.maybe_begin_transaction(tid)
        # A kept partition's transaction may have been ended by the revocation's last commit
        # (Faust's, which begins none): the next record would find no transaction open.
        resumed = [tid for tid in sorted(active) if tid not in started
                   and await faust_compat.begin_transaction_if_none(producer, tid)]  # fmt: skip
        log.info("exactly-once: %d transaction(s) of active partitions, %d started, %d begun again",
                 len(active), len(started), len(resumed))  # fmt: skip
        self.written &= active
        self.forgotten = False

    def committable(self) -> set[TP]:
        """The input partitions whose acknowledged offsets may commit now: those of the
        transactions where the commit would take every acknowledged offset.

        A transaction holds the records of every input partition of its number (all the
        topics of a topic group), and Faust commits it as soon as one of them has new
        offsets. Where another of them has offsets acknowledged past a gap (records the
        consumer skipped, not yet read back), its records would commit without their
        offsets: read again after a rebalance, they would be processed, and published,
        twice. Such a transaction waits, whole, until the gap is filled; and aborted,
        whole, if its partitions are revoked first.
        """
        consumer = self.app.consumer
        waiting = faust_compat.pending_acks(consumer)
        for tp in waiting:
            faust_compat.tidy_acks(consumer, tp)
        held = {self.transaction_of(tp.topic, tp.partition) for tp in waiting
                if faust_compat.commit_leaves_acks(consumer, tp)}  # fmt: skip
        return {tp for tp in waiting if self.transaction_of(tp.topic, tp.partition) not in held}

    async def commit_written(self, begin: bool = True) -> None:
        """After Faust's commit: commit the transactions that hold records but had no new offsets.

        Only where every input offset acknowledged on the transaction's partitions is
        committed: the records then come from timers (closed windows, throttled
        profiles) and the table writes they made. Records of inputs whose offsets Faust
        did not commit (a gap, a rebalance) stay in the open transaction: committed
        without their offsets they would come again when those inputs are read again.
        """
        if self.forgotten:  # the revoked partitions' acknowledgements are gone: see on_partitions_revoked
            return
        producer = self.manager.producer
        waiting = faust_compat.pending_acks(self.app.consumer)
        pending = {self.transaction_of(tp.topic, tp.partition) for tp in waiting}
        for tid in sorted(self.written - pending):
            if tid in self.producers:
                await faust_compat.end_transaction(producer, tid, commit=True, begin=begin)
        self.written &= pending
        self.warn_held_open(waiting)

    def warn_held_open(self, waiting: set[TP]) -> None:
        """Say once when a transaction has waited past ``HELD_OPEN_WARN_S`` for its input
        offsets: its records, and everything after them on their partitions, stay
        invisible to read_committed readers meanwhile."""
        now = time.monotonic()
        for tid in list(self.held_since):
            if tid not in self.written:
                del self.held_since[tid]
        for tid in self.written:
            since = self.held_since.setdefault(tid, now)
            if now - since >= HELD_OPEN_WARN_S and tid not in self.warned:
                self.warned.add(tid)
                inputs = {tp: faust_compat.acked_offsets(self.app.consumer, tp) for tp in waiting
                          if self.transaction_of(tp.topic, tp.partition) == tid}  # fmt: skip
                described = {f"{tp.topic}[{tp.partition}]": v for tp, v in inputs.items()}
                log.warning("exactly-once: transaction %s held open %.0fs: acknowledged offsets not committed: %s",
                            tid, now - since, described)  # fmt: skip
