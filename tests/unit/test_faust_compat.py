"""The Faust internals the project relies on, checked against the pinned faust-streaming."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import Message
from intervaltree import Interval, IntervalTree

from streams import faust_compat
from streams.faust_compat import FaustIncompatible

RAW = TP("posts.raw", 0)


def message(offset: int) -> Message:
    return Message(RAW.topic, RAW.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=RAW)


@dataclass
class Acks:
    """The consumer's side of an ack, as Faust's Consumer.ack: an acked message is counted once."""

    offsets: list[int] = field(default_factory=list)

    def ack(self, msg: Message) -> bool:
        self.offsets.append(msg.offset)
        return True


def stream_ack(msg: Message, acks: Acks) -> None:
    """What Faust's Stream.ack does: the message's own ack, then the consumer's when it was the last reference."""
    if msg.ack(acks):  # type: ignore[arg-type]
        acks.ack(msg)


def test_the_pinned_faust_has_every_internal_we_use() -> None:
    assert faust.__version__ == faust_compat.PINNED
    faust_compat.check()


def test_a_missing_internal_fails_with_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(Consumer, "_add_gap")
    with pytest.raises(FaustIncompatible) as caught:
        faust_compat.check()
    text = str(caught.value)
    assert "Consumer._add_gap" in text and "faust-streaming==" in text and "\n" not in text


def test_a_consumer_without_its_bookkeeping_is_refused() -> None:
    with pytest.raises(FaustIncompatible, match="_committed_offset"):
        faust_compat.check_consumer(object())


def test_withheld_acks_never_reach_the_consumer() -> None:
    acks = Acks()
    done, failed = [message(1), message(2)], [message(3), message(4)]
    faust_compat.withhold_acks([type("Event", (), {"message": m})() for m in failed])
    for msg in done + failed:  # take_events acks every event of a batch in its finally
        stream_ack(msg, acks)
    assert acks.offsets == [1, 2]


def test_committed_offset_and_gaps_use_the_consumer_bookkeeping() -> None:
    gaps: list[tuple[TP, int, int]] = []

    class FakeConsumer:
        _committed_offset: dict[TP, int | None] = {RAW: 7}

        async def _add_gap(self, tp: TP, first: int, last: int) -> None:
            gaps.append((tp, first, last))

    consumer = FakeConsumer()
    assert faust_compat.committed_offset(consumer, RAW) == 7
    assert faust_compat.committed_offset(consumer, TP("other", 0)) is None
    asyncio.run(faust_compat.add_gap(consumer, RAW, 8, 9))
    assert gaps == [(RAW, 8, 9)]


@pytest.mark.parametrize(
    ("committed", "acked", "gap"),
    [
        (5, [5, 6, 7], None),  # one run from the committed offset
        (5, [5, 6, 8, 9], None),  # 7 not acknowledged yet
        (5, [5, 6, 8, 9], (7, 8)),  # 7 a gap Faust knows (a transaction marker)
        (5, [6, 7], None),  # one offset skipped at the head: Faust takes it for a marker
        (5, [8, 9], None),  # three skipped at the head: records not read back yet
        (5, [8, 9], (5, 8)),  # ... read back, and handed to Faust as handled
        (None, [3, 4], None),  # never committed
        (27, [26, 27, 28], None),  # 26 acknowledged again while its commit was in flight
        (22, [22, 23, 23, 24], None),  # an offset acknowledged twice
        (5, [5, 6, 8, 9, 10], (7, 9)),  # Faust's gap runs up to and including the record after it
        (5, [5, 6, 8], (9, 12)),  # a gap past the newest acknowledged offset waits
    ],
)
def test_tidied_acks_commit_as_faust_reckons_them(
    committed: int | None, acked: list[int], gap: tuple[int, int] | None
) -> None:
    trees: Any = collections.defaultdict(IntervalTree)
    if gap is not None:
        trees[RAW].add(Interval(*gap))
    consumer = SimpleNamespace(_acked={RAW: list(acked)}, _gap=trees, _committed_offset={RAW: committed},
                               _acked_index={RAW: set(acked)})  # fmt: skip
    faust_compat.tidy_acks(consumer, RAW)
    assert consumer._acked[RAW] == sorted(set(consumer._acked[RAW]))
    assert all(committed is None or offset >= committed for offset in consumer._acked[RAW])
    predicted = faust_compat.commit_leaves_acks(consumer, RAW)
    Consumer._new_offset(consumer, RAW)  # type: ignore[arg-type]  # Faust's own, on the same bookkeeping
    assert predicted == bool(consumer._acked[RAW])


