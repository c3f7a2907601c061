"""The batch loop every agent runs: take a micro-batch, repair gaps, process, acknowledge.

    take_events -> GapRepair.fill -> (commit gate) handle -> GapRepair.done -> ack

The rule it keeps, in both guarantees: a batch whose outputs were not all
acknowledged by the broker is never committed. Faust's ``take_events`` acks a
batch in a ``finally`` around its ``yield``, so a body that raises would see its
inputs committed without their outputs. When ``handle`` raises (a send that
failed after the producer's retries, ``STREAMS_DELIVERY_TIMEOUT_S``: a broker
outage longer than that), the loop withholds the batch's acks and the worker
exits at once with ``EXIT_UNDELIVERED``, the same way a SIGKILL ends it. Its
supervisor (Kubernetes, systemd, the demo) starts it again and it resumes from
the last commit, before the failed batch: nothing is lost, some outputs may
come twice (at-least-once) or are aborted with their transaction (exactly-once).

With ``in_flight`` above one (the enrich agent), the loop takes the next batch
while the ones before are still in the model or awaiting their acknowledgements:
the model's thread is not left idle while the broker answers. Each batch runs as
a task, inside its own turn of the commit gate; its events are held past
``take_events``' acknowledgement (``faust_compat.hold``) and released only once
its outputs are acknowledged, so the rule above holds batch by batch. Faust
commits a partition only up to its first offset not yet done, so a later batch
finishing first never commits past an earlier one. The order its outputs are
published in is the handler's to keep (``EnrichAgent`` publishes in turn).

Which failures stop the worker (the failure policy, by kind): only failures of
the environment (``is_environment_failure``: the broker, the network, a delivery
timeout). Any other exception a handler raises is a failure of one of the
batch's records, which would fail the same way after every restart (a poison
pill): the loop handles the batch's events again one at a time, and each one
that still fails becomes a dead letter (``DeadLetter``, stage = the agent,
reason ``processing_failure``) while the rest go on. The partition moves on.
Handlers are idempotent on a repeat (the enrich agent's seen posts, the
fan-out's routed posts, the profiles' and trends' applied offsets), so the
outputs of the failed attempt are not counted twice.

Why exit rather than retry in place: after a delivery timeout the producer's
state, and in exactly-once its transaction, can no longer be trusted, and a
restart from the committed offsets is the one recovery that is the same in both
guarantees and is already proven by the kill tests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import orjson
from aiokafka.errors import KafkaError
from faust.types import StreamT

from streams import faust_compat
from streams.commits import CommitGate, processed
from streams.errors import InvalidPost, Reason, Stage
from streams.gaps import GapRepair
from streams.runtime import Runtime

log = logging.getLogger(__name__)
# EX_SOFTWARE: the worker stopped itself; a supervisor should start it again.
EXIT_UNDELIVERED = 70

Handler = Callable[[list[Any]], Awaitable[None]]
# Sends one event's dead letter for the exception it raised, and waits for its acknowledgement.
DeadLetter = Callable[[Any, Exception], Awaitable[None]]
# Record-size errors of the client: the record, not the broker, is at fault.
RECORD_ERRORS = ("MessageSizeTooLargeError", "RecordTooLargeError", "InvalidMessageError")


def is_environment_failure(exc: BaseException) -> bool:
    """True for a failure of the broker or the network, which a restart may cure; False for
    one of a record itself, which would fail the same way on every try."""
    if type(exc).__name__ in RECORD_ERRORS:
        return False
    return isinstance(exc, KafkaError | ConnectionError | TimeoutError | MemoryError)


def exit_now(code: int) -> NoReturn:
    """Leave without shutting down: a graceful stop would try to commit, and may hang on a dead broker."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)


@dataclass
class InFlight:
    """A batch taken: its events (to release or withhold) and the task that processes it."""

    events: list[Any]
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()


