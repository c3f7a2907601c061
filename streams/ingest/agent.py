"""The enrich agent: reads ``posts.raw``, writes ``posts.enriched``,
``posts.flagged`` and ``posts.deadletter``.

validate -> dedupe -> model micro-batch (off the event loop) -> publish.
Offsets advance only after every output of a batch is acknowledged by the
broker: the batch loop (``streams.batches``) acks the batch when ``process``
returns, and ``process`` awaits each send's delivery first; when a send fails
for good the batch is never committed. A crash repeats work, never loses it.

Up to ``STREAMS_BATCHES_IN_FLIGHT`` batches are processed at once: the next
batch is validated and waits for the model while the one before is published.
Batches still publish in the order they were taken (``Turns``), and a post
whose copy is still in flight counts as a duplicate, as one already enriched does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from faust.types import EventT, StreamT

from streams.batches import batch_loop
from streams.commits import gated
from streams.errors import InvalidPost, Reason, Stage
from streams.faust_compat import processing
from streams.inference.language import load_identifier
from streams.ingest.dedupe import SeenPosts
from streams.ingest.enrich import enrich_batch
from streams.ingest.parse import RawPost, parse_post
from streams.media.agent import media_request
from streams.metrics import batch_class
from streams.runtime import Runtime
from streams.topics import media_requests_topic

log = logging.getLogger(__name__)
PURGE_INTERVAL_S = 60.0


@dataclass
class Output:
    topic: str
    key: bytes | None
    value: dict[str, Any]
    event: EventT
    post_id: str | None = None  # set on enriched records: remembered once acknowledged


def now_ms() -> int:
    return int(time.time() * 1000)


class Turns:
    """Lets batches processed at once publish in the order they were taken."""

    def __init__(self) -> None:
        self.last: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
        """Yields ``wait``, which returns once every batch taken before has published (or given up)."""
        before, mine = self.last, asyncio.Event()
        self.last = mine

        async def wait() -> bool:
            return await before.wait() if before is not None else True

        try:
            yield wait
        finally:
            mine.set()


class EnrichAgent:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.metrics = runtime.metrics
        self.seen = SeenPosts(runtime.app, self.settings.partitions, self.settings.dedupe_ttl_s)
        self.in_flight: set[str] = set()  # ids of the posts of batches taken but not yet published
        self.turns = Turns()

    def dead(self, event: EventT, error: InvalidPost) -> Output:
        return Output(self.settings.topic_deadletter, event.key, self.rt.dead_letter_for(event, error), event)

    def triage(self, events: list[EventT]) -> tuple[list[tuple[EventT, RawPost]], list[Output]]:
        """Split a batch into valid new posts and dead letters; skip duplicates."""
        valid: list[tuple[EventT, RawPost]] = []
        dead: list[Output] = []
        batch_ids: set[str] = set()
        limits = self.settings.input_limits
        for event in events:
            self.metrics.posts_in.labels(event.message.topic).inc()
            try:
                post = parse_post(event.value, limits.max_bytes, limits)
            except InvalidPost as error:
                dead.append(self.dead(event, error))
                continue
            for limit in post.capped:
                self.metrics.limits_hit.labels(limit).inc()
            if post.id in batch_ids or post.id in self.in_flight or self.seen.seen(post.id):
                self.metrics.duplicates.inc()
                continue
            batch_ids.add(post.id)
            valid.append((event, post))
        return valid, dead

    async def enrich(self, valid: list[tuple[EventT, RawPost]]) -> list[Output]:
        posts = [post for _, post in valid]
        loop = asyncio.get_running_loop()
        results, seconds = await loop.run_in_executor(
            self.rt.executor, enrich_batch, self.rt.model, posts, self.rt.thresholds, self.rt.privacy
        )
        self.metrics.inference_seconds.labels(self.rt.model.manifest.tag, batch_class(len(posts))).observe(seconds)
        self.metrics.batch_size.observe(len(posts))
        outputs: list[Output] = []
        for (event, post), result in zip(valid, results, strict=True):
            if result.record is None:
                assert result.error is not None
                outputs.append(self.dead(event, result.error))
                continue
            key = post.id.encode()
            outputs.append(Output(self.settings.topic_enriched, key, result.record, event, post.id))
            self.metrics.moderation.labels(result.record["moderation"]["action"]).inc()
            if result.flagged is not None:
                outputs.append(Output(self.settings.topic_flagged, key, result.flagged, event))
            request = media_request(result.record) if self.settings.media_analysis else None
            if request is not None:  # for the media agents, wherever they run
                outputs.append(Output(media_requests_topic(self.settings.app_id), key, request, event))
        return outputs

    async def publish(self, outputs: list[Output]) -> None:
        """Send every output and wait until the broker has acknowledged each."""
        pending = [await self.send(output) for output in outputs]
        results = await asyncio.gather(*pending, return_exceptions=True)
        retry: list[Output] = []
        for output, result in zip(outputs, results, strict=True):
            if isinstance(result, BaseException):
                retry.append(self.too_large_or_raise(output, result))
                continue
            self.acknowledged(output)
        if retry:
            await self.publish(retry)

    async def send(self, output: Output) -> Any:
        with processing(output.event):  # exactly-once: in the transaction of its input's partition
            return await self.rt.topics[output.topic].send(key=output.key, value=orjson.dumps(output.value))

    def too_large_or_raise(self, output: Output, error: BaseException) -> Output:
        """A record the broker refuses becomes a dead letter; anything else stops the batch."""
        if output.topic == self.settings.topic_deadletter or "TooLarge" not in type(error).__name__:
            raise error
        reason = InvalidPost(Reason.TOO_LARGE, f"output refused by the broker: {error!r}", Stage.PUBLISH)
        return self.dead(output.event, reason)

    def acknowledged(self, output: Output) -> None:
        self.metrics.posts_out.labels(output.topic).inc()
        if output.post_id is not None:
            self.seen.remember(output.event, output.post_id, now_ms())
            appended_ms = output.event.message.timestamp * 1000
            self.metrics.end_to_end_seconds.observe(max(0.0, (now_ms() - appended_ms) / 1000))

    def observe_stages(self, events: list[EventT], taken: float, modelled: float, published: float) -> None:
        """Where each enriched post's latency went (streams_enrich_stage_seconds)."""
        stages = self.metrics.enrich_stage_seconds
        waiting, model, publish = stages.labels("waiting"), stages.labels("model"), stages.labels("publish")
        for event in events:
            waiting.observe(max(0.0, taken - event.message.timestamp))
            model.observe(modelled - taken)
            publish.observe(published - modelled)

    async def process(self, events: list[EventT]) -> None:
        taken = time.time()
        async with self.turns.take() as my_turn:
            valid, outputs = self.triage(events)
            ids = {post.id for _, post in valid}
            self.in_flight |= ids
            try:
                if valid:
                    outputs += await self.enrich(valid)
                modelled = time.time()
                await my_turn()
                await self.publish(outputs)
            finally:
                self.in_flight -= ids
        self.observe_stages([event for event, _ in valid], taken, modelled, time.time())
        progress = self.rt.progress
        for event in events:
            progress.record(event.message.partition, event.message.offset)
        progress.last_batch_at = time.time()
        self.metrics.last_batch_at.set(progress.last_batch_at)


def install_enrich(runtime: Runtime) -> EnrichAgent:
    settings = runtime.settings
    agent = EnrichAgent(runtime)
    load_identifier()  # before the worker joins its group, not in the first batch's time
    source = runtime.topics[settings.topic_raw]
    loop = batch_loop(runtime, "enrich", settings.batches_in_flight)

    # concurrency=1: with more, Faust may commit past an in-flight event.
    @runtime.agent(source, name="enrich")
    async def enrich(stream: StreamT) -> None:
        await loop.run(stream, settings.batch_size, settings.batch_linger_s, agent.process)

    @runtime.app.task
    async def declare_media_requests() -> None:
        # Created here too: the media workers may not have started yet (or ever, with no media agent).
        await runtime.topics[media_requests_topic(settings.app_id)].maybe_declare()

    @runtime.app.timer(PURGE_INTERVAL_S)
    async def purge_seen_post_ids() -> None:
        async with gated(runtime.commit_gate):
            purged = agent.seen.purge(now_ms(), runtime.assigned_partitions(settings.topic_raw))
        if purged:
            log.info("forgot %d post id(s) older than %ss", purged, settings.dedupe_ttl_s)

    return agent
