"""Whatever the bytes, parsing either yields a post or raises InvalidPost with a reason."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import InvalidPost, Reason
from streams.ingest.parse import MAX_NESTING, nesting, parse_post
from streams.privacy.redact import DEFAULT_KINDS, redact
from streams.records import normalised_post
from streams.replay.fuzz import hostile

JSON_LEAVES = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20
)
FIELDS = ["id", "user_id", "text", "created_at", "hashtags", "media", "metrics", "lang", "reply_to"]
POSTS = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), JSON_VALUES, max_size=10)


def outcome(data: bytes | None, max_bytes: int = 1 << 16) -> Reason | None:
    try:
        post = parse_post(data, max_bytes)
    except InvalidPost as error:
        assert isinstance(error.reason, Reason) and error.message
        return error.reason
    orjson.dumps(normalised_post(post, "u_x"))  # a valid post is always publishable
    return None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    outcome(data)


@settings(max_examples=400, deadline=None)
@given(POSTS)
def test_arbitrary_json_objects(value: dict[str, Any]) -> None:
    outcome(orjson.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_redaction_never_fails_and_only_masks(text: str) -> None:
    masked, kinds = redact(text, DEFAULT_KINDS)
    assert set(kinds) <= set(DEFAULT_KINDS)
    assert (masked == text) == (not kinds)


def test_a_huge_number_as_timestamp_is_an_invalid_timestamp() -> None:
    assert outcome(b'{"id": 1, "user_id": 2, "text": "x", "created_at": 123456789012345678901234567890}') == (
        Reason.INVALID_TIMESTAMP
    )


def test_every_hostile_message_gets_the_reason_it_was_made_for() -> None:
    wrong: Counter[tuple[Reason, Reason | None]] = Counter()
    for _, reason, value in hostile(10_000, seed=7):
        got = outcome(value, max_bytes=1 << 20)
        if got != reason:
            wrong[(reason, got)] += 1
    assert not wrong, wrong.most_common(5)


def test_hostile_messages_are_the_same_for_the_same_seed() -> None:
    assert hostile(200, seed=3) == hostile(200, seed=3) != hostile(200, seed=4)


@given(st.integers(1, 200))
def test_nesting_past_the_limit_is_refused_and_up_to_it_published(depth: int) -> None:
    nested = b'{"k": ' * (depth - 1) + b"1" + b"}" * (depth - 1)  # the post itself is one level
    data = b'{"id": "a", "user_id": "u", "text": "hi", "created_at": 1, "extra": ' + nested + b"}"
    assert nesting(orjson.loads(data)) == depth
    assert outcome(data) == (None if depth <= MAX_NESTING else Reason.INVALID_VALUE)
