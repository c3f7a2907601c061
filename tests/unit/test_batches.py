"""The batch loop: a batch whose outputs were not all acknowledged is never committed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP
from faust.types.tuples import Message

from streams.batches import EXIT_UNDELIVERED, BatchLoop
from streams.commits import CommitGate

RAW = TP("posts.raw", 0)


@dataclass
class Event:
    message: Message
    key: bytes | None = b"k"
    value: bytes | None = b"v"

    def ack(self) -> bool:
        return True


@dataclass
class FakeStream:
    """Faust's take_events, as far as acking goes: every event of a batch acked in a finally."""

    batches: list[list[Event]]
    committable: list[int] = field(default_factory=list)

    async def take_events(self, size: int, within: float) -> AsyncIterator[Sequence[Event]]:
        for batch in self.batches:
            try:
                yield batch
            finally:
                for event in batch:
                    await self.ack(event)

    async def ack(self, event: Event) -> bool:
        # Message.ack answers True only the first time: then the consumer counts the offset.
        if event.message.ack(self):  # type: ignore[arg-type]
            self.committable.append(event.message.offset)
        return True


class NoRepair:
    async def fill(self, events: list[Any]) -> list[Any]:
        return events

    async def done(self) -> None:
        pass

    def take_handled(self) -> list[Any]:
        return []

    async def mark_handled(self, ranges: list[Any]) -> None:
        pass


def events(*offsets: int) -> list[Event]:
    taken = [Event(Message(RAW.topic, RAW.partition, o, 0.0, 0, None, b"k", b"v", None, tp=RAW)) for o in offsets]
    for event in taken:
        event.message.incref()  # as Faust's conductor does, once for each stream that reads the message
    return taken


def run(stream: FakeStream, fail_on: int | None, gate: CommitGate | None = None, in_flight: int = 1) -> list[int]:
    exits: list[int] = []
    loop = BatchLoop("test", NoRepair(), gate, on_failure=exits.append, in_flight=in_flight)  # type: ignore[arg-type]

    async def handle(batch: list[Any]) -> None:
        if any(e.message.offset == fail_on for e in batch):
            raise TimeoutError("send timed out after the delivery timeout")

    async def main() -> None:
        await loop.run(stream, 10, 0.1, handle)  # type: ignore[arg-type]

    if fail_on is None:
        asyncio.run(main())
    else:
        with pytest.raises(TimeoutError):
            asyncio.run(main())
    return exits


IN_FLIGHT = pytest.mark.parametrize("in_flight", [1, 2, 3], ids=["one_at_a_time", "two_in_flight", "three"])


@IN_FLIGHT
@pytest.mark.parametrize("exactly_once", [False, True], ids=["at_least_once", "exactly_once"])
def test_batches_that_succeed_are_acknowledged(exactly_once: bool, in_flight: int) -> None:
    stream = FakeStream([events(0, 1), events(2, 3), events(4, 5)])
    assert run(stream, None, CommitGate() if exactly_once else None, in_flight) == []
    assert sorted(stream.committable) == [0, 1, 2, 3, 4, 5]


@IN_FLIGHT
@pytest.mark.parametrize("exactly_once", [False, True], ids=["at_least_once", "exactly_once"])
def test_a_failed_batch_is_never_committed_and_the_worker_exits(exactly_once: bool, in_flight: int) -> None:
    stream = FakeStream([events(0, 1), events(2, 3), events(4, 5)])
    exits = run(stream, fail_on=3, gate=CommitGate() if exactly_once else None, in_flight=in_flight)
    # take_events acked 2 and 3 in its finally: withheld. A batch after it may have finished
    # first, but Faust commits a partition only up to its first offset not done.
    assert committed_prefix(stream.committable) == [0, 1]
    assert exits == [EXIT_UNDELIVERED]


def committed_prefix(committable: list[int]) -> list[int]:
    done, prefix = set(committable), list[int]()
    while len(prefix) in done:
        prefix.append(len(prefix))
    return prefix


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at_least_once", "exactly_once"])
def test_in_flight_the_next_batch_is_taken_before_the_last_is_done(exactly_once: bool) -> None:
    # The first batch waits (its acknowledgements, say) until the second has started:
    # one at a time, that would never happen.
    stream = FakeStream([events(0, 1), events(2, 3)])
    second_started = asyncio.Event()
    done: list[int] = []
    counted_before_done: list[int] = []

    async def handle(batch: list[Any]) -> None:
        first = batch[0].message.offset
        if first == 0:
            await asyncio.wait_for(second_started.wait(), 5)
        else:
            second_started.set()
        done.append(first)
        counted_before_done.extend(e.message.offset for e in batch if e.message.offset in stream.committable)

    exits: list[int] = []
    gate = CommitGate() if exactly_once else None
    loop = BatchLoop("test", NoRepair(), gate, on_failure=exits.append, in_flight=2)  # type: ignore[arg-type]
    asyncio.run(loop.run(stream, 10, 0.1, handle))  # type: ignore[arg-type]
    assert exits == []
    assert done == [2, 0]
    assert counted_before_done == []  # take_events had let go of the first batch long before

    assert sorted(stream.committable) == [0, 1, 2, 3]


