"""Records Faust skips around a rebalance, read back from the broker.

faust-streaming 0.15 can lose records when a rebalance lands while a fetch is in
flight: the stream drops the records it holds when the flow stops (they belong
to the old generation), the consumer has already moved its read offset past
them, and after the seek back to the committed offset it drops the re-fetched
copies as already read. The stream then goes on from a later offset, and once
the jump is taken for a gap the committed offset passes the lost records.

Every agent passes its events through ``GapRepair.fill``. It keeps, always, the
next offset expected of each partition in the current generation, and drops a
record delivered again below it (processed already: counted, not repeated). Shortly after a
rebalance it checks that each partition's offsets follow on from the committed
offset (asked of the broker when Faust's consumer has forgotten it; for a partition
never committed, the first offset the log holds: the records skipped can be the
very first ones); where they jump, it reads the missing records straight from the broker
(an independent consumer, no group) and puts them in order before the event
that jumped, and, once the batch is done, tells Faust's consumer the range is
handled so its commits can pass it. Transaction markers and aborted records
leave real gaps: those reads come back empty and cost one fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.types import TP

from streams import faust_compat
from streams.metrics import Metrics
from streams.runtime import RebalanceClock
from streams.settings import Settings

log = logging.getLogger(__name__)
# The race happens while the flow restarts; a minute covers the fetches in flight then.
CHECK_AFTER_REBALANCE_S = 60.0
FETCH_TIMEOUT_S = 30.0
# A question to the broker is asked this many times, this far apart, before the batch fails.
BROKER_ATTEMPTS = 5
BROKER_RETRY_S = 1.0
T = TypeVar("T")


@dataclass(frozen=True)
class RefetchedMessage:
    topic: str
    partition: int
    offset: int
    timestamp: float  # seconds, as on Faust's messages

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(frozen=True)
class RefetchedEvent:
    """A record read back from the broker, shaped like the Faust events the agents read."""

    key: bytes | None
    value: bytes | None
    message: RefetchedMessage


class GapRepair:
    def __init__(
        self, app: faust.App, settings: Settings, metrics: Metrics, rebalances: RebalanceClock, name: str
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.rebalances = rebalances
        self.name = name  # the agent, for the log
        self.generation: int | None = None
        self.next_offset: dict[TP, int] = {}
        self.handled: list[tuple[TP, int, int]] = []  # ranges read back, to hand to Faust after the batch

    async def fill(self, events: list[Any]) -> list[Any]:
        """``events`` with the records skipped before any of them put back in place, and
        without the records delivered again in this generation (already processed here:
        a second pass would publish its outputs twice, which exactly-once cannot hide)
        or of a partition no longer assigned (its new owner processes them, and in
        exactly-once mode this worker's transaction for it is gone)."""
        app = self.app
        if app.consumer_generation_id != self.generation:
            self.generation = app.consumer_generation_id
            self.next_offset.clear()
        checking = time.time() - self.rebalances.started_at <= CHECK_AFTER_REBALANCE_S
        assigned = app.consumer.assignment()
        out: list[Any] = []
        for event in events:
            tp = event.message.tp
            if tp not in assigned:  # taken before a rebalance moved its partition: the new owner reads it
                faust_compat.withhold_acks([event])
                self.metrics.records_revoked.labels(tp.topic).inc()
                continue
            offset = event.message.offset
            expected = self.next_offset.get(tp)
            if expected is not None and offset < expected:
                # Processed and acknowledged already: a second acknowledgement of the same
                # offset would only confuse the consumer's count of what may commit.
                faust_compat.withhold_acks([event])
                self.metrics.records_repeated.labels(tp.topic).inc()
                continue
            if checking:
                if expected is None:
                    expected = faust_compat.committed_offset(app.consumer, tp)
                if expected is None:  # not known to Faust's consumer: ask the broker
                    expected = await asked_again("the committed offset", partial(resume_offset, self.settings, tp))
                if expected is not None and offset > expected:
                    out += await self.read_back(tp, expected, offset)
            elif expected is not None and offset > expected:
                # Transaction markers and aborted records between two records read in order.
                # Faust notes such a gap itself, except after offset 0 (its last-read offset
                # then counts as none): unnoted, the partition's commits would stop there.
                self.handled.append((tp, expected, offset - 1))
            out.append(event)
            self.next_offset[tp] = max(offset + 1, expected or 0)
        return out

    async def read_back(self, tp: TP, start: int, end: int) -> list[RefetchedEvent]:
        records, reached = await asked_again("a read back", partial(fetch_range, self.settings, tp, start, end))
        if reached > start:  # what was not read back stays uncommitted: a restart reads it again
            self.handled.append((tp, start, min(reached, end) - 1))
        if records:
            self.metrics.records_read_back.labels(tp.topic).inc(len(records))
            log.warning(
                "%s: offsets %d-%d of %s[%d] were skipped by the consumer: %d record(s) read back from the broker",
                self.name, start, end - 1, tp.topic, tp.partition, len(records),
            )  # fmt: skip
        return records

    async def done(self) -> None:
        """The batch is processed: Faust may commit past the ranges read back."""
        await self.mark_handled(self.take_handled())

    def take_handled(self) -> list[tuple[TP, int, int]]:
        """The ranges the last ``fill`` read back or found empty, for a batch that finishes later."""
        handled, self.handled = self.handled, []
        return handled

    async def mark_handled(self, ranges: list[tuple[TP, int, int]]) -> None:
        for tp, first, last in ranges:
            await faust_compat.add_gap(self.app.consumer, tp, first, last)


async def asked_again(what: str, ask: Callable[[], Awaitable[T]]) -> T:
    """``ask()``, asked again when it fails: a fresh client can meet a passing state of the
    broker (a metadata response that lists no broker while the broker's registration is
    renewed; a coordinator moving) that would otherwise fail the batch and stop the worker."""
    for attempt in range(1, BROKER_ATTEMPTS):
        try:
            return await ask()
        except Exception as exc:  # noqa: BLE001 - aiokafka raises AssertionError for a client with no broker
            log.warning("%s failed (%r); asking the broker again in %ss (%d/%d)",
                        what, exc, BROKER_RETRY_S, attempt, BROKER_ATTEMPTS)  # fmt: skip
            await asyncio.sleep(BROKER_RETRY_S)
    return await ask()  # the last attempt's failure fails the batch


async def resume_offset(settings: Settings, tp: TP) -> int:
    """Where the group resumes ``tp``: its committed offset on the broker or, with none, the
    first offset the log holds (``auto_offset_reset=earliest``). Faust's consumer forgets a
    partition's committed offset at each revocation until it seeks again."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=settings.app_id,
        enable_auto_commit=False,
        **settings.connection.aiokafka(),
    )
    await consumer.start()  # no subscription: it fetches offsets, it never joins the group
    try:
        partition = TopicPartition(tp.topic, tp.partition)
        committed = await consumer.committed(partition)
        if committed is not None:
            return int(committed)
        return int((await consumer.beginning_offsets([partition]))[partition])
    finally:
        await consumer.stop()


async def fetch_range(settings: Settings, tp: TP, start: int, end: int) -> tuple[list[RefetchedEvent], int]:
    """Records of ``tp`` from offset ``start`` up to (not including) ``end``, and the offset reached."""
    isolation = "read_committed" if settings.guarantee == "exactly_once" else "read_uncommitted"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **settings.connection.aiokafka(),
    )
    await consumer.start()
    records: list[RefetchedEvent] = []
    try:
        partition = TopicPartition(tp.topic, tp.partition)
        consumer.assign([partition])
        consumer.seek(partition, start)
        deadline = time.monotonic() + FETCH_TIMEOUT_S
        while await consumer.position(partition) < end and time.monotonic() < deadline:
            batch = await consumer.getmany(partition, timeout_ms=500)
            for record in batch.get(partition, []):
                if record.offset < end:
                    message = RefetchedMessage(tp.topic, tp.partition, record.offset, record.timestamp / 1000)
                    records.append(RefetchedEvent(record.key, record.value, message))
        reached = await consumer.position(partition)
        if reached < end:
            log.error("read back %s[%d] only up to offset %d of %d within %ss", tp.topic, tp.partition, reached, end,
                      FETCH_TIMEOUT_S)  # fmt: skip
    finally:
        await consumer.stop()
    return records, reached
