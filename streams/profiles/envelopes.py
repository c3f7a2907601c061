"""What the fan-out and the media agent send to the profiles agent on ``profiles-by-user``.

One envelope, keyed by pseudonymous user id:

    {"kind": "post", "post": {fields of the enriched post}, "source": [partition, offset]}
    {"kind": "media", "tags": {tag: score}, "at_ms": the post's event ms, "source": [partition, offset]}
    {"kind": "mentioned", "by": the mentioning author, "source": [partition, offset]}
    {"kind": "forget", "user": an erased user, to leave this user's interlocutors}
    {"kind": "erase", "requested_at_ms": epoch ms}

or, from the fan-out, a batch's posts for one partition in one message (no key; sent to
the partition each of its users' keys goes to):

    {"kind": "users", "envelopes": [[user id, envelope], ...]}

The source partition and offset make the fold idempotent: a repeat of an
envelope (re-sent, or re-read after a rebalance) is recognised and skipped.
A post's source is its posts.enriched partition; a media envelope's, the media
agent's input partition (applied offsets kept apart: ``media-<partition>``).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import orjson

from streams.ingest.parse import METRIC_NAMES

POST_FIELDS = ("created_at_ms", "sentiment", "moderation", "terms", "metrics", "language", "mentions", "reply_to",
               "repost_of")  # fmt: skip


class PostEnvelope(TypedDict):
    kind: Literal["post"]
    post: dict[str, Any]
    source: tuple[int, int]  # posts.enriched partition, offset


class MediaEnvelope(TypedDict):
    kind: Literal["media"]
    tags: dict[str, float]  # the post's image tags, each at its best item's score
    at_ms: int
    source: tuple[int, int]  # media requests partition, offset


class MentionedEnvelope(TypedDict):
    """A post by ``by`` mentioned this user: the incoming side of the interaction graph, sent to
    the mentioned user's partition (a repartition by target, as Kafka Streams would)."""

    kind: Literal["mentioned"]
    by: str
    source: tuple[int, int]  # posts.enriched partition, offset


class ForgetEnvelope(TypedDict):
    """``user`` was erased: take them out of this user's interlocutors."""

    kind: Literal["forget"]
    user: str


class EraseEnvelope(TypedDict):
    kind: Literal["erase"]
    requested_at_ms: int


Envelope = PostEnvelope | MediaEnvelope | MentionedEnvelope | ForgetEnvelope | EraseEnvelope


def post_envelope(post: dict[str, Any], partition: int, offset: int) -> PostEnvelope:
    fields = {name: post.get(name) for name in POST_FIELDS}
    if isinstance(fields["metrics"], dict):  # the contract's counts only: a post may carry any names
        fields["metrics"] = {name: count for name, count in fields["metrics"].items() if name in METRIC_NAMES}
    return {"kind": "post", "post": fields, "source": (partition, offset)}


def media_envelope(tags: dict[str, float], at_ms: int, partition: int, offset: int) -> MediaEnvelope:
    return {"kind": "media", "tags": tags, "at_ms": at_ms, "source": (partition, offset)}


def mentioned_envelope(by: str, partition: int, offset: int) -> MentionedEnvelope:
    return {"kind": "mentioned", "by": by, "source": (partition, offset)}


def forget_envelope(user: str) -> ForgetEnvelope:
    return {"kind": "forget", "user": user}


def erase_envelope(now_ms: int) -> EraseEnvelope:
    return {"kind": "erase", "requested_at_ms": now_ms}


def encode(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope)


def encode_users(entries: list[tuple[str, Envelope]]) -> bytes:
    """Several users' envelopes in one message (all of them keyed to one partition)."""
    return orjson.dumps({"kind": "users", "envelopes": entries})


def decode(key: bytes | None, value: bytes) -> list[tuple[str, Envelope]]:
    """(user id, envelope) of each envelope a message holds, in order (written by ``encode``
    or ``encode_users``: trusted, not validated)."""
    raw = orjson.loads(value)
    if raw["kind"] == "users":
        return [(user, _envelope(envelope)) for user, envelope in raw["envelopes"]]
    return [((key or b"").decode(), _envelope(raw))]


def _envelope(raw: dict[str, Any]) -> Envelope:
    if raw["kind"] == "erase":
        return {"kind": "erase", "requested_at_ms": int(raw["requested_at_ms"])}
    if raw["kind"] == "forget":
        return forget_envelope(str(raw["user"]))
    partition, offset = raw["source"]
    if raw["kind"] == "mentioned":
        return mentioned_envelope(str(raw["by"]), int(partition), int(offset))
    if raw["kind"] == "media":
        return media_envelope(dict(raw["tags"]), int(raw["at_ms"]), int(partition), int(offset))
    return {"kind": "post", "post": raw["post"], "source": (int(partition), int(offset))}