def test_in_flight_a_failure_withholds_every_batch_in_flight() -> None:
    stream = FakeStream([events(0, 1), events(2, 3), events(4, 5)])
    exits: list[int] = []
    second_started = asyncio.Event()

    async def handle(batch: list[Any]) -> None:
        if batch[0].message.offset == 0:
            await second_started.wait()
            raise TimeoutError("send timed out after the delivery timeout")
        second_started.set()
        await asyncio.sleep(10)  # still in flight when the first fails

    loop = BatchLoop("test", NoRepair(), None, on_failure=exits.append, in_flight=2)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        asyncio.run(loop.run(stream, 10, 0.1, handle))  # type: ignore[arg-type]
    assert stream.committable == []
    assert exits == [EXIT_UNDELIVERED]


@pytest.mark.parametrize("in_flight", [1, 2])
def test_a_cancelled_batch_is_not_committed_either(in_flight: int) -> None:
    stream = FakeStream([events(0, 1)])
    loop = BatchLoop("test", NoRepair(), None, on_failure=lambda code: None, in_flight=in_flight)  # type: ignore[arg-type]

    async def handle(batch: list[Any]) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(loop.run(stream, 10, 0.1, handle))  # type: ignore[arg-type]
    assert stream.committable == []


def test_a_batch_the_repair_empties_is_not_handed_to_the_agent() -> None:
    # Every event of it was of a partition that moved away (or a repeat): agents that look
    # at the batch's last event (its transaction) must never see an empty one.
    class DropsAll(NoRepair):
        async def fill(self, events: list[Any]) -> list[Any]:
            return []

    seen: list[list[Any]] = []

    async def handle(batch: list[Any]) -> None:
        seen.append(batch)

    for in_flight in (1, 2):
        loop = BatchLoop("test", DropsAll(), None, on_failure=lambda code: None, in_flight=in_flight)  # type: ignore[arg-type]
        asyncio.run(loop.run(FakeStream([events(0, 1)]), 10, 0.1, handle))  # type: ignore[arg-type]
    assert seen == []


def poisoned_run(stream: FakeStream, poison: int, in_flight: int) -> tuple[list[int], list[int], list[int]]:
    """The loop over ``stream`` whose handler raises (like a bug on one record) on any batch
    holding offset ``poison``: (exits, offsets handled, offsets dead-lettered)."""
    exits: list[int] = []
    handled: list[int] = []
    dead: list[int] = []

    async def dead_letter(event: Any, exc: Exception) -> None:
        assert isinstance(exc, ValueError)
        dead.append(event.message.offset)

    async def handle(batch: list[Any]) -> None:
        if any(e.message.offset == poison for e in batch):
            raise ValueError("year 10000 is out of range")
        handled.extend(e.message.offset for e in batch)

    loop = BatchLoop("test", NoRepair(), None, exits.append, in_flight, dead_letter)  # type: ignore[arg-type]
    asyncio.run(loop.run(stream, 10, 0.1, handle))  # type: ignore[arg-type]
    return exits, handled, dead


@IN_FLIGHT
def test_a_record_that_fails_on_every_try_is_dead_lettered_and_the_partition_moves_on(in_flight: int) -> None:
    stream = FakeStream([events(0, 1, 2), events(3, 4), events(5)])
    exits, handled, dead = poisoned_run(stream, poison=1, in_flight=in_flight)
    assert exits == [] and dead == [1]
    assert sorted(handled) == [0, 2, 3, 4, 5]  # its batch-mates handled one at a time, the rest as batches
    assert sorted(stream.committable) == [0, 1, 2, 3, 4, 5]


@IN_FLIGHT
def test_a_broker_failure_is_not_taken_for_a_poison_pill(in_flight: int) -> None:
    from aiokafka.errors import KafkaTimeoutError, RequestTimedOutError

    from streams.batches import is_environment_failure

    assert is_environment_failure(KafkaTimeoutError()) and is_environment_failure(RequestTimedOutError())
    assert is_environment_failure(ConnectionResetError()) and is_environment_failure(TimeoutError())
    assert not is_environment_failure(ValueError("year 10000 is out of range"))
    assert not is_environment_failure(KeyError("id"))
    from aiokafka.errors import MessageSizeTooLargeError

    assert not is_environment_failure(MessageSizeTooLargeError())  # the record, not the broker
    stream = FakeStream([events(0, 1), events(2, 3)])
    assert run(stream, fail_on=3, in_flight=in_flight) == [EXIT_UNDELIVERED]  # TimeoutError: still exits


def test_a_batch_in_flight_that_fails_stops_the_worker_without_waiting_for_the_next_batch() -> None:
    failed_at: list[float] = []
    exits: list[int] = []

    def on_failure(code: int) -> None:
        failed_at.append(asyncio.get_running_loop().time())
        exits.append(code)

    class QuietStream(FakeStream):
        async def take_events(self, size: int, within: float) -> AsyncIterator[Sequence[Event]]:
            yield events(0, 1)
            await asyncio.sleep(3)  # a quiet stream: the next batch comes much later

    async def handle(batch: list[Any]) -> None:
        await asyncio.sleep(0.05)
        raise TimeoutError("send timed out after the delivery timeout")

    async def main() -> float:
        started = asyncio.get_running_loop().time()
        loop = BatchLoop("test", NoRepair(), None, on_failure=on_failure, in_flight=2)  # type: ignore[arg-type]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loop.run(QuietStream([]), 10, 0.1, handle), 1.0)  # type: ignore[arg-type]
        return started

    started = asyncio.run(main())
    assert exits == [EXIT_UNDELIVERED] and failed_at[0] - started < 0.5
