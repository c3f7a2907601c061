"""The enrich agent: reads ``posts.raw``, writes ``posts.enriched``,
``posts.flagged`` and ``posts.deadletter``.

validate -> dedupe -> model micro-batch (off the event loop) -> publish.
Offsets advance only after every output of a batch is acknowledged by the
broker: the batch loop (``streams.batches``) acks the batch when ``process``
returns, and ``process`` awaits each send's delivery first; when a send fails
for good the batch is never committed. A crash repeats work, never loses it.

Up to ``STREAMS_BATCHES_IN_FLIGHT`` batches are processed at once: the next
batch is validated and waits for the model while the one before is published.
Batches publish in the order they were taken (``Turns``), and a post whose copy
is still in flight counts as a duplicate, as one already enriched does.

A flagged post is explained after its batch's other posts are published, at the
inference thread's lower priority (``streams.inference.thread``): its extra
model rows hold back neither its batch-mates nor the batches behind it, and its
records follow theirs. The batch is done (and its offsets may be committed)
once they too are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
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
from streams.ingest.enrich import Enriched, Scored, explained, score_batch
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


@dataclass
class Turn:
    """One batch's place in the publishing order."""

    before: asyncio.Event | None
    mine: asyncio.Event

    async def wait(self) -> None:
        """Returns once every batch taken before has published (or given up)."""
        if self.before is not None:
            await self.before.wait()

    def done(self) -> None:
        """Later batches may publish now (at the latest when the batch ends)."""
        self.mine.set()


class Turns:
    """Lets batches processed at once publish in the order they were taken."""

    def __init__(self) -> None:
        self.last: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[Turn]:
        turn = Turn(self.last, asyncio.Event())
        self.last = turn.mine
        try:
            yield turn
        finally:
            turn.done()


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
        for event in events:
            self.metrics.posts_in.labels(event.message.topic).inc()
            try:
                post = parse_post(event.value, self.settings.max_message_bytes)
            except InvalidPost as error:
                dead.append(self.dead(event, error))
                continue
            if post.id in batch_ids or post.id in self.in_flight or self.seen.seen(post.id):
                self.metrics.duplicates.inc()
                continue
            batch_ids.add(post.id)
            valid.append((event, post))
        return valid, dead

    async def enrich(self, valid: list[tuple[EventT, RawPost]]) -> tuple[list[Output], list[tuple[EventT, Scored]]]:
        """The outputs of the posts moderation allows (and of model errors), and the flagged posts."""
        posts = [post for _, post in valid]
        loop = asyncio.get_running_loop()
        results, seconds = await loop.run_in_executor(
            self.rt.executor, score_batch, self.rt.model, posts, self.rt.thresholds, self.rt.privacy
        )
        self.metrics.inference_seconds.labels(self.rt.model.manifest.tag, batch_class(len(posts))).observe(seconds)
        self.metrics.batch_size.observe(len(posts))
        outputs: list[Output] = []
        flagged: list[tuple[EventT, Scored]] = []
        for (event, post), result in zip(valid, results, strict=True):
            if isinstance(result, Scored):
                flagged.append((event, result))
            else:
                outputs += self.outputs_of(event, post, result)
        return outputs, flagged

    async def explain(self, flagged: list[tuple[EventT, Scored]]) -> list[Output]:
        """The flagged posts' outputs, each explained when the inference thread has no batch waiting."""
        model, privacy, thread = self.rt.model, self.rt.privacy, self.rt.executor
        futures = [asyncio.wrap_future(thread.submit_deferred(explained, model, post, privacy)) for _, post in flagged]
        results = await asyncio.gather(*futures)
        return [
            output
            for (event, scored), result in zip(flagged, results, strict=True)
            for output in self.outputs_of(event, scored.post, result)
        ]

    def outputs_of(self, event: EventT, post: RawPost, result: Enriched) -> list[Output]:
        if result.record is None:
            assert result.error is not None
            return [self.dead(event, result.error)]
        key = post.id.encode()
        outputs = [Output(self.settings.topic_enriched, key, result.record, event, post.id)]
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

    def observe_stages(
        self, events: list[EventT], taken: float, modelled: float, published: float, explained: float | None = None
    ) -> None:
        """Where each enriched post's latency went (streams_enrich_stage_seconds); ``explained``:
        when flagged posts had their explanations (from the model's end, time in ``explain``)."""
        stages = self.metrics.enrich_stage_seconds
        waiting, model, publish = stages.labels("waiting"), stages.labels("model"), stages.labels("publish")
        explain = stages.labels("explain")
        for event in events:
            waiting.observe(max(0.0, taken - event.message.timestamp))
            model.observe(modelled - taken)
            if explained is not None:
                explain.observe(explained - modelled)
            publish.observe(published - (explained or modelled))

    async def process(self, events: list[EventT]) -> None:
        taken = time.time()
        flagged: list[tuple[EventT, Scored]] = []
        async with self.turns.take() as turn:
            valid, outputs = self.triage(events)
            ids = {post.id for _, post in valid}
            self.in_flight |= ids
            try:
                if valid:
                    ready, flagged = await self.enrich(valid)
                    outputs += ready
                modelled = time.time()
                await turn.wait()
                await self.publish(outputs)
                turn.done()  # later batches may publish: this batch's flagged posts follow theirs
                published = time.time()
                if flagged:
                    explanations = await self.explain(flagged)
                    explained_at = time.time()
                    await self.publish(explanations)
            finally:
                self.in_flight -= ids
        explained_ids = {id(event) for event, _ in flagged}
        prompt = [event for event, _ in valid if id(event) not in explained_ids]
        self.observe_stages(prompt, taken, modelled, published)
        if flagged:
            self.observe_stages([event for event, _ in flagged], taken, modelled, time.time(), explained_at)
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