@pytest.mark.parametrize(
    ("committed", "acked", "gap"),
    [
        (48, list(range(48, 59)), (49, 57)),  # a gap Faust noted at a rebalance, over offsets also acknowledged
        (51, [50, 51, *range(51, 219)], None),  # what was left of it a commit later (seen in a worker)
    ],
)
def test_at_least_once_commits_pass_every_offset_processed(
    committed: int, acked: list[int], gap: tuple[int, int] | None
) -> None:
    def bookkeeping() -> Any:
        trees: Any = collections.defaultdict(IntervalTree)
        if gap is not None:
            trees[RAW].add(Interval(*gap))
        return SimpleNamespace(_acked={RAW: list(acked)}, _gap=trees, _committed_offset={RAW: committed},
                               _acked_index={RAW: set(acked)})  # fmt: skip

    def commit_with(consumer: Any) -> Any:
        async def commit(topics: Any = None, start_new_transaction: bool = True) -> int | None:
            return Consumer._new_offset(consumer, RAW)  # Faust's own reckoning

        return commit

    untidy = bookkeeping()
    assert asyncio.run(commit_with(untidy)()) < max(acked)  # Faust alone: a step or two, the rest waits
    consumer = bookkeeping()
    consumer.commit = commit_with(consumer)
    faust_compat.tidy_acks_before_each_commit(consumer)
    assert asyncio.run(consumer.commit()) == max(acked) + 1
    assert consumer._acked[RAW] == []


def test_recovery_asks_the_broker_where_changelogs_end_not_the_last_fetch() -> None:
    # With transactions Faust answered with the last fetch's stable offset: None (so "-1",
    # nothing to recover) for a changelog partition the worker had not fetched yet.
    asked: list[list[TP]] = []

    class AiokafkaConsumer:
        async def end_offsets(self, partitions: list[TP]) -> dict[TP, int]:
            asked.append(partitions)
            return {tp: 42 for tp in partitions}

    class ConsumerThread:
        def _ensure_consumer(self) -> AiokafkaConsumer:
            return AiokafkaConsumer()

        async def call_thread(self, fun: Any, *args: Any) -> Any:  # runs fun on the consumer's own loop
            return await fun(*args)

    class FaustConsumer:
        _thread = ConsumerThread()

        async def highwaters(self, *partitions: TP) -> dict[TP, int | None]:
            return {tp: None for tp in partitions}  # nothing fetched yet

    recovery = Recovery.__new__(Recovery)  # only its highwater step runs here
    recovery.log = SimpleNamespace(info=lambda *args: None)  # type: ignore[assignment]
    app: Any = SimpleNamespace(consumer=FaustConsumer(), tables=SimpleNamespace(recovery=recovery))
    faust_compat.recovery_reads_changelog_ends_from_broker(app)
    changelog = TP("app-trend-terms-changelog", 3)
    highwaters: collections.Counter[TP] = collections.Counter()
    asyncio.run(recovery._build_highwaters(app.consumer, {changelog}, highwaters, "active"))
    assert highwaters == {changelog: 41} and asked == [[changelog]]  # Faust's "-1": the last offset, not the end


def test_processing_makes_an_event_current_for_table_writes() -> None:
    import faust.streams

    class Event:
        pass

    event = Event()
    with faust_compat.processing(event):
        current = faust.streams._current_event.get()
        assert current is not None and current() is event
    assert faust.streams._current_event.get(None) is None


def test_wrap_commit_routes_every_commit_through_the_wrapper() -> None:
    calls: list[str] = []

    class FakeConsumer:
        async def commit(self, *args: Any, **kwargs: Any) -> bool:
            calls.append("commit")
            return True

    def wrap(commit: faust_compat.CommitFn) -> faust_compat.CommitFn:
        async def wrapped(*args: Any, **kwargs: Any) -> bool:
            calls.append("gate")
            return await commit(*args, **kwargs)

        return wrapped

    consumer = FakeConsumer()
    faust_compat.wrap_commit(consumer, wrap)
    assert asyncio.run(consumer.commit()) is True
    assert calls == ["gate", "commit"]


def test_agent_errors_reach_our_handler_before_fausts() -> None:
    calls: list[str] = []

    class FakeApp:
        async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
            calls.append(f"faust {exc}")

    async def ours(agent: Any, exc: BaseException) -> None:
        calls.append(f"ours {exc}")

    app = FakeApp()
    faust_compat.on_agent_error(app, ours)  # type: ignore[arg-type]
    asyncio.run(app._on_agent_error(None, ValueError("boom")))
    assert calls == ["ours boom", "faust boom"]


def test_agent_crashes_are_counted_and_make_health_degraded_for_a_while() -> None:
    from streams.metrics import Metrics
    from streams.runtime import AgentCrashes

    metrics = Metrics()
    crashes = AgentCrashes(metrics)

    class Agent:
        name = "streams.fanout.fanout"

    asyncio.run(crashes.on_error(Agent(), RuntimeError("no producer")))
    assert crashes.counts == {"fanout": 1}
    assert metrics.registry.get_sample_value("streams_agent_crashes_total", {"agent": "fanout"}) == 1.0
    assert crashes.recent(crashes.last_at + 10, within_s=300) and not crashes.recent(crashes.last_at + 301, 300)
