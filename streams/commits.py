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

import faust
from faust.types import StreamT

from streams import faust_compat

log = logging.getLogger(__name__)
# A commit waits this long for the batches in flight; past it, it goes ahead (and says so).
BATCH_WAIT_S = 60.0
BUFFER_WAIT_S = 30.0
REBALANCE_POLL_S = 0.1


class CommitGate:
    def __init__(self) -> None:
        self.in_flight = 0
        self.committing = False
        self.changed = asyncio.Condition()
        # True while the group rebalances (set by guard_commits): timers wait it out.
        self.rebalancing: Callable[[], bool] = lambda: False

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


def guard_commits(
    app: faust.App,
    gate: CommitGate,
    after_commit: Callable[[bool], Awaitable[None]],
    committable: Callable[[], set[Any]],
) -> None:
    """Route every commit of Faust's consumer through the gate; ``committable()`` names the
    input partitions whose offsets may commit now (whole transactions only), and
    ``after_commit(begin)`` commits the transactions holding records that Faust's commit left open."""
    gate.rebalancing = lambda: bool(app.rebalancing)

    one_at_a_time = asyncio.Lock()  # a second commit would commit records whose offsets the first holds

    def gated_commit(commit: faust_compat.CommitFn) -> faust_compat.CommitFn:
        async def commit_whole_batches(topics: Any = None, start_new_transaction: bool = True) -> bool:
            async with one_at_a_time, gate.commit():
                # Table writes buffered by Faust join the open transactions before they commit.
                await faust_compat.flush_producer_buffer(app, time.monotonic() + BUFFER_WAIT_S, time.monotonic)
                allowed = committable()
                if topics is not None:
                    allowed = {tp for tp in allowed if tp in topics or tp.topic in topics}
                done = await commit(allowed, start_new_transaction=start_new_transaction)
                # Timers' records, where no new offsets came; none begun after the last commit of a stop.
                await after_commit(start_new_transaction)
                return done

        return commit_whole_batches

    faust_compat.wrap_commit(app.consumer, gated_commit)


@asynccontextmanager
async def gated(gate: CommitGate | None) -> AsyncIterator[None]:
    """Work outside any batch (a timer's) that no commit may split.

    It waits while the group rebalances: the transactions of the revoked partitions
    are gone, and the tables of the partitions assigned are still being recovered.
    """
    if gate is None:
        yield
        return
    while gate.rebalancing():
        await asyncio.sleep(REBALANCE_POLL_S)
    async with gate.batch():
        yield


@asynccontextmanager
async def processed(gate: CommitGate | None, stream: StreamT, events: list[Any]) -> AsyncIterator[None]:
    """Process a batch: with a gate, no commit lands inside, and the events are acknowledged on the way out.

    Unlike a timer's work, a batch does not wait out a rebalance: a revocation waits for
    the events in flight to be acknowledged (Faust's ``wait_empty``) before it aborts
    anything, so a batch held back until the rebalance ends would hold the revocation for
    as long as Faust lets it wait (a minute).
    """
    if gate is None:
        yield
        return
    async with gate.batch():
        yield
        await faust_compat.release(stream, events)
