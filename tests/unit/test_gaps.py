"""GapRepair: records the consumer skipped after a rebalance are put back in order."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP
from faust.types.tuples import Message

from streams import gaps
from streams.gaps import GapRepair, RefetchedEvent, RefetchedMessage
from streams.metrics import Metrics
from streams.runtime import RebalanceClock
from streams.settings import Settings

RAW = TP("posts.raw", 0)


@dataclass
class FakeConsumer:
    _committed_offset: dict[TP, int] = field(default_factory=lambda: {RAW: 10})
    gaps: list[tuple[TP, int, int]] = field(default_factory=list)
    assigned: set[TP] = field(default_factory=lambda: {RAW})

    def assignment(self) -> set[TP]:
        return self.assigned

    async def _add_gap(self, tp: TP, first: int, last: int) -> None:
        self.gaps.append((tp, first, last))


@dataclass
class FakeApp:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    consumer_generation_id: int = 1


@dataclass
class FaustEvent:
    message: Message


def repair_for(app: FakeApp, clock: RebalanceClock | None = None) -> GapRepair:
    clock = clock or RebalanceClock(time.time())
    return GapRepair(app, Settings.from_env({}), Metrics(), clock, "enrich")  # type: ignore[arg-type]


def event(offset: int) -> RefetchedEvent:
    return RefetchedEvent(b"k", b"v", RefetchedMessage(RAW.topic, RAW.partition, offset, 0.0))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    asked: list[tuple[int, int]] = []

    async def fetch_range(settings: Settings, tp: TP, start: int, end: int) -> tuple[list[RefetchedEvent], int]:
        asked.append((start, end))
        return [event(offset) for offset in range(start, end)], end

    monkeypatch.setattr(gaps, "fetch_range", fetch_range)
    return asked


def offsets(events: list[Any]) -> list[int]:
    return [e.message.offset for e in events]


def test_a_jump_after_the_committed_offset_is_read_back_in_order(broker: list[tuple[int, int]]) -> None:
    app = FakeApp()
    repair = repair_for(app)
    filled = asyncio.run(repair.fill([event(10), event(11), event(15), event(16)]))
    assert offsets(filled) == [10, 11, 12, 13, 14, 15, 16]
    assert broker == [(12, 15)]
    asyncio.run(repair.done())
    assert app.consumer.gaps == [(RAW, 12, 14)]  # Faust may now commit past them


def test_the_first_event_is_checked_against_the_committed_offset(broker: list[tuple[int, int]]) -> None:
    filled = asyncio.run(repair_for(FakeApp()).fill([event(13)]))
    assert offsets(filled) == [10, 11, 12, 13]


def test_repeats_in_a_generation_are_dropped_and_quiet_times_are_not_checked(broker: list[tuple[int, int]]) -> None:
    clock = RebalanceClock(time.time())
    app = FakeApp()
    repair = repair_for(app, clock)
    # A record delivered again in one generation was processed already: a second pass would
    # publish its outputs twice (dead letters have no id to deduplicate by).
    assert offsets(asyncio.run(repair.fill([event(10), event(11), event(10), event(12)]))) == [10, 11, 12]
    assert offsets(asyncio.run(repair.fill([event(11), event(13)]))) == [13]
    clock.mark(time.time() - gaps.CHECK_AFTER_REBALANCE_S - 1)
    assert offsets(asyncio.run(repair.fill([event(20)]))) == [20]  # long after the rebalance: no read-back
    assert offsets(asyncio.run(repair.fill([event(19), event(21)]))) == [21]  # repeats are still dropped
    app.consumer_generation_id = 2  # a new generation: the consumer may start again from the commit
    assert offsets(asyncio.run(repair.fill([event(15)]))) == [15]
    assert broker == []


def test_a_jump_between_records_read_in_order_is_handed_to_faust_as_a_gap(broker: list[tuple[int, int]]) -> None:
    # Transaction markers after offset 0: Faust notes no gap there (its last-read offset 0
    # counts as none), and its commits of the partition would stop at offset 1 for good.
    app = FakeApp()
    repair = repair_for(app, RebalanceClock(time.time() - gaps.CHECK_AFTER_REBALANCE_S - 1))
    assert offsets(asyncio.run(repair.fill([event(0), event(3), event(4)]))) == [0, 3, 4]
    asyncio.run(repair.done())
    assert app.consumer.gaps == [(RAW, 1, 2)] and broker == []


def test_a_stale_offset_from_before_a_rebalance_reads_nothing_back(broker: list[tuple[int, int]]) -> None:
    clock = RebalanceClock(time.time() - gaps.CHECK_AFTER_REBALANCE_S - 1)
    repair = repair_for(FakeApp(), clock)
    asyncio.run(repair.fill([event(10)]))
    asyncio.run(repair.fill([event(50)]))  # quiet time: the offsets are followed, nothing is checked
    clock.mark(time.time())  # a rebalance begins; the generation has not changed yet
    assert offsets(asyncio.run(repair.fill([event(51)]))) == [51]
    assert broker == []


def test_records_of_a_partition_revoked_while_they_waited_are_left_to_its_new_owner(
    broker: list[tuple[int, int]],
) -> None:
    app = FakeApp()
    repair = repair_for(app, RebalanceClock(time.time() - gaps.CHECK_AFTER_REBALANCE_S - 1))
    assert offsets(asyncio.run(repair.fill([event(10), event(11)]))) == [10, 11]
    app.consumer.assigned = set()  # a rebalance moved the partition away
    waiting = [
        FaustEvent(Message(RAW.topic, RAW.partition, o, 0.0, 0, None, b"k", b"v", None, tp=RAW)) for o in (12, 13)
    ]
    assert asyncio.run(repair.fill(waiting)) == []
    # Never acknowledged: no commit of this worker passes them (its transaction for them is gone).
    assert all(e.message.acked for e in waiting)


def test_a_partition_never_committed_is_checked_from_the_first_offset_of_its_log(
    broker: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebalance before the first commit: the consumer may have jumped over the very first records.
    async def resume_offset(settings: Settings, tp: TP) -> int:
        return 0  # no commit on the broker either: the log's first offset

    monkeypatch.setattr(gaps, "resume_offset", resume_offset)
    app = FakeApp()
    app.consumer._committed_offset = {}
    repair = repair_for(app)
    assert offsets(asyncio.run(repair.fill([event(62), event(63)]))) == [*range(62), 62, 63]
    assert broker == [(0, 62)]


def test_a_failed_read_back_is_asked_again_before_the_batch_fails(
    broker: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiokafka's fresh client fails with AssertionError when a metadata response listed no broker.
    fetch_range = gaps.fetch_range
    failures = iter([AssertionError("Did we not perform bootstrap?")])

    async def flaky_fetch_range(settings: Settings, tp: TP, start: int, end: int) -> tuple[list[RefetchedEvent], int]:
        if (failure := next(failures, None)) is not None:
            raise failure
        return await fetch_range(settings, tp, start, end)

    monkeypatch.setattr(gaps, "fetch_range", flaky_fetch_range)
    monkeypatch.setattr(gaps, "BROKER_RETRY_S", 0.0)
    repair = repair_for(FakeApp())
    assert offsets(asyncio.run(repair.fill([event(10), event(13)]))) == [10, 11, 12, 13]
    assert broker == [(11, 13)]


def test_a_broker_question_that_keeps_failing_fails_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gaps, "BROKER_RETRY_S", 0.0)
    asked: list[int] = []

    async def ask() -> int:
        asked.append(1)
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        asyncio.run(gaps.asked_again("the committed offset", ask))
    assert len(asked) == gaps.BROKER_ATTEMPTS
