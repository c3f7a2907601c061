"""Whatever the bytes, parsing either yields a post or raises InvalidPost with a reason."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import InvalidPost, Reason
from streams.ingest.parse import parse_post
from streams.privacy.redact import DEFAULT_KINDS, redact
from streams.records import normalised_post

JSON_LEAVES = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20
)
FIELDS = ["id", "user_id", "text", "created_at", "hashtags", "media", "metrics", "lang", "reply_to"]
POSTS = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), JSON_VALUES, max_size=10)


def outcome(data: bytes) -> Reason | None:
    try:
        post = parse_post(data, 1 << 16)
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
def test_arbitrary_json_objects(value: dict) -> None:  # type: ignore[type-arg]
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
