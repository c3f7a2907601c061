"""The fan-out agent: the one reader of posts.enriched (and control.erasure) in a worker.

It hands each micro-batch to the profiles and trends stages, which route it by
user and by term; the batch is acknowledged once both have their outputs
acknowledged. One stream per input topic: two agents reading the same topic
share its offsets, and one slow or stalled reader holds back (or, at a
rebalance, loses the place of) the other.

A post that comes again on posts.enriched (an at-least-once repeat upstream, or
a re-read after a crash) is routed once: the ``routed-posts`` table remembers
the ids routed, in the partition of the post, so the memory moves with it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson
from faust.types import EventT, StreamT

from streams.batches import batch_loop
from streams.changelog import BatchedChangelog
from streams.commits import gated
from streams.ingest.dedupe import SeenPosts
from streams.runtime import Runtime

BATCH = 500
LINGER_S = 0.2
PURGE_INTERVAL_S = 60.0


class Router(Protocol):
    """A stage fed by the fan-out: the profiles and trends routers."""

    async def route(self, events: list[Any], posts: list[dict[str, Any] | None]) -> None: ...


def fresh_posts(events: list[EventT], enriched_topic: str, routed: SeenPosts) -> list[dict[str, Any] | None]:
    """For each event, the post it carries when it is one not routed before; None otherwise."""
    posts: list[dict[str, Any] | None] = []
    batch_ids: set[str] = set()
    for event in events:
        post = orjson.loads(event.value) if event.message.topic == enriched_topic else None
        if post is not None and (post["id"] in batch_ids or routed.seen(post["id"])):
            post = None
        if post is not None:
            batch_ids.add(post["id"])
        posts.append(post)
    return posts


def install_fanout(runtime: Runtime, routers: list[Router], read_erasure: bool) -> None:
    """The fan-out agent over ``routers`` (in order); ``read_erasure``: control.erasure goes to them too."""
    settings = runtime.settings
    if not routers:
        return
    routed = SeenPosts(runtime.app, settings.partitions, settings.dedupe_ttl_s, "routed-posts")
    routed_changelog = BatchedChangelog(runtime, routed.table)
    loop = batch_loop(runtime, "fanout")
    names = [settings.topic_enriched] + ([settings.topic_erasure] if read_erasure else [])
    source = runtime.app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    async def fan_out(events: list[Any]) -> None:
        posts = fresh_posts(events, settings.topic_enriched, routed)
        for router in routers:
            await router.route(events, posts)
        now_ms = int(time.time() * 1000)
        async with routed_changelog.batch():
            for event, post in zip(events, posts, strict=True):
                if post is not None:  # remembered once every stage has its outputs acknowledged
                    routed.remember(event, post["id"], now_ms)

    # concurrency=1: the agent writes the routed-posts table.
    @runtime.agent(source, name="fanout")
    async def fanout(stream: StreamT) -> None:
        await loop.run(stream, BATCH, LINGER_S, fan_out)

    @runtime.app.timer(PURGE_INTERVAL_S)
    async def purge_routed_post_ids() -> None:
        async with gated(runtime.commit_gate):
            routed.purge(int(time.time() * 1000), runtime.assigned_partitions(settings.topic_enriched))
