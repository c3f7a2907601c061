"""The trends stage's state and wire formats, typed, with their encode and decode.

On ``trends-by-term`` (keyed by term key, or sent to every partition):

    MentionsMessage   {"m": [mention, ...], "label"?: topic label}       keyed by term key
    TermsMessage      {"t": {term key: [mention, ...]}}                   to the terms' partition
    WatermarkMessage  {"wm": {source: event ms}, "caught_up": [source], "at": epoch s}

A batch of posts names hundreds of terms: the route combines their mentions into
one ``TermsMessage`` per destination partition (the partition a message keyed by
each term would go to), instead of one message per term, as Kafka Streams' record
cache combines updates before they cross a repartition topic.

On ``trends-to-cluster`` (one partition): ``ClusterMessage``
``{"posts": [{"m": mention, "e": embedding, "t": terms}], "wm": {source: event ms}}``.

A mention is a positional list on the wire (it is sent once per term of each
post, so its size counts); ``Mention`` names its fields. ``TermState`` is the
value of the ``trend-terms`` table (JSON on its changelog).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, NotRequired, TypedDict

import orjson
from typing_extensions import TypeIs

from streams.trends.detect import Model

SEP = "\x1f"  # between kind and term in a term key: no term contains it
SENTIMENTS = ("negative", "neutral", "positive")
MentionOutcome = Literal["added", "late", "duplicate"]
# A pane: [count, negative, neutral, positive, toxic, [users], [sample post ids], capped]
# (indices named in streams.trends.windows); a list keeps the changelog small.
Pane = list[Any]


def term_key(kind: str, term: str) -> str:
    return f"{kind}{SEP}{term}"


def split_key(key: str) -> tuple[str, str]:
    """(kind, term) of a term key."""
    kind, term = key.split(SEP, 1)
    return kind, term


class Mention(NamedTuple):
    post_id: str
    event_ms: int
    user: str  # the last characters of the pseudonym: enough to count unique users
    sentiment: int  # index into SENTIMENTS
    toxic: int  # 1 when moderation did not allow the post
    partition: int  # posts.enriched partition and offset it came from: makes adds idempotent
    offset: int

    def to_wire(self) -> list[Any]:
        return list(self)

    @classmethod
    def from_wire(cls, raw: list[Any]) -> Mention:
        post_id, event_ms, user, sentiment, toxic, partition, offset = raw
        return cls(str(post_id), int(event_ms), str(user), int(sentiment), int(toxic), int(partition), int(offset))


def mention_of(post: dict[str, Any], partition: int, offset: int) -> Mention:
    label = (post.get("sentiment") or {}).get("label")
    sentiment = SENTIMENTS.index(label) if label in SENTIMENTS else 1
    toxic = (post.get("moderation") or {}).get("action", "allow") != "allow"
    user = str(post.get("user_id", ""))[-10:]
    return Mention(post["id"], post["created_at_ms"], user, sentiment, int(toxic), partition, offset)


class MentionsMessage(TypedDict):
    m: list[list[Any]]
    label: NotRequired[str]


class TermsMessage(TypedDict):
    t: dict[str, list[list[Any]]]  # term key -> mentions on the wire


class WatermarkMessage(TypedDict):
    wm: dict[str, int]  # source (posts.enriched partition, or "topics") -> newest event ms sent
    caught_up: list[str]  # sources that have read everything there is
    at: float  # epoch seconds of the claim


class ClusterPost(TypedDict):
    m: list[Any]  # the mention, on the wire
    e: list[float]  # the embedding
    t: list[str]  # hashtags and one-word keywords, for the topic's label


class ClusterMessage(TypedDict):
    posts: list[ClusterPost]
    wm: dict[str, int]


def encode_mentions(mentions: list[Mention], label: str | None = None) -> bytes:
    message: MentionsMessage = {"m": [m.to_wire() for m in mentions]}
    if label is not None:
        message["label"] = label
    return orjson.dumps(message)


def encode_watermark(marks: dict[str, int], caught_up: list[str], at: float) -> bytes:
    message: WatermarkMessage = {"wm": marks, "caught_up": caught_up, "at": at}
    return orjson.dumps(message)


def encode_terms(per_key: dict[str, list[Mention]]) -> bytes:
    message: TermsMessage = {"t": {key: [m.to_wire() for m in mentions] for key, mentions in per_key.items()}}
    return orjson.dumps(message)


ByTermMessage = MentionsMessage | TermsMessage | WatermarkMessage


def decode_by_term(value: bytes) -> ByTermMessage:
    """A message of ``trends-by-term``: a watermark when it has "wm", combined terms when it has
    "t", one term's mentions otherwise."""
    raw = orjson.loads(value)
    if "wm" in raw:
        return {"wm": raw["wm"], "caught_up": list(raw.get("caught_up", ())), "at": float(raw.get("at", 0.0))}
    if "t" in raw:
        return {"t": raw["t"]}
    message: MentionsMessage = {"m": raw["m"]}
    if "label" in raw:
        message["label"] = raw["label"]
    return message


def is_watermark(message: ByTermMessage) -> TypeIs[WatermarkMessage]:
    return "wm" in message


def is_terms(message: ByTermMessage) -> TypeIs[TermsMessage]:
    return "t" in message


def encode_cluster(posts: list[ClusterPost], marks: dict[str, int]) -> bytes:
    message: ClusterMessage = {"posts": posts, "wm": marks}
    return orjson.dumps(message)


def decode_cluster(value: bytes) -> ClusterMessage:
    raw = orjson.loads(value)
    return {"posts": raw["posts"], "wm": raw["wm"]}


class TermState(TypedDict):
    kind: str  # a TermKind (str: it comes back from JSON)
    term: str
    label: str | None  # a semantic topic's label
    p: int  # the trends partition that owns the term
    panes: dict[str, Pane]  # pane start ms (as text: JSON keys) -> pane
    applied: dict[str, int]  # source partition -> last source offset added
    closed: int | None  # windows ending at or before this are closed
    model: Model | None  # the spike detector and forecaster of the term's tumbling windows
    model_end: int | None  # end of the last window the model saw
    history: list[list[int]]  # [window start ms, count] of recent closed tumbling windows


def new_state(kind: str, term: str, partition: int, label: str | None = None) -> TermState:
    return {
        "kind": kind,
        "term": term,
        "label": label,
        "p": partition,
        "panes": {},
        "applied": {},
        "closed": None,
        "model": None,
        "model_end": None,
        "history": [],
    }
