"""Output records: dead letters and the normalised post."""

from __future__ import annotations

import base64
import hashlib

import orjson

from streams.errors import InvalidPost, Reason, Stage
from streams.ingest.parse import parse_post
from streams.records import Source, dead_letter, hashtags_of, iso_utc, normalised_post

SOURCE = Source("posts.raw", 3, 42, 1_767_225_600_000)


def test_dead_letter_names_stage_reason_and_source() -> None:
    error = InvalidPost(Reason.INVALID_JSON, "invalid JSON: x", Stage.PARSE)
    record = dead_letter(error, SOURCE, b"{broken", 1_767_225_600_123)
    assert record["error"] == {"stage": "parse", "type": "invalid_json", "message": "invalid JSON: x"}
    assert record["source"] == {"topic": "posts.raw", "partition": 3, "offset": 42, "timestamp": 1_767_225_600_000}
    assert record["original"] == "{broken"
    assert record["received_at"] == "2026-01-01T00:00:00.123Z"
    orjson.dumps(record)


def test_dead_letter_keeps_non_utf8_bytes_as_base64() -> None:
    error = InvalidPost(Reason.INVALID_UTF8, "bad", Stage.PARSE)
    record = dead_letter(error, SOURCE, b"\xff\xfe", 0)
    assert record["original_encoding"] == "base64"
    assert base64.b64decode(record["original"]) == b"\xff\xfe"


def test_hashtags_come_from_the_text_when_not_given() -> None:
    post = parse_post(
        orjson.dumps({"id": 1, "user_id": 2, "text": "Go #Team #team and #Win!", "created_at": 0}), 1 << 20
    )
    assert hashtags_of(post) == ["team", "win"]


def test_normalised_post_has_utc_time_and_keeps_unknown_fields() -> None:
    raw = {"id": 1, "user_id": 2, "text": "hi", "created_at": "2026-01-01T01:00:00+01:00", "x": [1]}
    record = normalised_post(parse_post(orjson.dumps(raw), 1 << 20), "u_pseudonym")
    assert record["user_id"] == "u_pseudonym"
    assert record["created_at"] == "2026-01-01T00:00:00.000Z"
    assert record["x"] == [1]
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"


def test_dedupe_forgets_ids_older_than_the_ttl() -> None:
    from streams.ingest.dedupe import expired_ids

    entries = [("old", [1_000, 2]), ("new", [9_000, 0]), ("gone", None), ("standby", [1_000, 3])]
    assert expired_ids(entries, now_ms=10_000, ttl_ms=5_000, partitions={0, 1, 2}) == [("old", 2)]


def test_a_dead_letter_of_a_huge_original_is_cut_to_fit_with_its_size_and_sha256() -> None:
    huge = bytes(range(256)) * 26_000  # 6.6 MB, not UTF-8: whole in base64 it would not fit a record
    error = InvalidPost(Reason.TOO_LARGE, "too large", Stage.PARSE)
    record = dead_letter(error, SOURCE, huge, 0, max_original_bytes=1 << 20)
    assert record["original_encoding"] == "base64" and record["original_truncated"] is True
    assert base64.b64decode(record["original"]) == huge[: 1 << 20]
    assert record["original_size"] == len(huge)
    assert record["original_sha256"] == hashlib.sha256(huge).hexdigest()
    assert len(orjson.dumps(record)) < 2 << 20


def test_a_cut_utf8_original_stays_text_and_never_splits_a_character() -> None:
    text = ("é" * 600_000).encode()  # two bytes a character: a cut at an odd byte splits one
    record = dead_letter(InvalidPost(Reason.TOO_LARGE, "x", Stage.PARSE), SOURCE, text, 0, max_original_bytes=1001)
    assert record["original_encoding"] == "utf-8" and record["original"] == "é" * 500
    # Control characters are escaped six bytes each: the worst case still fits an 8 MiB record.
    worst = dead_letter(InvalidPost(Reason.TOO_LARGE, "x", Stage.PARSE), SOURCE, b"\x01" * (2 << 20), 0)
    assert len(orjson.dumps(worst)) < 8 << 20


def test_an_original_within_the_limit_is_kept_whole_without_the_cut_fields() -> None:
    record = dead_letter(InvalidPost(Reason.INVALID_JSON, "x", Stage.PARSE), SOURCE, b"{x", 0, max_original_bytes=2)
    assert record["original"] == "{x" and "original_truncated" not in record
