"""Messages between agents are split to fit what the broker takes."""

from __future__ import annotations

import orjson

from streams.profiles import envelopes
from streams.topics import fitted
from streams.trends.route import encode_pairs
from streams.trends.state import Mention, decode_by_term


def test_a_light_list_is_one_message() -> None:
    assert fitted([1, 2, 3], orjson.dumps, 100) == [([1, 2, 3], b"[1,2,3]")]


def test_a_heavy_list_is_split_in_order_and_each_message_fits() -> None:
    items = [f"item-{i:05d}" * 10 for i in range(2_000)]  # ~260 KB as one JSON list
    pieces = fitted(items, orjson.dumps, 16 * 1024)
    assert len(pieces) > 1
    assert [item for piece, _ in pieces for item in piece] == items
    assert all(len(value) <= 16 * 1024 and orjson.loads(value) == piece for piece, value in pieces)


def test_one_item_heavier_than_the_limit_stays_a_message_of_its_own() -> None:
    pieces = fitted(["x" * 500, "y"], orjson.dumps, 100)
    assert [piece for piece, _ in pieces] == [["x" * 500], ["y"]]


def test_a_post_with_every_hashtag_under_the_cap_makes_messages_the_broker_takes() -> None:
    # 500 posts with 30 hashtags each, all to one partition: ~15,000 mentions.
    mentions = [Mention(f"p{p}", 1_767_225_600_000, "user", 1, 0, 0, p) for p in range(500)]
    pairs = [(f"hashtag:tag{t}", mention) for mention in mentions for t in range(30)]
    pieces = fitted(pairs, encode_pairs)
    assert all(len(value) <= 512 * 1024 for _, value in pieces)
    total = sum(len(m) for _, value in pieces for m in decode_by_term(value)["t"].values())  # type: ignore[typeddict-item]
    assert total == len(pairs)


def test_the_profiles_envelope_keeps_only_the_contract_metrics() -> None:
    post = {"created_at_ms": 1, "metrics": {"likes": 2, **{f"junk{i}": 1 for i in range(50_000)}}}
    assert envelopes.post_envelope(post, 0, 7)["post"]["metrics"] == {"likes": 2}
