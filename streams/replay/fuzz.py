"""Hostile messages: a seeded fuzzer of malformed input, each with the reason it must get.

Where ``malformed`` cycles through one fixed example per rule, ``hostile`` draws
from families of attacks with random sizes and places: JSON cut at a random byte,
random binary, numbers past every range, nesting past any parser's limit, NaN and
Infinity literals, megabyte strings, unpaired surrogates (escaped and raw), wrong
types in every field, tombstones (no value at all). Each message is invalid by
construction, so the reason is known without parsing it.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

import orjson

from streams.errors import Reason

MEGABYTE = 1 << 20
VALID_MS = 1_767_225_600_000
Hostile = tuple[Reason, bytes | None]


def _post(index: int, **changes: object) -> dict[str, object]:
    post: dict[str, object] = {"id": f"fuzz-{index}", "user_id": f"fuzzer-{index % 97}", "text": "a fine day"}
    post["created_at"] = VALID_MS + index
    post.update(changes)
    return post


def _ascii(rng: random.Random, size: int) -> str:
    alphabet = string.ascii_letters + string.digits + " #@$"
    return (alphabet * (size // len(alphabet) + 1))[rng.randrange(len(alphabet)) :][:size]


def _json(value: object) -> bytes:
    return orjson.dumps(value)


def cut_json(rng: random.Random, index: int) -> Hostile:
    whole = _json(_post(index, text=_ascii(rng, rng.randint(1, 400)), hashtags=["a", "b"]))
    return Reason.INVALID_JSON, whole[: rng.randint(0, len(whole) - 1)]


def binary(rng: random.Random, index: int) -> Hostile:
    # 0xff never occurs in UTF-8, so the decoder stops there whatever follows.
    return Reason.INVALID_UTF8, b"\xff" + rng.randbytes(rng.randint(0, 2000))


def raw_surrogate(rng: random.Random, index: int) -> Hostile:
    body = _json(_post(index, text="SURROGATE")).replace(b"SURROGATE", b"\xed\xa0\x80" * rng.randint(1, 5))
    return Reason.INVALID_UTF8, body


def escaped_surrogate(rng: random.Random, index: int) -> Hostile:
    lone = rng.choice([b"\\ud800", b"\\udfff", b"\\ud83d x"])
    return Reason.INVALID_JSON, _json(_post(index, text="SURROGATE")).replace(b"SURROGATE", lone)


def non_finite(rng: random.Random, index: int) -> Hostile:
    literal = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
    field = rng.choice([b"created_at", b"metrics", b"text", b"lang"])
    body = _json(_post(index)).replace(b"}", b', "%s_extra": %s}' % (field, literal))
    return Reason.INVALID_JSON, body


def huge_number(rng: random.Random, index: int) -> Hostile:
    digits = "9" * rng.randint(20, 300)  # past 308 digits it is no number at all
    created = rng.choice([digits, f"-{digits}", "1e308", "-1", "253402300800000"])
    return Reason.INVALID_TIMESTAMP, _json(_post(index, created_at="X")).replace(b'"X"', created.encode())


def too_deep_to_parse(rng: random.Random, index: int) -> Hostile:
    depth = rng.randint(1025, 5_000)
    nested = b"[" * depth + b"]" * depth
    return Reason.INVALID_JSON, _json(_post(index, extra="X")).replace(b'"X"', nested)


def too_deep_to_keep(rng: random.Random, index: int) -> Hostile:
    depth = rng.randint(33, 1000)
    key = rng.choice([b'{"k": ', b"["])
    close = b"}" if key.startswith(b"{") else b"]"
    nested = key * depth + b"1" + close * depth
    return Reason.INVALID_VALUE, _json(_post(index, extra="X")).replace(b'"X"', nested)


def megabyte_message(rng: random.Random, index: int) -> Hostile:
    return Reason.TOO_LARGE, _json(_post(index, text=_ascii(rng, MEGABYTE + rng.randint(0, 1000))))


def megabyte_identifier(rng: random.Random, index: int) -> Hostile:
    field = rng.choice(["id", "user_id"])
    return Reason.INVALID_VALUE, _json(_post(index, **{field: "x" * rng.randint(257, MEGABYTE - 1000)}))


WRONG_VALUES: dict[str, list[object]] = {
    "id": [1.5, True, [1], {"a": 1}],
    "user_id": [False, 2.5, ["u"], {}],
    "text": [12345, 1.0, True, ["a"], {"text": "x"}],
    "hashtags": ["tag", 7, {"a": 1}, [1, 2], [None]],
    "media": ["http://x", [1], ["url"]],
    "metrics": [[1], "many", {"likes": -1}, {"likes": 1.5}, {"views": True}, {"likes": "9"}],
    "lang": [5, ["en"]],
    "reply_to": [1.5, [], True],
}


def wrong_type(rng: random.Random, index: int) -> Hostile:
    field = rng.choice(sorted(WRONG_VALUES))
    return Reason.WRONG_TYPE, _json(_post(index, **{field: rng.choice(WRONG_VALUES[field])}))


def bad_timestamp(rng: random.Random, index: int) -> Hostile:
    created = rng.choice([True, "2026-13-45T00:00:00Z", "2026-01-01T10:00:00", "soon", "", [1], {"ms": 1}, -1])
    return Reason.INVALID_TIMESTAMP, _json(_post(index, created_at=created))


def empty_text(rng: random.Random, index: int) -> Hostile:
    text = "".join(rng.choices(["", " ", "\n", "\t", "\x00", "\x01", "\u200b", "\x7f"], k=rng.randint(0, 50)))
    return Reason.EMPTY_TEXT, _json(_post(index, text=text))


def missing_field(rng: random.Random, index: int) -> Hostile:
    post = _post(index)
    name = rng.choice(["id", "user_id", "text", "created_at"])
    if name != "created_at" and rng.random() < 0.5:
        post[name] = None  # null counts as missing; a null created_at is a bad timestamp instead
    else:
        del post[name]
    return Reason.MISSING_FIELD, _json(post)


def not_an_object(rng: random.Random, index: int) -> Hostile:
    value = rng.choice([[_post(index)], "a post", 42, 1.5, True, None, [1] * rng.randint(0, 10_000)])
    return Reason.NOT_AN_OBJECT, _json(value)


def no_value(rng: random.Random, index: int) -> Hostile:
    return Reason.INVALID_JSON, rng.choice([None, b"", b" \n\t", b"{}{}", b"{"])


def duplicate_key(rng: random.Random, index: int) -> Hostile:
    # The last of duplicate keys wins: the empty text after the good one.
    return Reason.EMPTY_TEXT, _json(_post(index)).replace(b"}", b', "text": "   "}')


def bad_identifier(rng: random.Random, index: int) -> Hostile:
    value = rng.choice(["", "   ", "\t\n", "y" * 257])
    return Reason.INVALID_VALUE, _json(_post(index, **{rng.choice(["id", "user_id"]): value}))


# (family, weight): megabyte messages are rare (1 in 1,000), so 10,000 messages stay near 30 MB.
FAMILIES: list[tuple[Callable[[random.Random, int], Hostile], float]] = [
    (cut_json, 12), (binary, 6), (raw_surrogate, 5), (escaped_surrogate, 5), (non_finite, 6),
    (huge_number, 6), (too_deep_to_parse, 4), (too_deep_to_keep, 5), (megabyte_message, 0.1),
    (megabyte_identifier, 0.1), (wrong_type, 14), (bad_timestamp, 8), (empty_text, 6),
    (missing_field, 8), (not_an_object, 5), (no_value, 3), (duplicate_key, 2), (bad_identifier, 3),
]  # fmt: skip


def hostile(count: int, seed: int = 0) -> list[tuple[str, Reason, bytes | None]]:
    """``count`` hostile messages as (key, reason, value); the same seed gives the same messages."""
    rng = random.Random(seed)
    makers = rng.choices([f for f, _ in FAMILIES], weights=[w for _, w in FAMILIES], k=count)
    out = []
    for index, make in enumerate(makers):
        reason, value = make(rng, index)
        out.append((f"fuzz-{seed}-{index}", reason, value))
    return out
