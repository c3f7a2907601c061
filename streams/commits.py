"""Exactly-once needs each transaction to hold whole batches.

In exactly-once mode Faust sends every output into an open Kafka transaction and
commits it, with the input offsets acknowledged so far, on a timer. The timer
knows nothing of the agents: a commit that lands while a batch is half done
carries outputs whose input offsets are not yet acknowledged, and a crash before
the next commit makes those inputs run again: their outputs come twice, even to
a read_committed consumer. Table writes waiting in Faust's producer buffer miss
the transaction of the records they belong with.

``CommitGate`` closes both holes: agents process each batch inside
``processed``, which acknowledges the batch's events before leaving; a commit
waits until no batch is in flight (and holds new ones back meanwhile), then
hands the buffered table writes to their transactions before committing.
In at-least-once mode none of this is needed and nothing is installed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from faust.types import StreamT

log = logging.getLogger(__name__)
# A commit waits this long for the batches in flight; past it, it goes ahead (and says so).
BATCH_WAIT_S = 60.0
BUFFER_WAIT_S = 30.0


class CommitGate:
    def __init__(self) -> None:
        self.in_flight = 0
        self.committing = False
        self.changed = asyncio.Condition()

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        async with self.changed:
            await self.changed.wait_for(lambda: not self.committing)
            self.in_flight += 1
        try:
            yield
        finally:
            async with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()

    @asynccontextmanager
    async def commit(self) -> AsyncIterator[None]:
        async with self.changed:
            self.committing = True
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: self.in_flight == 0), BATCH_WAIT_S)
            except TimeoutError:
                log.warning("committing with %d batch(es) still in flight after %ss", self.in_flight, BATCH_WAIT_S)
        try:
            yield
        finally:
            async with self.changed:
                self.committing = False
                self.changed.notify_all()


def guard_commits(app: Any, gate: CommitGate) -> None:
    """Route every commit of Faust's consumer through the gate."""
    consumer = app.consumer
    commit: Callable[..., Awaitable[bool]] = consumer.commit

    async def gated_commit(*args: Any, **kwargs: Any) -> bool:
        async with gate.commit():
            await flush_table_writes(app)
            return await commit(*args, **kwargs)

    consumer.commit = gated_commit


async def flush_table_writes(app: Any) -> None:
    """Hand the table writes buffered by Faust to the producer (into the open transactions)."""
    buffer = app.producer.buffer
    deadline = time.monotonic() + BUFFER_WAIT_S
    while buffer.size and time.monotonic() < deadline:
        await buffer.flush()
        await asyncio.sleep(0)


@asynccontextmanager
async def gated(gate: CommitGate | None) -> AsyncIterator[None]:
    """Work outside any batch (a timer's) that no commit may split."""
    if gate is None:
        yield
        return
    async with gate.batch():
        yield


@asynccontextmanager
async def processed(gate: CommitGate | None, stream: StreamT, events: list[Any]) -> AsyncIterator[None]:
    """Process a batch: with a gate, no commit lands inside, and the events are acknowledged on the way out."""
    async with gated(gate):
        yield
        if gate is not None:
            for event in events:
                if hasattr(event, "ack"):  # a record read back from the broker is not Faust's to acknowledge
                    await stream.ack(event)


def anchor_output_topics(runtime: Any) -> None:
    """In exactly-once mode, subscribe to the topics the app only writes, and drop what comes.

    Faust picks a record's transaction from its partition in the consumer's metadata; a
    topic the app does not read is not there, and its records are sent outside any
    transaction: visible at once, and sent again after a crash. Reading them puts them
    in the metadata (and in the assignor's groups), so their records join the
    transaction of their partition like every other output.
    """
    settings = runtime.settings
    written = [settings.topic_flagged, settings.topic_deadletter, settings.topic_trends, settings.topic_alerts]
    if "profiles" in settings.agent_names:
        written.append(settings.topic_profiles)
    topics = [runtime.topics.get(name) or runtime.app.topic(name, value_serializer="raw") for name in written]
    source = runtime.app.topic(*[t.get_topic_name() for t in topics], value_serializer="raw", key_serializer="raw")

    @runtime.app.agent(source, name="exactly-once-anchor")
    async def anchor(stream: StreamT) -> None:
        async for _ in stream.events():
            pass
