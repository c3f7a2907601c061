"""Parse and validate one raw message against the ``posts.raw`` contract.

``parse_post`` returns a ``RawPost`` or raises ``InvalidPost`` with a reason
code; it never raises anything else, whatever the bytes are.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from streams.errors import InvalidPost, Reason, Stage
from streams.inference.normalize import clean_text

MAX_ID_CHARS = 256
# Deeper documents are refused: JSON encoders have recursion limits (orjson's is
# 254), so a post nested deeper could be read but never published.
MAX_NESTING = 32
KNOWN_FIELDS = (
    "id", "user_id", "text", "created_at", "platform", "lang", "hashtags",
    "media", "metrics", "reply_to", "repost_of",
)  # fmt: skip
METRIC_NAMES = ("likes", "reposts", "replies", "views")
# Epoch milliseconds from 1970 up to year 9999: anything else is not a time.
MAX_EPOCH_MS = 253_402_300_799_999


DEFAULT_MAX_HASHTAGS = 30
DEFAULT_MAX_MEDIA = 16
# A hashtag is at most this long; longer ones are not tags (the text's own are found as \w{1,100}).
MAX_HASHTAG_CHARS = 100
_HASHTAG = re.compile(r"(?<![\w#])#(\w{1,100})")


@dataclass(frozen=True)
class InputLimits:
    """How much one post may carry: every part of a post that grows with its input is bounded,
    so one message cannot grow a worker's memory or an internal message without end."""

    max_bytes: int = 1 << 20
    max_hashtags: int = DEFAULT_MAX_HASHTAGS  # more are left out of the post (``capped``)
    max_media: int = DEFAULT_MAX_MEDIA  # more make the post a dead letter


@dataclass(frozen=True)
class RawPost:
    id: str
    user_id: str
    text: str
    created_at_ms: int
    fields: dict[str, Any]  # every field of the input, unknown ones included
    hashtags: tuple[str, ...] = ()  # given with the post, else found in its text; folded, unique, capped
    capped: tuple[str, ...] = ()  # the limits this post went past (counted in a metric)


def decode_json(data: bytes | None, max_bytes: int) -> dict[str, Any]:
    if data is None:
        raise InvalidPost(Reason.INVALID_JSON, "message has no value", Stage.PARSE)
    if len(data) > max_bytes:
        raise InvalidPost(Reason.TOO_LARGE, f"message is {len(data)} bytes, limit {max_bytes}", Stage.PARSE)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPost(Reason.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}", Stage.PARSE) from None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidPost(Reason.INVALID_JSON, f"invalid JSON: {exc}", Stage.PARSE) from None
    if not isinstance(value, dict):
        raise InvalidPost(Reason.NOT_AN_OBJECT, f"expected a JSON object, got {type(value).__name__}", Stage.PARSE)
    if nesting(value) > MAX_NESTING:
        raise InvalidPost(Reason.INVALID_VALUE, f"JSON nested deeper than {MAX_NESTING} levels", Stage.PARSE)
    return value


def nesting(value: Any) -> int:
    """How many objects and arrays deep ``value`` goes (a scalar is 0)."""
    deepest = 0
    level: list[Any] = [value]
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        deepest += 1
        level = [item for c in containers for item in (c.values() if isinstance(c, dict) else c)]
    return deepest


def _identifier(value: dict[str, Any], name: str) -> str:
    if name not in value or value[name] is None:
        raise InvalidPost(Reason.MISSING_FIELD, f"field {name!r} is missing")
    raw = value[name]
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidPost(Reason.WRONG_TYPE, f"field {name!r} must be a string or integer, got {type(raw).__name__}")
    text = str(raw).strip()
    if not text:
        raise InvalidPost(Reason.INVALID_VALUE, f"field {name!r} is empty")
    if len(text) > MAX_ID_CHARS:
        raise InvalidPost(Reason.INVALID_VALUE, f"field {name!r} is {len(text)} characters, limit {MAX_ID_CHARS}")
    return text


def _text(value: dict[str, Any]) -> str:
    if "text" not in value or value["text"] is None:
        raise InvalidPost(Reason.MISSING_FIELD, "field 'text' is missing")
    if not isinstance(value["text"], str):
        raise InvalidPost(Reason.WRONG_TYPE, f"field 'text' must be a string, got {type(value['text']).__name__}")
    try:
        value["text"].encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPost(Reason.INVALID_UTF8, "field 'text' holds an unpaired surrogate") from None
    text = clean_text(value["text"])
    if not text:
        raise InvalidPost(Reason.EMPTY_TEXT, "field 'text' is empty or holds only whitespace and control characters")
    return text


