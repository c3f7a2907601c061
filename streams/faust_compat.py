"""Every faust-streaming internal the project relies on, in one place.

The project needs a few things Faust has no public API for: the offset a
partition resumed from (gap repair), marking a range as handled (gap repair),
routing every commit through a gate (exactly-once), draining the producer's
buffer of table writes (exactly-once), the current event that picks a table
write's changelog partition, deleting a table key by partition, batching with
``take_events``, keeping a failed batch's offsets from being committed (or a batch
still in flight after ``take_events`` let go of it), and, in
exactly-once mode, tidying the acknowledged offsets so that a transaction commits
with all of its input offsets, and asking the broker where a changelog ends.

``check`` runs at start-up and before any agent: it confirms each attribute
exists on the installed Faust and raises ``FaustIncompatible`` with one line
naming what is missing. Re-read this module on every Faust upgrade; its unit
tests run against the pinned version.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import faust
import faust.streams
from faust.assignor.partition_assignor import PartitionAssignor
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers.aiokafka import Producer as AiokafkaProducer
from faust.transport.producer import ProducerBuffer
from faust.types import TP, EventT, StreamT
from faust.types.tuples import Message

from streams.errors import StreamsError

PINNED = "0.15.3"
CommitFn = Callable[..., Awaitable[bool]]


class FaustIncompatible(StreamsError):
    """The installed faust-streaming lacks an internal this project relies on."""


# (owner, attribute, why we need it): checked by ``check``.
REQUIRED: list[tuple[Any, str, str]] = [
    (Consumer, "_add_gap", "gap repair marks ranges read back as handled"),
    (Consumer, "commit", "exactly-once routes commits through the commit gate"),
    (Consumer, "ack", "a failed batch's acknowledgements are withheld"),
    (Consumer, "_acked", "exactly-once commits a timer's records only where no input offset is pending"),
    (Consumer, "on_partitions_revoked", "exactly-once commits before Faust forgets the revoked acknowledgements"),
    (faust.streams, "_current_event", "table writes go to the partition of the event they belong to"),
    (faust.Stream, "take_events", "agents read micro-batches of events"),
    (faust.Stream, "ack", "exactly-once acknowledges a batch inside the commit gate"),
    (Message, "incref", "a batch still in flight outlives take_events' acknowledgement"),
    (Collection, "send_changelog", "expired de-duplication ids leave the changelog"),
    (Collection, "data", "tables are scanned for expiry and reindexing"),
    (TransactionManager, "send", "exactly-once sends join the transaction of their input"),
    (TransactionManager, "on_rebalance", "exactly-once keeps a producer per active partition"),
    (TransactionManager, "_tps_to_transactional_ids", "exactly-once names transactions as Faust does"),
    (faust.App, "_on_agent_error", "agent crashes are counted and reported by /health"),
    (PartitionAssignor, "_topic_groups", "exactly-once finds the topic group of an input partition"),
    (Recovery, "_build_highwaters", "exactly-once recovery asks the broker where each changelog ends"),
    (ProducerBuffer, "max_messages", "one batch's table writes do not hold every stream back"),
    (AiokafkaProducer, "_ensure_producer", "table writes go to the changelog in batches"),
    (AiokafkaProducer, "_transaction_producers", "exactly-once: table writes join their transaction in batches"),
    (AiokafkaProducer, "_trn_locks", "exactly-once: batched table writes take the transaction's lock"),
]


def check() -> None:
    """Fail with one line when the installed Faust lacks an internal listed in REQUIRED."""
    for owner, name, why in REQUIRED:
        if not hasattr(owner, name) and name not in getattr(owner, "__annotations__", {}):
            raise FaustIncompatible(
                f"faust-streaming {faust.__version__} has no {owner.__name__}.{name} ({why}); "
                f"install faust-streaming=={PINNED}"
            )


def check_consumer(consumer: Any) -> None:
    """The instance attributes that exist only once the consumer is built."""
    for name in ("_committed_offset", "_gap", "_acked_index", "_thread"):
        if not hasattr(consumer, name):
            raise FaustIncompatible(
                f"faust-streaming {faust.__version__}: the consumer has no {name}; install faust-streaming=={PINNED}"
            )


# --- consumer bookkeeping ------------------------------------------------------------


def committed_offset(consumer: Any, tp: TP) -> int | None:
    """The offset Faust's consumer resumed ``tp`` from (its last commit), or None when unknown."""
    committed = consumer._committed_offset.get(tp)
    return int(committed) if committed is not None else None


