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
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from faust.types import EventT, StreamT

from streams.batches import batch_loop
from streams.changelog import BatchedChangelog
from streams.commits import gated
from streams.errors import InvalidPost, Reason, Stage
from streams.faust_compat import processing
from streams.ingest.parse import MAX_ID_CHARS
from streams.profiles import envelopes
from streams.profiles.fold import (
    Profile,
    add_mentioned_by,
    add_visual_tags,
    forget_interlocutor,
    interlocutors,
    new_profile,
    published_profile,
    update_profile,
)
from streams.runtime import Runtime
from streams.topics import compaction_config, fitted, key_partition, profiles_by_user_topic

log = logging.getLogger(__name__)
FLUSH_INTERVAL_S = 1.0
BATCH = 200
LINGER_S = 0.1


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


class UserSender:
    """Collects posts' envelopes by (source partition, destination partition); ``flush`` sends
    each group as one message to the partition its users' keys go to."""

    def __init__(self, topic: Any, partitions: int, on_split: Callable[[], None] = lambda: None) -> None:
        self.topic = topic
        self.partitions = partitions
        self.on_split = on_split  # a group was too heavy for one message (counted)
        self.groups: dict[tuple[int, int], list[tuple[str, envelopes.Envelope]]] = defaultdict(list)
        self.last_event: dict[int, EventT] = {}  # source partition -> its latest event

    def add(self, event: EventT, user: str, envelope: envelopes.Envelope) -> None:
        source = event.message.partition
        self.last_event[source] = event
        self.groups[(source, key_partition(user.encode(), self.partitions))].append((user, envelope))

    async def flush(self) -> list[Any]:
        """Send the groups collected so far; the pending sends."""
        pending = []
        for (source, destination), entries in self.groups.items():
            values = fitted(entries, envelopes.encode_users)
            if len(values) > 1:
                self.on_split()
            for _, value in values:
                with processing(self.last_event[source]):  # exactly-once: the source partition's transaction
                    pending.append(await self.topic.send(value=value, partition=destination))
        self.groups.clear()
        return pending


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
        self.changelog = BatchedChangelog(runtime, self.table)  # one write per envelope
        self.by_user = runtime.topics[profiles_by_user_topic(settings.app_id)]
        self.out = runtime.raw_topic(settings.topic_profiles)
        self.last_published: dict[str, float] = {}
        # user -> the envelope that last changed a profile held back by the rate limit: its
        # publication joins that envelope's partition (its transaction, in exactly-once mode).
        self.dirty: dict[str, EventT] = {}

    async def route(self, events: list[EventT], posts: list[dict[str, Any] | None]) -> None:
        """Send each fresh post (None: a repeat, or not a post) and erasure request to its
        user's partition; wait for the acks.

        A batch's posts go as one message per (source partition, destination partition):
        one Kafka record and one Faust event for what were several. Each joins the transaction
        of its source partition in exactly-once mode. An erasure request goes on its own,
        after the posts that came before it in the batch.
        """
        split = self.rt.metrics.limits_hit.labels("internal_message").inc
        users = UserSender(self.by_user, self.rt.settings.partitions, split)
        pending = []
        for event, post in zip(events, posts, strict=True):
            if event.message.topic == self.rt.settings.topic_erasure:
                pending += await users.flush()
                pending.append(await self.route_erasure(event))
            elif post is not None:
                partition, offset = event.message.partition, event.message.offset
                users.add(event, post["user_id"], envelopes.post_envelope(post, partition, offset))
                # The incoming side: each mentioned user hears of it on their own partition.
                for target in dict.fromkeys(post.get("mentions") or []):
                    if target != post["user_id"]:
                        users.add(event, target, envelopes.mentioned_envelope(post["user_id"], partition, offset))
        pending += await users.flush()
        await asyncio.gather(*pending)

    async def route_erasure(self, event: EventT) -> Any:
        settings = self.rt.settings
        try:
            user = self.rt.privacy.pseudonymize(erasure_user(event.value))
        except InvalidPost as error:
            record = self.rt.dead_letter_for(event, error)
            topic = self.rt.topics[settings.topic_deadletter]
            with processing(event):
                return await topic.send(key=event.key, value=orjson.dumps(record))
        envelope = envelopes.erase_envelope(int(time.time() * 1000))
        with processing(event):  # exactly-once: in the transaction of the request's partition
            return await self.by_user.send(key=user.encode(), value=envelopes.encode(envelope))

    async def apply_batch(self, events: list[Any]) -> None:
        """Fold a batch of messages' envelopes; return once every profile it published, and the
        table's changelog records, are acknowledged."""
        async with self.changelog.batch():
            pending = [
                await self.apply(event, user, envelope)
                for event in events
                for user, envelope in envelopes.decode(event.key, event.value)
            ]
            await asyncio.gather(*[p for p in pending if p is not None])

    async def apply(self, event: EventT, user: str, envelope: envelopes.Envelope) -> Any:
        """Fold one envelope of ``event``; the pending publication of the profile, if one is due."""
        if envelope["kind"] == "erase":
            return await self.erase(event, user)
        held: Profile | None = self.table.get(user)
        if envelope["kind"] == "forget":
            return None if held is None else await self.save(user, forget_interlocutor(held, envelope["user"]), event)
        if envelope["kind"] == "media" and held is None:
            return None  # pictures alone start no profile (nor bring back an erased one)
        profile: Profile = held or new_profile(user)
        partition, offset = envelope["source"]
        source = {"media": f"media-{partition}", "mentioned": f"in-{partition}"}.get(envelope["kind"], str(partition))
        applied = profile.get("applied_offsets", {})
        if offset <= applied.get(source, -1):
            self.rt.metrics.profile_repeats.inc()
            return None
        if envelope["kind"] == "media":
            profile = add_visual_tags(profile, envelope["tags"], envelope["at_ms"])
        elif envelope["kind"] == "mentioned":
            profile = add_mentioned_by(profile, envelope["by"])
        else:
            profile = update_profile(profile, envelope["post"])
        profile["applied_offsets"] = {**applied, source: offset}
        return await self.save(user, profile, event)

    async def save(self, user: str, profile: Profile, event: EventT) -> Any:
        """Keep the profile; publish it when its rate limit allows (a user only mentioned, who has
        not posted, is kept but not published); the pending publication, if any."""
        with processing(event):
            self.table[user] = profile
        if profile["posts"] == 0:
            return None
        if time.monotonic() - self.last_published.get(user, 0.0) >= self.interval_s:
            return await self.publish(user, profile, event)
        self.dirty[user] = event
        return None

    async def publish(self, user: str, profile: Profile, event: EventT) -> Any:
        with processing(event):
            pending = await self.out.send(key=user.encode(), value=orjson.dumps(published_profile(profile)))
        self.last_published[user] = time.monotonic()
        self.dirty.pop(user, None)
        return pending

    async def erase(self, event: EventT, user: str) -> Any:
        profile: Profile | None = self.table.get(user)
        held = profile is not None
        forget = envelopes.encode(envelopes.forget_envelope(user))
        with processing(event):
            # The erased user leaves their interlocutors' profiles too (each on its own partition).
            sent = [
                await self.by_user.send(key=other.encode(), value=forget) for other in sorted(interlocutors(profile))
            ]
            if held:
                del self.table[user]
            sent.append(await self.out.send(key=user.encode(), value=None))
        self.dirty.pop(user, None)
        self.last_published.pop(user, None)
        self.rt.metrics.erasures.inc()
        log.info(
            "erasure done: user %s, profile %s, tombstone published to %s",
            user,
            "removed" if held else "not held",
            self.rt.settings.topic_profiles,
        )
        return asyncio.gather(*sent)

    async def flush(self) -> None:
        """Publish the profiles held back by the rate limit once their interval passed."""
        now = time.monotonic()
        assigned = self.rt.app.consumer.assignment()
        pending = []
        for user, event in list(self.dirty.items()):
            if now - self.last_published.get(user, 0.0) < self.interval_s:
                continue
            profile = self.table.get(user)
            if profile is None or event.message.tp not in assigned:  # erased, or moved to another worker
                self.dirty.pop(user, None)
            else:
                pending.append(await self.publish(user, profile, event))
        await asyncio.gather(*pending)

    def profile(self, user: str) -> dict[str, Any] | None:
        """The published form of a profile held by this worker (for the query view)."""
        profile: Profile | None = self.table.get(user)
        return None if profile is None or profile["posts"] == 0 else published_profile(profile)


def install_profiles(runtime: Runtime) -> ProfilesAgent:
    """The profiles agent; its input is routed by the fan-out agent (streams.fanout)."""
    agent = ProfilesAgent(runtime)
    loop = batch_loop(runtime, "profiles")

    # concurrency=1: this agent writes a table.
    @runtime.agent(agent.by_user, name="profiles")
    async def profiles(stream: StreamT) -> None:
        await loop.run(stream, BATCH, LINGER_S, agent.apply_batch)

    @runtime.app.timer(FLUSH_INTERVAL_S)
    async def flush_profiles() -> None:
        async with gated(runtime.commit_gate):  # exactly-once: no commit splits a flush
            await agent.flush()

    return agent
