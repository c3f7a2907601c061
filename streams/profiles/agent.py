"""The profiles agents: build user profiles and carry out erasure requests.

``route``    (called by the fan-out agent on posts.enriched and control.erasure)
             keys both by pseudonymous user id, and writes them to the internal ``profiles-by-user`` topic,
             so a user's posts and erasure requests are handled in order by one
             partition's owner. Invalid erasure requests go to posts.deadletter.
``profiles`` folds posts into the ``profiles`` table, publishes to the compacted
             users.profiles at most once per interval per user, and on erasure
             deletes the user's state, publishes a tombstone and logs an audit line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from faust.types import EventT, StreamT

from streams.app import Runtime, internal_topic, raw_topic
from streams.commits import processed
from streams.errors import InvalidPost, Reason, Stage
from streams.gaps import GapRepair
from streams.ingest.parse import MAX_ID_CHARS
from streams.profiles.fold import new_profile, published_profile, update_profile
from streams.tables import processing
from streams.topics import compaction_config

log = logging.getLogger(__name__)
FLUSH_INTERVAL_S = 1.0
# In the table value: posts.enriched partition -> offset of the last post folded in.
APPLIED = "applied_offsets"
POST_FIELDS = ("created_at_ms", "sentiment", "moderation", "terms", "metrics", "language")


def erasure_user(value: bytes | None) -> str:
    """The raw user id of an erasure request, or InvalidPost saying what is wrong."""
    try:
        request = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidPost(Reason.INVALID_JSON, f"invalid JSON: {exc}", Stage.VALIDATE) from None
    if not isinstance(request, dict):
        raise InvalidPost(Reason.NOT_AN_OBJECT, "an erasure request must be a JSON object")
    user = request.get("user_id")
    if user is None:
        raise InvalidPost(Reason.MISSING_FIELD, "field 'user_id' is missing")
    if isinstance(user, bool) or not isinstance(user, str | int):
        raise InvalidPost(Reason.WRONG_TYPE, f"field 'user_id' must be a string or integer, got {type(user).__name__}")
    text = str(user).strip()
    if not text or len(text) > MAX_ID_CHARS:
        raise InvalidPost(Reason.INVALID_VALUE, f"field 'user_id' must hold 1 to {MAX_ID_CHARS} characters")
    return text


class ProfilesAgent:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        settings = runtime.settings
        self.interval_s = settings.profile_publish_interval_s
        self.table = runtime.app.Table(
            "profiles",
            default=None,
            partitions=settings.partitions,
            extra_topic_configs=compaction_config(settings),  # erased users leave the changelog too
            help="pseudonymous user id -> profile",
        )
        self.by_user = internal_topic(runtime.app, f"{settings.app_id}-profiles-by-user", settings.partitions)
        self.out = raw_topic(runtime.app, settings.topic_profiles, settings)
        self.last_published: dict[str, float] = {}
        self.dirty: set[str] = set()

    async def route(self, events: list[EventT], posts: list[dict[str, Any] | None]) -> None:
        """Send each fresh post (None: a repeat, or not a post) and erasure request to its
        user's partition; wait for the acks."""
        pending = [await self.route_one(event, post) for event, post in zip(events, posts, strict=True)]
        await asyncio.gather(*[p for p in pending if p is not None])

    async def route_one(self, event: EventT, post: dict[str, Any] | None) -> Any:
        settings = self.rt.settings
        if event.message.topic == settings.topic_erasure:
            try:
                user = self.rt.privacy.pseudonymize(erasure_user(event.value))
            except InvalidPost as error:
                record = self.rt.dead_letter_for(event, error)
                topic = self.rt.topics[settings.topic_deadletter]
                return await topic.send(key=event.key, value=orjson.dumps(record))
            envelope: dict[str, Any] = {"kind": "erase", "requested_at_ms": int(time.time() * 1000)}
        elif post is None:
            return None
        else:
            user = post["user_id"]
            # The source offset makes the fold idempotent: a repeat of an envelope
            # (re-sent, or re-read after a rebalance) is recognised and skipped.
            source = [event.message.partition, event.message.offset]
            envelope = {"kind": "post", "post": {name: post.get(name) for name in POST_FIELDS}, "source": source}
        return await self.by_user.send(key=user.encode(), value=orjson.dumps(envelope))

    async def apply(self, event: EventT) -> None:
        user = (event.key or b"").decode()
        envelope = orjson.loads(event.value)
        if envelope["kind"] == "erase":
            await self.erase(event, user)
            return
        profile = self.table.get(user) or new_profile(user)
        partition, offset = envelope["source"]
        if offset <= profile.get(APPLIED, {}).get(str(partition), -1):
            self.rt.metrics.profile_repeats.inc()
            return
        profile = update_profile(profile, envelope["post"])
        profile[APPLIED] = {**profile.get(APPLIED, {}), str(partition): offset}
        with processing(event):
            self.table[user] = profile
        if time.monotonic() - self.last_published.get(user, 0.0) >= self.interval_s:
            await self.publish(user, profile)
        else:
            self.dirty.add(user)

    async def publish(self, user: str, profile: dict[str, Any]) -> None:
        await self.out.send(key=user.encode(), value=orjson.dumps(published_profile(profile)))
        self.last_published[user] = time.monotonic()
        self.dirty.discard(user)

    async def erase(self, event: EventT, user: str) -> None:
        held = self.table.get(user) is not None
        if held:
            with processing(event):
                del self.table[user]
        self.dirty.discard(user)
        self.last_published.pop(user, None)
        await (await self.out.send(key=user.encode(), value=None))
        self.rt.metrics.erasures.inc()
        log.info(
            "erasure done: user %s, profile %s, tombstone published to %s",
            user,
            "removed" if held else "not held",
            self.rt.settings.topic_profiles,
        )

    async def flush(self) -> None:
        """Publish the profiles held back by the rate limit once their interval passed."""
        now = time.monotonic()
        for user in [u for u in self.dirty if now - self.last_published.get(u, 0.0) >= self.interval_s]:
            profile = self.table.get(user)
            if profile is None:
                self.dirty.discard(user)
            else:
                await self.publish(user, profile)


def install_profiles(runtime: Runtime) -> ProfilesAgent:
    """The profiles agent; its input is routed by the fan-out agent (streams.fanout)."""
    agent = ProfilesAgent(runtime)
    repair = GapRepair(runtime, "profiles")

    # concurrency=1: this agent writes a table.
    @runtime.app.agent(agent.by_user, name="profiles", concurrency=1)
    async def profiles(stream: StreamT) -> None:
        async for event in stream.events():
            events = await repair.fill([event])
            async with processed(runtime.commit_gate, stream, events):
                for each in events:
                    await agent.apply(each)
                await repair.done()

    @runtime.app.timer(FLUSH_INTERVAL_S)
    async def flush_profiles() -> None:
        await agent.flush()

    return agent
