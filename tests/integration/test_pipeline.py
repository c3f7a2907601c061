"""posts.raw -> posts.enriched / posts.flagged / posts.deadletter on a real broker."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson
import pytest

from streams.privacy.pseudonym import Pseudonymizer
from streams.replay.malformed import CASES
from streams.replay.sources import read_posts
from tests.schema import validate_all
from tests.support import PSEUDONYM_SECRET, Pipeline, bad_messages, shared_data_or_skip, synthetic

pytestmark = pytest.mark.integration


def assert_exactly_once(records: list[tuple[bytes | None, dict]], expected_keys: set[bytes]) -> None:
    counts = Counter(key for key, _ in records)
    assert set(counts) == expected_keys
    assert max(counts.values()) == 1, [k for k, c in counts.items() if c > 1][:5]


def insulting(pair: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """The post with an insult added: one for moderation to flag."""
    post = orjson.loads(pair[1])
    post["text"] += " you stupid worthless idiot, shut up"
    return pair[0], orjson.dumps(post)


def test_every_input_comes_out_once_as_enriched_post_or_dead_letter(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    good = [insulting(pair) if index % 20 == 0 else pair for index, pair in enumerate(synthetic(300, seed=1))]
    bad, reasons = bad_messages(len(CASES) * 2)
    replayed = random.Random(3).sample(good, 25)  # the same ids again: published once
    mixed = good + bad + replayed
    random.Random(5).shuffle(mixed)
    pipeline.produce(mixed)

    enriched = pipeline.consume("enriched", len(good))
    dead = pipeline.consume("deadletter", len(bad))

    assert_exactly_once(enriched, {key for key, _ in good})
    assert_exactly_once(dead, set(reasons))
    for key, record in dead:
        assert key is not None and record["error"]["type"] == reasons[key], record
        assert record["source"]["topic"] == pipeline.topics["raw"]
        assert record["original"] is not None
    raw_users = {orjson.loads(value)["id"]: orjson.loads(value)["user_id"] for _, value in good}
    pseudonym = Pseudonymizer(PSEUDONYM_SECRET.encode())
    for key, record in enriched:
        assert record["id"].encode() == key
        assert record["user_id"] == pseudonym(raw_users[record["id"]])  # never the raw id
        assert record["schema_version"] == 1
        assert record["sentiment"]["label"] in ("negative", "neutral", "positive")
        assert record["moderation"]["action"] in ("allow", "review", "block")
        assert len(record["embedding"]) == 384
    published = orjson.dumps([r for _, r in enriched]).decode() + "".join(str(r["original"]) for _, r in dead)
    assert not [user for user in set(raw_users.values()) | {"u1"} if f'"{user}"' in published]  # no raw id anywhere
    validate_all("posts.enriched", [record for _, record in enriched])
    validate_all("posts.deadletter", [record for _, record in dead])
    flagged = pipeline.consume("flagged", 0, timeout_s=10, settle_s=1)
    validate_all("posts.flagged", [record for _, record in flagged])
    expected_flagged = {k for k, r in enriched if r["moderation"]["action"] != "allow"}
    assert expected_flagged and {k for k, _ in flagged} == expected_flagged
    # Each flagged post names the words behind its flag, the same on both topics.
    by_key = dict(enriched)
    for key, record in flagged:
        explanation = record["moderation"]["explanation"]
        assert explanation["method"] == "occlusion" and explanation["head"] in record["moderation"]["reasons"]
        assert by_key[key]["moderation"] == record["moderation"]


def test_invalid_utf8_is_dead_lettered_with_its_bytes_in_base64(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    raw = b'{"id": "x", "text": "\xff\xfe broken"}'
    pipeline.produce([(b"broken", raw)])
    [(key, record)] = pipeline.consume("deadletter", 1)
    assert key == b"broken"
    assert record["error"] == {"stage": "parse", "type": "invalid_utf8", "message": "invalid UTF-8 at byte 21"}
    assert record["original_encoding"] == "base64"


def test_a_worker_killed_again_and_again_loses_no_post(pipeline: Pipeline, record_property: Any) -> None:
    rng = random.Random(5)
    worker = pipeline.start_worker()
    good = synthetic(600, seed=2)
    bad, _ = bad_messages(30)
    pipeline.produce(good + bad)
    reached = 0
    for _ in range(3):  # SIGKILL at a random point mid-stream, then a fresh worker
        reached += rng.randint(60, 200)
        pipeline.consume("enriched", reached, settle_s=0)
        pipeline.kill(worker)
        worker = pipeline.start_worker()
    enriched = pipeline.consume_keys("enriched", {key for key, _ in good}, timeout_s=240)
    dead = pipeline.consume_keys("deadletter", {key for key, _ in bad})
    assert {key for key, _ in enriched} == {key for key, _ in good}
    assert {key for key, _ in dead} == {key for key, _ in bad}
    duplicates = len(enriched) - len(good)
    record_property("duplicates_after_3_kills", duplicates)
    print(f"at-least-once: {duplicates} duplicate enriched records after 3 SIGKILLs of 600 posts")


def test_real_tweets_are_enriched(pipeline: Pipeline) -> None:
    path = shared_data_or_skip("semeval2017/twitter-2016dev-A.tsv")
    pipeline.start_worker()
    tweets = list(read_posts(path))[:500]
    pairs = [(orjson.loads(v)["id"].encode(), v) for v in tweets]
    unique = {key for key, _ in pairs}
    bad, _ = bad_messages(50)
    pipeline.produce(pairs + bad)
    enriched = pipeline.consume("enriched", len(unique))
    assert_exactly_once(enriched, unique)
    assert len(pipeline.consume("deadletter", 50)) == 50
    labels = Counter(record["sentiment"]["label"] for _, record in enriched)
    assert set(labels) == {"negative", "neutral", "positive"}


def test_exactly_once_mode_publishes_every_post_once(pipeline: Pipeline) -> None:
    pipeline.extra_env["STREAMS_GUARANTEE"] = "exactly_once"
    pipeline.start_worker()
    good = synthetic(200, seed=4)
    bad, _ = bad_messages(10)
    pipeline.produce(good + bad)
    assert_exactly_once(pipeline.consume("enriched", len(good)), {key for key, _ in good})
    assert len(pipeline.consume("deadletter", len(bad))) == len(bad)
