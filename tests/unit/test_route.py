"""The route's progress per posts.enriched partition, and what an exactly-once roll-back does to it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.metrics import Metrics
from streams.runtime import EnrichProgress
from streams.settings import Settings
from streams.trends.route import TermSender, TrendsRouter
from streams.trends.state import decode_by_term, is_watermark

SETTINGS = Settings.from_env({"STREAMS_TREND_KINDS": "hashtag"})


class Topic:
    """The trends-by-term topic: what was sent to which partition."""

    def __init__(self) -> None:
        self.sent: list[tuple[int | None, bytes]] = []

    async def send(self, key: bytes | None = None, value: bytes = b"", partition: int | None = None) -> Any:
        self.sent.append((partition, value))
        return asyncio.sleep(0)


class Event(SimpleNamespace):
    """A Faust event (weak-referenced as the current event)."""


def enriched(partition: int, offset: int, created_at_ms: int) -> tuple[Any, dict[str, Any]]:
    message = SimpleNamespace(topic=SETTINGS.topic_enriched, partition=partition, offset=offset, timestamp=2e9)
    post = {"id": f"p{offset}", "created_at_ms": created_at_ms, "user_id": "u", "terms": {"hashtags": ["x"]}}
    return Event(message=message), post


def routed(router: TrendsRouter, batch: list[tuple[Any, dict[str, Any]]]) -> None:
    asyncio.run(router.route([e for e, _ in batch], [p for _, p in batch]))


def watermarks_sent(topic: Topic) -> list[dict[str, int]]:
    return [m["wm"] for _, v in topic.sent if is_watermark(m := decode_by_term(v))]


def test_after_a_roll_back_the_route_vouches_for_nothing_it_has_not_sent_again() -> None:
    # Offsets 0..9 were routed in a transaction that exactly-once then aborted: they come again.
    topic = Topic()
    progress = EnrichProgress()
    router = TrendsRouter(SimpleNamespace(), SETTINGS, Metrics(), progress, TermSender(topic, 2), None)  # type: ignore[arg-type]
    routed(router, [enriched(1, offset, 1_000 * offset) for offset in range(10)])
    progress.record(1, 9)
    end = {TP(SETTINGS.topic_enriched, 1): 10, TP(SETTINGS.topic_raw, 1): 10}
    assert router.caught_up_by([1], end) == ["1"]

    router.forget({1})
    progress.forget({1})
    assert router.caught_up_by([1], end) == []  # not until offset 9 is routed again
    topic.sent.clear()
    router.last_broadcast = 0.0
    routed(router, [enriched(1, 0, 0)])
    assert watermarks_sent(topic) == [{"1": 0}] * 2  # the re-sent mention's time, not offset 9's, to each partition
