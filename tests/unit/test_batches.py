"""The batch loop: a batch whose outputs were not all acknowledged is never committed."""

from __future__ import annotations

import asyncio
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


def events(*offsets: int) -> list[Event]:
    return [Event(Message(RAW.topic, RAW.partition, o, 0.0, 0, None, b"k", b"v", None, tp=RAW)) for o in offsets]


def run(stream: FakeStream, fail_on: int | None, gate: CommitGate | None = None) -> list[int]:
    exits: list[int] = []
    loop = BatchLoop("test", NoRepair(), gate, on_failure=exits.append)  # type: ignore[arg-type]

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


@pytest.mark.parametrize("gate", [None, CommitGate()], ids=["at_least_once", "exactly_once"])
def test_batches_that_succeed_are_acknowledged(gate: CommitGate | None) -> None:
    stream = FakeStream([events(0, 1), events(2, 3)])
    assert run(stream, None, gate if gate is None else CommitGate()) == []
    assert stream.committable == [0, 1, 2, 3]


@pytest.mark.parametrize("exactly_once", [False, True])
def test_a_failed_batch_is_never_committed_and_the_worker_exits(exactly_once: bool) -> None:
    stream = FakeStream([events(0, 1), events(2, 3), events(4, 5)])
    exits = run(stream, fail_on=3, gate=CommitGate() if exactly_once else None)
    assert stream.committable == [0, 1]  # take_events acked 2 and 3 in its finally: withheld
    assert exits == [EXIT_UNDELIVERED]


def test_a_cancelled_batch_is_not_committed_either() -> None:
    stream = FakeStream([events(0, 1)])
    loop = BatchLoop("test", NoRepair(), None, on_failure=lambda code: None)  # type: ignore[arg-type]

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

    loop = BatchLoop("test", DropsAll(), None, on_failure=lambda code: None)  # type: ignore[arg-type]
    asyncio.run(loop.run(FakeStream([events(0, 1)]), 10, 0.1, handle))  # type: ignore[arg-type]
    assert seen == []