async def add_gap(consumer: Any, tp: TP, first: int, last: int) -> None:
    """Tell the consumer offsets ``first``..``last`` of ``tp`` are handled, so commits can pass them."""
    await consumer._add_gap(tp, first, last)


def wrap_commit(consumer: Any, wrap: Callable[[CommitFn], CommitFn]) -> None:
    """Replace the consumer's commit with ``wrap(commit)``: every commit, timer or rebalance, goes through it."""
    consumer.commit = wrap(consumer.commit)


def withhold_acks(events: Sequence[Any]) -> None:
    """Keep ``events`` from ever being committed, although ``take_events`` acks them on its way out.

    Faust's ``take_events`` acks its batch in a ``finally`` around the ``yield``: a body
    that raises would have its inputs committed without their outputs. Marking the
    messages acked here makes that later ack a no-op, so the consumer never counts
    their offsets as done, and no commit passes them.
    """
    for event in events:
        message = getattr(event, "message", None)
        if message is not None and hasattr(message, "acked"):
            message.acked = True


def hold(events: Sequence[Any]) -> None:
    """Keep ``events`` from being completed by ``take_events``' acknowledgement on its way out.

    A Faust message is done when as many acknowledgements as the streams that read it
    have come: one more reference makes ``take_events``' ack count as one of two, and
    ``release`` gives the last one once the batch's outputs are acknowledged.
    """
    for event in events:
        message = getattr(event, "message", None)
        if message is not None and hasattr(message, "incref"):
            message.incref()


async def release(stream: StreamT, events: Sequence[Any]) -> None:
    """Acknowledge ``events`` (the last acknowledgement of those ``hold`` kept); a no-op for
    those already done or withheld."""
    for event in events:
        if hasattr(event, "ack"):  # a record read back from the broker is not Faust's to acknowledge
            await stream.ack(event)


def on_agent_error(app: faust.App, handler: Callable[[Any, BaseException], Awaitable[None]]) -> None:
    """Call ``handler(agent, exc)`` whenever an agent raises, before Faust's own handling.

    Faust hands every agent its app's ``_on_agent_error`` when the agent is made: call
    this before any agent is defined.
    """
    faust_handler = app._on_agent_error

    async def on_error(agent: Any, exc: BaseException) -> None:
        await handler(agent, exc)
        await faust_handler(agent, exc)

    app._on_agent_error = on_error  # type: ignore[method-assign]