class BatchLoop:
    """Runs one agent's stream in micro-batches; ``on_failure`` ends the worker (replaced in tests)."""

    def __init__(
        self,
        name: str,
        repair: GapRepair,
        gate: CommitGate | None,
        on_failure: Callable[[int], None] = exit_now,
        in_flight: int = 1,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        self.name = name
        self.repair = repair
        self.gate = gate
        self.on_failure = on_failure
        self.in_flight = in_flight
        self.dead_letter = dead_letter
        self.failure_reported = False

    async def handled(self, batch: list[Any], handle: Handler) -> None:
        """``handle(batch)``; when it fails on a record rather than on the broker, the batch's
        events one at a time, each one that fails alone dead-lettered."""
        try:
            await handle(batch)
            return
        except Exception as exc:
            if self.dead_letter is None or is_environment_failure(exc):
                raise
            log.warning(
                "%s: a batch of %d event(s) failed on a record (%r); handling them one at a time",
                self.name, len(batch), exc,
            )  # fmt: skip
        for event in batch:
            try:
                await handle([event])
            except Exception as exc:
                if is_environment_failure(exc):
                    raise
                await self.dead_letter(event, exc)

    async def run(self, stream: StreamT, size: int, within: float, handle: Handler) -> None:
        task = asyncio.current_task()
        if task is not None:  # named in asyncio's debug log ("slow callback") and task dumps
            task.set_name(f"agent-{self.name}")
        if self.in_flight > 1:
            await self.run_overlapped(stream, size, within, handle)
            return
        async for taken in faust_compat.take_events(stream, size, within):
            events = list(taken)
            try:
                batch = await self.repair.fill(events)
                if not batch:  # every event a repeat, or of a partition that moved: nothing to process
                    continue
                async with processed(self.gate, stream, batch):
                    await self.handled(batch, handle)
                    await self.repair.done()
            except asyncio.CancelledError:
                faust_compat.withhold_acks(events)  # a stop mid-batch: its outputs may be incomplete
                raise
            except Exception as exc:
                faust_compat.withhold_acks(events)
                self.failed(events, exc)
                raise

    async def run_overlapped(self, stream: StreamT, size: int, within: float, handle: Handler) -> None:
        running: deque[InFlight] = deque()
        try:
            async for taken in faust_compat.take_events(stream, size, within):
                events = list(taken)
                faust_compat.hold(events)
                running.append(InFlight(events))
                try:
                    batch = await self.repair.fill(events)
                except Exception as exc:
                    self.give_up(events, exc, running)
                    raise
                if not batch:  # every event a repeat, or of a partition that moved (withheld by the repair)
                    running.pop()
                    await faust_compat.release(stream, events)
                    continue
                ranges = self.repair.take_handled()
                running[-1].task = task = asyncio.create_task(self.process(stream, events, batch, ranges, handle))
                task.add_done_callback(functools.partial(self.failed_now, events=events))
                while len(running) >= self.in_flight or (running and running[0].done):
                    await self.finished(running)
            while running:
                await self.finished(running)
        except asyncio.CancelledError:
            self.abandon(running)  # a stop mid-batch: their outputs may be incomplete
            raise

    async def process(
        self, stream: StreamT, events: list[Any], batch: list[Any], ranges: list[Any], handle: Handler
    ) -> None:
        async with processed(self.gate, stream, batch):
            await self.handled(batch, handle)
            await self.repair.mark_handled(ranges)
        await faust_compat.release(stream, events)

    async def finished(self, running: deque[InFlight]) -> None:
        """Wait for the oldest batch in flight; when it failed, give up on every batch in flight."""
        oldest = running[0]
        assert oldest.task is not None
        try:
            await asyncio.shield(oldest.task)  # cancelling the loop cancels the task in ``abandon``
        except Exception as exc:
            self.give_up(oldest.events, exc, running)
            raise
        running.popleft()

    def failed_now(self, task: asyncio.Task[None], events: list[Any]) -> None:
        """A batch in flight failed: stop at once, not when the next batch arrives (which, on a
        quiet stream, may be minutes while /health says ok)."""
        if not task.cancelled() and isinstance(task.exception(), Exception):
            faust_compat.withhold_acks(events)
            self.failed(events, task.exception())  # type: ignore[arg-type]  # checked just above

    def give_up(self, events: list[Any], exc: Exception, running: deque[InFlight]) -> None:
        self.abandon(running)
        self.failed(events, exc)

    @staticmethod
    def abandon(running: deque[InFlight]) -> None:
        for batch in running:
            if batch.task is not None:
                batch.task.cancel()
            faust_compat.withhold_acks(batch.events)
        running.clear()

    def failed(self, events: list[Any], exc: Exception) -> None:
        if self.failure_reported:  # by ``failed_now`` as the batch's task ended
            return
        self.failure_reported = True
        first, last = events[0].message, events[-1].message
        log.critical(
            "%s: a batch of %d event(s) (%s[%d]@%d .. %s[%d]@%d) failed: %r. Its outputs were not all "
            "acknowledged, so its offsets are not committed; the worker exits with code %d for its "
            "supervisor to restart it from the last commit",
            self.name, len(events), first.topic, first.partition, first.offset,
            last.topic, last.partition, last.offset, exc, EXIT_UNDELIVERED, exc_info=exc,
        )  # fmt: skip
        self.on_failure(EXIT_UNDELIVERED)


def batch_loop(runtime: Runtime, name: str, in_flight: int = 1) -> BatchLoop:
    """The batch loop of the agent ``name``, with a gap repair of its own."""
    repair = GapRepair(runtime.app, runtime.settings, runtime.metrics, runtime.rebalances, name)
    return BatchLoop(name, repair, runtime.commit_gate, in_flight=in_flight, dead_letter=dead_letters(runtime, name))


def dead_letters(runtime: Runtime, name: str) -> DeadLetter:
    """The agent ``name``'s dead letters for events it failed on for good (``BatchLoop.handled``)."""
    stage = Stage(name) if name in Stage.__members__.values() else Stage.PUBLISH

    async def send(event: Any, exc: Exception) -> None:
        message = event.message
        log.error(
            "%s: %s[%d]@%d fails on every try (%r): dead-lettered, the partition moves on",
            name, message.topic, message.partition, message.offset, exc,
        )  # fmt: skip
        runtime.metrics.records_failed.labels(name).inc()
        error = InvalidPost(Reason.PROCESSING_FAILURE, f"{name} failed on this record: {exc!r}"[:1000], stage)
        record = runtime.dead_letter_for(event, error)
        with faust_compat.processing(event):  # exactly-once: in its source partition's transaction
            pending = await runtime.topics[runtime.settings.topic_deadletter].send(
                key=event.key, value=orjson.dumps(record)
            )
        await pending

    return send
