"""Parsing and validation of raw posts: every bad input gets its reason."""

from __future__ import annotations

import orjson
import pytest

from streams.errors import InvalidPost, Reason
from streams.ingest.parse import InputLimits, parse_post, parse_timestamp
from streams.replay.malformed import CASES, malformed

LIMIT = 1 << 20


def post(**changes: object) -> bytes:
    value: dict[str, object] = {"id": "p1", "user_id": "u1", "text": "hello world", "created_at": 1_767_225_600_000}
    value.update(changes)
    return orjson.dumps(value)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_each_malformed_case_gets_its_reason(index: int) -> None:
    reason, payload = malformed(index)
    with pytest.raises(InvalidPost) as caught:
        parse_post(payload, LIMIT)
    assert caught.value.reason == reason


def test_a_valid_post_keeps_unknown_fields() -> None:
    parsed = parse_post(post(custom={"a": 1}, id=42), LIMIT)
    assert parsed.id == "42"
    assert parsed.fields["custom"] == {"a": 1}
    assert parsed.created_at_ms == 1_767_225_600_000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-01T00:00:00Z", 1_767_225_600_000),
        ("2026-01-01T01:00:00+01:00", 1_767_225_600_000),
        (1_767_225_600_000, 1_767_225_600_000),
        (1_767_225_600_000.7, 1_767_225_600_000),
    ],
)
def test_timestamps_in_rfc3339_or_epoch_ms(raw: object, expected: int) -> None:
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize("raw", ["2026-01-01 10:00", "nope", True, None, float("nan"), -1, 10**20, [1]])
def test_unparsable_timestamps(raw: object) -> None:
    with pytest.raises(InvalidPost) as caught:
        parse_timestamp(raw)
    assert caught.value.reason == Reason.INVALID_TIMESTAMP


def test_oversized_message_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidPost) as caught:
        parse_post(b"x" * 101, 100)
    assert caught.value.reason == Reason.TOO_LARGE


def test_a_megabyte_of_text_is_accepted_and_kept_whole() -> None:
    text = "word " * 200_000
    assert len(parse_post(post(text=text), 8 << 20).text) == len(text.strip())


def test_emoji_only_text_is_a_post() -> None:
    assert parse_post(post(text="😂😂🔥"), LIMIT).text == "😂😂🔥"


def test_control_characters_are_removed_from_text() -> None:
    assert parse_post(post(text="a\x00b\x07c\u202e"), LIMIT).text == "abc"


def test_unpaired_surrogate_escape_is_invalid_json() -> None:
    with pytest.raises(InvalidPost) as caught:
        parse_post(b'{"id":"1","user_id":"u","text":"\\ud800","created_at":1}', LIMIT)
    assert caught.value.reason == Reason.INVALID_JSON
    assert "surrogate" in caught.value.message


def test_deep_nesting_is_invalid_json_not_a_crash() -> None:
    with pytest.raises(InvalidPost) as caught:
        parse_post(b"[" * 5000 + b"]" * 5000, LIMIT)
    assert caught.value.reason == Reason.INVALID_JSON


@pytest.mark.parametrize("field", ["id", "user_id"])
def test_boolean_ids_are_wrong_type(field: str) -> None:
    with pytest.raises(InvalidPost) as caught:
        parse_post(post(**{field: True}), LIMIT)
    assert caught.value.reason == Reason.WRONG_TYPE


def test_negative_engagement_is_wrong_type() -> None:
    with pytest.raises(InvalidPost) as caught:
        parse_post(post(metrics={"likes": -1}), LIMIT)
    assert caught.value.reason == Reason.WRONG_TYPE


@pytest.mark.parametrize(
    "created_at",
    [
        "9999-12-31T23:59:59-14:00",  # a valid local time that is year 10000 in UTC
        "1900-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:00",
        "1969-12-31T23:59:59.999Z",
        "1970-01-01T00:00:00+01:00",  # 1969 in UTC
    ],
)
def test_dates_outside_what_utc_can_write_from_1970_are_refused(created_at: str) -> None:
    with pytest.raises(InvalidPost) as caught:
        parse_post(post(created_at=created_at), LIMIT)
    assert caught.value.reason == Reason.INVALID_TIMESTAMP


def test_the_last_writable_moment_passes() -> None:
    assert parse_timestamp("9999-12-31T23:59:59.999Z") == 253_402_300_799_999
    assert parse_timestamp("1970-01-01T00:00:00Z") == 0


def test_hashtags_are_capped_and_the_cap_is_reported() -> None:
    limits = InputLimits(LIMIT, max_hashtags=30)
    given = parse_post(post(hashtags=[f"tag{i}" for i in range(50_000)]), LIMIT, limits)
    assert given.hashtags == tuple(f"tag{i}" for i in range(30)) and given.capped == ("hashtags",)
    in_text = parse_post(post(text=" ".join(f"#t{i}" for i in range(1000))), LIMIT, limits)
    assert len(in_text.hashtags) == 30 and in_text.capped == ("hashtags",)
    few = parse_post(post(hashtags=["A", "a", "#b", "x" * 101]), LIMIT, limits)
    assert few.hashtags == ("a", "b") and few.capped == ()  # folded, unique; a 101-character "tag" is none


def test_a_post_with_more_media_items_than_the_limit_is_dead_lettered() -> None:
    limits = InputLimits(LIMIT, max_media=16)
    assert len(parse_post(post(media=[{"type": "image"}] * 16), LIMIT, limits).fields["media"]) == 16
    with pytest.raises(InvalidPost) as caught:
        parse_post(post(media=[{}] * 17), LIMIT, limits)
    assert caught.value.reason == Reason.INVALID_VALUE and "limit 16" in caught.value.message
