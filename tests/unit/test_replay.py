"""Replay sources, the synthetic generator and the malformed mix."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.ingest.parse import parse_post
from streams.replay.producer import Pacer, ReplayOptions, key_of, source_values, with_malformed
from streams.replay.sources import read_posts, snowflake_ms
from streams.replay.synthetic import SyntheticPosts


def test_semeval_tsv_rows_become_posts_with_their_tweet_time(tmp_path: Path) -> None:
    path = tmp_path / "pool.tsv"
    path.write_text('628949369883000832\tnegative\t"dear @Microsoft, no update?"\t\n', encoding="utf-8")
    [value] = list(read_posts(path))
    post = orjson.loads(value)
    assert post["text"] == "dear @Microsoft, no update?"
    assert post["created_at"] == snowflake_ms(628949369883000832) == 1_438_788_189_751  # 2015-08-05
    parse_post(value, 1 << 20)


def test_csv_with_header_and_jsonl_lines(tmp_path: Path) -> None:
    csv_path = tmp_path / "posts.csv"
    csv_path.write_text('id,user_id,text,created_at\n1,u1,"hello, world",2026-01-01T00:00:00Z\n', encoding="utf-8")
    assert orjson.loads(next(read_posts(csv_path)))["text"] == "hello, world"
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_bytes(b'{"id": 1}\n\nnot json\n')
    assert list(read_posts(jsonl)) == [b'{"id": 1}', b"not json"]


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        read_posts(tmp_path / "posts.xml")


def test_synthetic_posts_are_valid_varied_and_deterministic() -> None:
    one, two = SyntheticPosts(seed=3), SyntheticPosts(seed=3)
    first = [one.post(i) for i in range(500)]
    assert first == [two.post(i) for i in range(500)]
    for post in first:
        parse_post(orjson.dumps(post), 1 << 20)
    assert len({p["lang"] for p in first}) >= 4
    assert any("#" in p["text"] for p in first) and any("http" in p["text"] for p in first)
    assert any("@user" in p["text"] for p in first)


def test_a_planted_trend_appears_in_its_burst() -> None:
    posts = SyntheticPosts(seed=1, burst_every=400, burst_length=150)
    assert posts.trend_at(10) is None
    trend = posts.trend_at(450)
    burst = [posts.post(i)["text"] for i in range(400, 550)]
    assert trend is not None and sum(f"#{trend}" in text for text in burst) > 30


def test_malformed_messages_are_spread_and_all_sent() -> None:
    values = [orjson.dumps({"id": i}) for i in range(10)]
    pairs = list(with_malformed(values, 4))
    assert len(pairs) == 14
    assert sum(1 for key, _ in pairs if key and key.startswith(b"bad-")) == 4
    assert key_of(b'{"id": 7}') == b"7" and key_of(b"[1]") is None and key_of(b'{"id": true}') is None


def test_synthetic_replay_defaults_to_a_thousand_posts() -> None:
    assert len(list(source_values(ReplayOptions(None, None, None, None, 0)))) == 1000


def test_pacer_keeps_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    pacer = Pacer(rate=10, speedup=None)
    for _ in range(5):
        pacer.wait(b"{}")
    # the clock is frozen by the patch, so each wait sleeps up to its target time
    assert slept == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5], abs=0.05)


def test_a_replay_says_how_many_of_its_lines_are_not_valid_posts(tmp_path: Path) -> None:
    from streams.replay.producer import ReplayOptions, ReplaySummary, invalid_reasons, source_values

    source = tmp_path / "posts.jsonl"
    good = [orjson.dumps({"id": str(i), "user_id": "u", "text": "hi", "created_at": 0}).decode() for i in range(3)]
    source.write_text("\n".join([*good, '{"id": "x", "text"', '{"id": "y", "text": "no user", "created_at": 0}']))
    values = list(source_values(ReplayOptions(source, None, None, None, 0)))
    summary = ReplaySummary(len(values), invalid_reasons(values))
    assert summary.describe("posts.raw") == (
        "sent 5 messages to posts.raw; 2 of the source's lines are not valid posts "
        "(invalid_json 1, missing_field 1): they go to the dead-letter topic"
    )
    assert ReplaySummary(3, invalid_reasons(values[:3])).describe("posts.raw") == "sent 3 messages to posts.raw"


def test_synthetic_posts_are_dated_so_their_windows_fill_now() -> None:
    from streams.replay.producer import synthetic_dates

    now = 1_800_000_000_000
    fast = ReplayOptions(None, 1000, None, None, 0)
    assert synthetic_dates(fast, 1000, now) == (now - 250_000, 250)  # the whole run in the recent past
    paced = ReplayOptions(None, 1000, 50.0, None, 0)
    assert synthetic_dates(paced, 1000, now) == (now, 20)  # dated as they are sent
    fixed = ReplayOptions(None, 1000, None, None, 0, start_ms=1_767_225_600_000)
    assert synthetic_dates(fixed, 1000, now) == (1_767_225_600_000, 250)
    import time

    before = int(time.time() * 1000)
    dates = [orjson.loads(v)["created_at"] for v in source_values(ReplayOptions(None, 400, None, None, 0, seed=2))]
    assert before - 400 * 250 - 2000 <= min(dates) and max(dates) <= int(time.time() * 1000) + 2000