def recovery_reads_changelog_ends_from_broker(app: faust.App) -> None:
    """Have table recovery ask the broker where each changelog partition ends (read_committed).

    With transactions Faust takes that end from the last stable offset the consumer saw in
    its latest fetch of the partition, which is None before the first fetch: a worker that
    takes up a partition whose changelog it has never fetched gets "-1" as its end,
    recovers nothing, and goes on from empty tables (counts restart from zero, processed
    ids are forgotten). ListOffsets at the consumer's isolation level gives the last stable
    offset itself, which is what recovery reads up to. Only recovery: the trends heartbeats
    keep the consumer's own view (see ``streams.trends.route``).
    """
    tables: Any = app.tables  # Any: its recovery service is undeclared
    recovery = tables.recovery
    thread = app.consumer._thread  # type: ignore[attr-defined]
    build = recovery._build_highwaters

    async def end_offsets(partitions: list[TP]) -> Any:
        return await thread._ensure_consumer().end_offsets(partitions)

    async def highwaters(*partitions: TP) -> Any:
        return await thread.call_thread(end_offsets, list(partitions))

    async def build_from_broker(consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await build(SimpleNamespace(highwaters=highwaters), tps, destination, title)

    recovery._build_highwaters = build_from_broker


# --- producer -------------------------------------------------------------------------


def let_producer_buffer_hold(app: faust.App, messages: int) -> None:
    """Let up to ``messages`` table writes wait in Faust's producer buffer before streams stop.

    Faust stops handing records to *every* stream of the worker while more than 100
    table writes wait to be produced (``ProducerBuffer.wait_until_ebb``, per record).
    One batch of the trends windows stage writes a changelog record for each term it
    touched, thousands: each such batch held the enrich agent's input back too. The
    buffer drains on its own task all the same.
    """
    app.producer.buffer.max_messages = messages


async def flush_producer_buffer(app: faust.App, until: float, clock: Callable[[], float]) -> None:
    """Hand the writes Faust buffered (table changelogs) to the producer, until empty or ``until``."""
    buffer = app.producer.buffer
    while buffer.size and clock() < until:
        await buffer.flush()
        await asyncio.sleep(0)


def main_producer(app: faust.App) -> Any:
    """The aiokafka producer Faust sends through outside transactions."""
    producer: Any = app.producer
    return producer._ensure_producer()


async def send_in_transaction(
    app: faust.App, tid: str, topic: str, partition: int, records: Sequence[tuple[Any, Any]]
) -> list[Any]:
    """``send_in_batches`` through the producer of transaction ``tid``, under the lock Faust's
    own sends and commits of it take."""
    producer: Any = app.producer
    async with producer._trn_locks[tid]:
        return await send_in_batches(producer._transaction_producers[tid], topic, partition, records)


async def send_in_batches(producer: Any, topic: str, partition: int, records: Sequence[tuple[Any, Any]]) -> list[Any]:
    """Append ``(key, value)`` records (bytes, or None for a tombstone's value) to ``topic[partition]``
    in as few aiokafka batches as fit them; the futures of their delivery.

    One batch is one entry in the producer's queue and one future, where ``send`` makes one
    of each per record: for thousands of table writes a batch, most of the Python cost.
    """
    futures = []
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: a batch takes its first record
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    if batch.record_count():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


# --- exactly-once transactions ---------------------------------------------------------


def current_source() -> TP | None:
    """The partition of the event being processed (``processing``, or the stream's own), if any."""
    ref = faust.streams._current_event.get(None)
    event = ref() if ref is not None else None
    message = getattr(event, "message", None)
    return TP(message.topic, message.partition) if message is not None else None


def pending_acks(consumer: Any) -> set[TP]:
    """The partitions with acknowledged offsets the consumer has not committed yet."""
    return {tp for tp, acked in consumer._acked.items() if acked}


def tidy_acks(consumer: Any, tp: TP) -> None:
    """Put ``tp``'s acknowledged offsets in the shape Faust's commit reckons right: sorted,
    each once, none a commit already passed, and the gaps below the newest merged in.

    Faust notes a gap up to *and including* the record after it, and merges gaps into
    the acknowledged offsets only when it commits: an offset then appears twice, and its
    reckoning (the first run of consecutive offsets) stops there, committing part of what
    a transaction holds. It also forgets a committed offset's acknowledgement before the
    commit returns but records the new committed offset only after: an acknowledgement
    that lands in between is kept although committed.
    """
    acked = consumer._acked.get(tp)
    if not acked:
        return
    offsets = set(acked)
    gaps = consumer._gap.get(tp)
    if gaps:
        newest = max(offsets)
        merged = [o for interval in sorted(gaps.overlap(0, newest), key=lambda i: i.begin)
                  for o in range(interval.begin, interval.end)]  # fmt: skip
        if merged:
            offsets.update(merged)
            gaps.chop(0, max(merged[-1], newest + 1))
    committed = consumer._committed_offset.get(tp)
    kept = sorted(o for o in offsets if committed is None or o >= committed)
    acked[:] = kept
    consumer._acked_index[tp] = set(kept)


def tidy_acks_before_each_commit(consumer: Any) -> None:
    """At-least-once: every commit first puts each partition's acknowledged offsets in
    shape (``tidy_acks``; exactly-once does it in its own commit path).

    Without it, the offsets Faust holds twice after a gap (it notes one around most
    rebalances) each end the run of consecutive offsets a commit reckons on: the
    partition's committed offset then moves by one or two offsets a commit (every
    ``commit_interval``) and stays behind by hundreds for a minute or more, although
    every record was processed. A crash meanwhile would make all of them run again.
    """

    def tidied(commit: CommitFn) -> CommitFn:
        async def commit_tidied(topics: Any = None, start_new_transaction: bool = True) -> bool:
            for tp in pending_acks(consumer):
                tidy_acks(consumer, tp)
            return await commit(topics, start_new_transaction=start_new_transaction)

        return commit_tidied

    wrap_commit(consumer, tidied)


def commit_leaves_acks(consumer: Any, tp: TP) -> bool:
    """Whether a commit now would leave acknowledged offsets of ``tp`` behind, once
    ``tidy_acks`` has put them in shape (gaps merged, each once): Faust commits only the
    first unbroken run of them from the committed offset and keeps the rest. The same
    reckoning as ``Consumer._new_offset``, without its changes to the consumer's state."""
    acked = consumer._acked.get(tp)
    if not acked:
        return False
    committed = consumer._committed_offset.get(tp)
    if committed and acked[0] - committed > 1:
        return True
    return acked[-1] - acked[0] + 1 != len(acked)


def acked_offsets(consumer: Any, tp: TP) -> dict[str, Any]:
    """What the consumer holds for ``tp``: committed offset, acknowledged offsets, gaps (a diagnosis)."""
    acked = consumer._acked.get(tp) or []
    return {"committed": consumer._committed_offset.get(tp), "acked": f"{min(acked)}..{max(acked)} ({len(acked)})"
            if acked else "none", "gaps": len(consumer._gap.get(tp) or ())}  # fmt: skip


def track_key_partitions(table: Any) -> None:
    """Record the changelog partition of every key the table writes (the memory store records
    only the keys it recovers), so a partition's keys can be forgotten."""
    store = table.data
    if not hasattr(store, "_key_partition"):
        return
    send = table.send_changelog

    def send_and_track(partition: int | None, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if partition is not None:
            store._key_partition[key] = partition
        return send(partition, key, value, *args, **kwargs)

    table.send_changelog = send_and_track


def forget_partition(app: faust.App, table: Any, partition: int) -> int:
    """Drop the table's in-memory rows of ``partition`` and have recovery read its changelog
    partition from the start when it is assigned again; the rows dropped."""
    store = table.data
    keys = [key for key, p in getattr(store, "_key_partition", {}).items() if p == partition]
    for key in keys:
        store.data.pop(key, None)
        store._key_partition.pop(key, None)
    changelog = TP(table.changelog_topic.get_topic_name(), partition)
    tables: Any = app.tables  # Any: the table manager's recovery is undeclared
    recovery = tables.recovery
    recovery.active_offsets.pop(changelog, None)
    return len(keys)


def transaction_producers(manager: Any) -> dict[str, Any]:
    """The transactional producers Faust's producer holds, by transactional id."""
    producers: dict[str, Any] = manager.producer._transaction_producers
    return producers


def topic_group(app: faust.App, topic: str) -> int | None:
    """The topic group Faust's assignor put ``topic`` in (None: the app neither reads nor
    recovers it)."""
    assignor: Any = app.assignor  # Any: its topic groups are undeclared
    group = assignor._topic_groups.get(topic)
    return int(group) if group is not None else None


def active_transactional_ids(manager: Any, assigned: set[TP]) -> set[str]:
    """Faust's transactional ids of the partitions in ``assigned`` that are active, not standby."""
    tids: set[str] = manager._tps_to_transactional_ids(assigned)
    return tids


async def end_transaction(producer: Any, tid: str, commit: bool, begin: bool) -> None:
    """Commit (no offsets) or abort the open transaction ``tid`` and, with ``begin``, begin
    the next, under the lock Faust's own commits take."""
    async with producer._trn_locks[tid]:
        transactional = producer._transaction_producers.get(tid)
        if transactional is not None:
            await (transactional.commit_transaction() if commit else transactional.abort_transaction())
            if begin:
                await transactional.begin_transaction()


async def begin_transaction_if_none(producer: Any, tid: str) -> bool:
    """Begin a transaction on ``tid``'s producer unless one is open; whether it began one."""
    async with producer._trn_locks[tid]:
        transactional = producer._transaction_producers.get(tid)
        if transactional is None or transactional._txn_manager.is_in_transaction():
            return False
        await transactional.begin_transaction()
        return True


# --- streams and tables ---------------------------------------------------------------


def take_events(stream: StreamT, size: int, within: float) -> AsyncIterator[Sequence[EventT]]:
    """Micro-batches of events (faust-streaming API that its StreamT interface does not declare)."""
    batches: AsyncIterator[Sequence[EventT]] = stream.take_events(size, within=within)  # type: ignore[attr-defined]
    return batches


@contextmanager
def processing(event: Any) -> Iterator[None]:
    """Make ``event`` the current event, so table writes go to its partition.

    Faust picks a table's changelog partition from the current event; inside a
    ``take_events`` batch that is the last event read, not the one written for.
    """
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


def delete_from_partition(table: Any, key: str, partition: int) -> None:
    """Delete ``key`` from a table outside any event: locally and by a tombstone on the changelog partition."""
    table.data.pop(key, None)
    table.send_changelog(partition, key, None, value_serializer="raw")
