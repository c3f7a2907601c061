"""Exactly-once mode (Kafka transactions) through crashes: a read_committed consumer sees
every post once, and every trend window equals the brute-force count."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from streams.trends import evaluation as ev
from streams.trends.windows import WindowSpec
from tests.support import Pipeline

pytestmark = pytest.mark.integration
SPEC = WindowSpec(window_ms=60_000, hop_size_ms=180_000, hop_ms=60_000, grace_ms=10_000)


def at_least(count: int) -> Callable[[list[tuple[bytes | None, Any]]], bool]:
    return lambda records: len(records) >= count


@pytest.mark.timeout(600)
def test_exactly_once_through_two_crashes(pipeline: Pipeline, record_property: Any) -> None:
    pipeline.extra_env = {
        "STREAMS_GUARANTEE": "exactly_once",
        "STREAMS_TREND_KINDS": "hashtag",
        "STREAMS_TREND_HOP_SIZE_S": "180",
    }
    shape = ev.StreamShape(hours=0.2, posts_per_minute=100, bursts=1)
    start = (int(time.time() * 1000) - 3_600_000) // SPEC.window_ms * SPEC.window_ms
    stream = ev.generate(shape, start, SPEC.window_ms, seed=17)
    end = ev.sentinels(pipeline.partitions, stream.end_ms + SPEC.hop_size_ms + SPEC.window_ms)
    posts = stream.posts + end
    keys = {p["id"].encode() for p in posts}

    worker = pipeline.start_worker()
    pipeline.produce([(p["id"].encode(), orjson.dumps(p)) for p in posts])
    rng = random.Random(9)
    reached = 0
    for _ in range(2):  # SIGKILL mid-stream, with transactions open, then a fresh worker
        reached += rng.randint(150, 400)
        pipeline.read("enriched", at_least(reached), committed=True)
        pipeline.kill(worker)
        worker = pipeline.start_worker()

    enriched = pipeline.read("enriched", lambda rs: keys <= {k for k, _ in rs}, 240, committed=True)
    copies = Counter(key for key, _ in enriched)
    assert set(copies) == keys, f"{len(keys - set(copies))} posts missing"
    assert max(copies.values()) == 1, f"published twice: {[k for k, c in copies.items() if c > 1][:5]}"

    reference = ev.reference_counts(ev.hashtag_mentions(stream.posts), SPEC, stream.end_ms)
    wanted = {k for k, v in reference.items() if v >= 2}

    def hashtag_windows(records: list[tuple[bytes | None, Any]]) -> list[tuple[tuple[str, str, int], int]]:
        return [
            ((r["term"], r["window"]["type"], r["window"]["start_ms"]), r["count"])
            for _, r in records
            if r["kind"] == "hashtag" and r["window"]["end_ms"] <= stream.end_ms
        ]

    trends = pipeline.read(
        f"{pipeline.name}.trends", lambda rs: wanted <= {k for k, _ in hashtag_windows(rs)}, 180, committed=True
    )
    windows = hashtag_windows(trends)
    assert ev.discrepancies(dict(windows), reference, 2) == {
        "missing": 0, "extra": 0, "wrong_count": 0, "compared": len(wanted),
    }  # fmt: skip
    # Windows go out once too: trends.windows is written in the transactions (the
    # exactly-once anchor makes Faust see the topic), not beside them.
    assert max(Counter(k for k, _ in windows).values()) == 1, "a window was published twice"
    record_property("exactly_once_posts", len(posts))
    print(f"exactly-once: {len(posts)} posts through 2 SIGKILLs, each once; {len(wanted)} windows exact, once each")