def parse_timestamp(raw: Any) -> int:
    """Epoch milliseconds of an RFC 3339 string or an epoch-ms number."""
    if isinstance(raw, bool) or raw is None:
        raise InvalidPost(Reason.INVALID_TIMESTAMP, f"'created_at' must be RFC 3339 or epoch ms, got {raw!r}")
    if isinstance(raw, int | float):
        if not math.isfinite(raw) or not 0 <= raw <= MAX_EPOCH_MS:
            raise InvalidPost(Reason.INVALID_TIMESTAMP, f"'created_at' {raw!r} is not epoch milliseconds")
        return int(raw)
    if not isinstance(raw, str):
        raise InvalidPost(
            Reason.INVALID_TIMESTAMP, f"'created_at' must be a string or number, got {type(raw).__name__}"
        )
    try:
        when = dt.datetime.fromisoformat(raw.strip().replace("z", "Z"))
    except ValueError:
        raise InvalidPost(Reason.INVALID_TIMESTAMP, f"'created_at' {raw[:64]!r} is not RFC 3339") from None
    if when.tzinfo is None:
        raise InvalidPost(Reason.INVALID_TIMESTAMP, f"'created_at' {raw[:64]!r} has no time-zone offset")
    epoch_ms = int(when.timestamp() * 1000)
    # An offset can carry a valid local time outside what UTC can write (9999-12-31T23:59-14:00
    # is year 10000 in UTC): the output's created_at must be writable, so the range is in UTC.
    if not 0 <= epoch_ms <= MAX_EPOCH_MS:
        raise InvalidPost(
            Reason.INVALID_TIMESTAMP, f"'created_at' {raw[:64]!r} is outside 1970-01-01 .. 9999-12-31 UTC"
        )
    return epoch_ms


def _check_optional(value: dict[str, Any]) -> None:
    expected: dict[str, tuple[type, ...]] = {
        "platform": (str,), "lang": (str,), "hashtags": (list,), "media": (list,),
        "metrics": (dict,), "reply_to": (str, int), "repost_of": (str, int),
    }  # fmt: skip
    for name, types in expected.items():
        field = value.get(name)
        if field is not None and (isinstance(field, bool) or not isinstance(field, types)):
            names = " or ".join(t.__name__ for t in types)
            raise InvalidPost(Reason.WRONG_TYPE, f"field {name!r} must be {names}, got {type(field).__name__}")
    if any(not isinstance(tag, str) for tag in value.get("hashtags") or []):
        raise InvalidPost(Reason.WRONG_TYPE, "field 'hashtags' must hold strings only")
    if any(not isinstance(item, dict) for item in value.get("media") or []):
        raise InvalidPost(Reason.WRONG_TYPE, "field 'media' must hold objects only")
    for name, count in (value.get("metrics") or {}).items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidPost(Reason.WRONG_TYPE, f"metrics.{name} must be a non-negative integer")


def hashtags_in(value: dict[str, Any], text: str, limit: int) -> tuple[tuple[str, ...], bool]:
    """The post's hashtags (case-folded, unique, in order) up to ``limit``; and whether it had more."""
    given = value.get("hashtags") or _HASHTAG.findall(text)
    tags: dict[str, None] = {}
    for tag in given:
        folded = tag.strip().lstrip("#").casefold()
        if folded and len(folded) <= MAX_HASHTAG_CHARS and folded not in tags:
            if len(tags) == limit:
                return tuple(tags), True
            tags[folded] = None
    return tuple(tags), False


def validate_post(value: dict[str, Any], limits: InputLimits = InputLimits()) -> RawPost:
    post_id = _identifier(value, "id")
    user_id = _identifier(value, "user_id")
    text = _text(value)
    if "created_at" not in value:
        raise InvalidPost(Reason.MISSING_FIELD, "field 'created_at' is missing")
    created_at_ms = parse_timestamp(value["created_at"])
    _check_optional(value)
    media = value.get("media") or []
    if len(media) > limits.max_media:
        raise InvalidPost(Reason.INVALID_VALUE, f"field 'media' holds {len(media)} items, limit {limits.max_media}")
    hashtags, capped = hashtags_in(value, text, limits.max_hashtags)
    return RawPost(post_id, user_id, text, created_at_ms, value, hashtags, ("hashtags",) if capped else ())


def parse_post(data: bytes | None, max_bytes: int, limits: InputLimits | None = None) -> RawPost:
    limits = limits or InputLimits(max_bytes)
    return validate_post(decode_json(data, max_bytes), limits)
