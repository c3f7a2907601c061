"""The fan-out's choice of posts to route, and the commit gate, without a broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson

from streams.commits import CommitGate
from streams.fanout import fresh_posts

ENRICHED = "posts.enriched"


@dataclass
class Message:
    topic: str


@dataclass
class Event:
    message: Message
    value: bytes


class Routed:
    def __init__(self, ids: set[str]) -> None:
        self.ids = ids

    def seen(self, post_id: str) -> bool:
        return post_id in self.ids


def event(topic: str, post_id: str) -> Event:
    return Event(Message(topic), orjson.dumps({"id": post_id}))


def test_fresh_posts_skip_repeats_in_the_batch_routed_ids_and_other_topics() -> None:
    batch = [event(ENRICHED, "a"), event(ENRICHED, "a"), event(ENRICHED, "b"), event("control.erasure", "c")]
    posts = fresh_posts(batch, ENRICHED, Routed({"b"}))  # type: ignore[arg-type]
    assert [p["id"] if p else None for p in posts] == ["a", None, None, None]


def test_a_commit_waits_for_the_batch_in_flight_and_holds_new_ones_back() -> None:
    order: list[str] = []

    async def main() -> None:
        gate = CommitGate()
        batch_started = asyncio.Event()
        release = asyncio.Event()

        async def batch(name: str) -> None:
            async with gate.batch():
                order.append(f"{name} start")
                batch_started.set()
                await release.wait()
                order.append(f"{name} end")

        async def commit() -> None:
            await batch_started.wait()
            async with gate.commit():
                order.append("commit")

        first = asyncio.create_task(batch("first"))
        committing = asyncio.create_task(commit())
        await batch_started.wait()
        await asyncio.sleep(0.01)
        batch_started.clear()
        second = asyncio.create_task(batch("second"))  # arrives while the commit waits
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(first, committing, second)

    asyncio.run(main())
    assert order == ["first start", "first end", "commit", "second start", "second end"]
