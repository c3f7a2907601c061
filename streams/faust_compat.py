"""Every faust-streaming internal the project relies on, in one place.

The project needs a few things Faust has no public API for: the offset a
partition resumed from (gap repair), marking a range as handled (gap repair),
routing every commit through a gate (exactly-once), draining the producer's
buffer of table writes (exactly-once), the current event that picks a table
write's changelog partition, deleting a table key by partition, batching with
``take_events``, and keeping a failed batch's offsets from being committed.

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
from typing import Any

import faust
import faust.streams
from faust.assignor.partition_assignor import PartitionAssignor
from faust.tables.base import Collection
from faust.transport.consumer import Consumer, TransactionManager
from faust.types import TP, EventT, StreamT

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
    (faust.streams, "_current_event", "table writes go to the partition of the event they belong to"),
    (faust.Stream, "take_events", "agents read micro-batches of events"),
    (faust.Stream, "ack", "exactly-once acknowledges a batch inside the commit gate"),
    (Collection, "send_changelog", "expired de-duplication ids leave the changelog"),
    (Collection, "data", "tables are scanned for expiry and reindexing"),
    (TransactionManager, "send", "exactly-once sends join the transaction of their input"),
    (TransactionManager, "transactional_id_format", "exactly-once names transactions as Faust does"),
    (faust.App, "_on_agent_error", "agent crashes are counted and reported by /health"),
    (PartitionAssignor, "_topic_groups", "exactly-once finds the topic group of an input partition"),
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
    for name in ("_committed_offset", "_gap"):
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


# --- producer -------------------------------------------------------------------------


async def flush_producer_buffer(app: faust.App, until: float, clock: Callable[[], float]) -> None:
    """Hand the writes Faust buffered (table changelogs) to the producer, until empty or ``until``."""
    buffer = app.producer.buffer
    while buffer.size and clock() < until:
        await buffer.flush()
        await asyncio.sleep(0)


# --- exactly-once transactions ---------------------------------------------------------


def current_source() -> TP | None:
    """The partition of the event being processed (``processing``, or the stream's own), if any."""
    ref = faust.streams._current_event.get(None)
    event = ref() if ref is not None else None
    message = getattr(event, "message", None)
    return TP(message.topic, message.partition) if message is not None else None


def send_in_source_transactions(app: faust.App) -> None:
    """Make every exactly-once send join the transaction of the input partition it was made for.

    Faust picks a record's transaction from the record's *own* partition (its topic's
    group and partition), but starts transactional producers only for the partitions
    the worker is assigned. A worker that writes to a partition of a repartition or
    output topic owned by another worker has no producer for it (``ProducerSendError:
    No transaction producer found``). Faust's rule stays where the worker can follow
    it: all records for one output partition then go through one producer, in the order
    they were sent (trend watermarks rely on that). Where it cannot, the record joins
    the transaction of the input partition it was made for (the current event's, set
    by ``processing``), whose offsets Faust commits in that same transaction: Kafka
    Streams' rule of one producer per input partition.
    """
    manager: Any = app.consumer.transactions  # Any: its producer's transaction table is undeclared
    assignor: Any = app.assignor  # Any: its topic groups are undeclared
    faust_send = manager.send

    async def send(
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        owned = manager.producer._transaction_producers
        p = manager.consumer.key_partition(topic, key, partition)
        if transaction_of(topic, p) in owned:  # Faust's own rule, when this worker can follow it
            return await faust_send(topic, key, value, partition, timestamp, headers)
        source = current_source()
        tid = transaction_of(source.topic, source.partition) if source is not None else None
        if tid in owned:
            return await manager.producer.send(topic, key, value, p, timestamp, headers, transactional_id=tid)
        return await faust_send(topic, key, value, partition, timestamp, headers)  # Faust's error says why

    def transaction_of(topic: str, partition: int | None) -> str | None:
        group = assignor._topic_groups.get(topic)
        return None if group is None or partition is None else f"{app.conf.id}-{group}-{partition}"

    manager.send = send


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
