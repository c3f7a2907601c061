"""Failures around the pipeline: the broker restarts mid-replay or stays away past the delivery
timeout, and hostile input floods in; nothing is lost, and the worker never crashes on input."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.batches import EXIT_UNDELIVERED
from streams.replay import fuzz
from streams.replay.sources import read_posts
from tests.support import SHARED_DATA, Pipeline, broker, synthetic


def test_a_broker_restart_mid_replay_loses_no_post(pipeline: Pipeline) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        pytest.fail("this test restarts the broker: run it against the broker the suite provisions")
    pipeline.extra_env = {"STREAMS_AGENTS": "enrich"}
    worker = pipeline.start_worker()
    posts = synthetic(400, seed=21)
    pipeline.produce(posts[:200])
    pipeline.consume("enriched", 100, settle_s=0)
    broker("stop", pipeline.bootstrap)
    time.sleep(3)  # the worker sees the broker gone: connections refused, requests failing
    broker("start", pipeline.bootstrap)
    pipeline.produce(posts[200:])
    records = pipeline.consume_keys("enriched", {key for key, _ in posts}, timeout_s=240)
    assert {key for key, _ in records} == {key for key, _ in posts}
    assert worker.poll() is None, "the worker exited instead of reconnecting"


@pytest.mark.timeout(420)
def test_a_broker_outage_longer_than_the_delivery_timeout_loses_no_post(pipeline: Pipeline) -> None:
    """Sends fail for good while the broker is away: the batch is not committed, the worker
    exits with EXIT_UNDELIVERED, and a restarted worker (its supervisor's job) enriches everything."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        pytest.fail("this test stops the broker: run it against the broker the suite provisions")
    pipeline.extra_env = {"STREAMS_AGENTS": "enrich", "STREAMS_DELIVERY_TIMEOUT_S": "4"}
    worker = pipeline.start_worker()
    posts = synthetic(1500, seed=31)
    pipeline.produce(posts)
    pipeline.consume("enriched", 64, settle_s=0)  # mid-replay: batches are being published
    broker("stop", pipeline.bootstrap)
    try:
        worker.wait(timeout=90)  # a batch's sends fail after 4 s; the worker must not hang
    finally:
        broker("start", pipeline.bootstrap)
    assert worker.returncode == EXIT_UNDELIVERED, f"worker exited with {worker.returncode}"
    log = (pipeline.log_dir / "worker-0.log").read_text(errors="replace")
    assert "its offsets are not committed" in log
    pipeline.start_worker()  # what its supervisor does
    records = pipeline.consume_keys("enriched", {key for key, _ in posts}, timeout_s=240)
    assert {key for key, _ in records} == {key for key, _ in posts}


def real_or_synthetic(count: int) -> list[tuple[bytes, bytes]]:
    """Real tweets when the shared data is there, else synthetic posts."""
    path = SHARED_DATA / "semeval2017" / "twitter-2016dev-A.tsv"
    if path.is_file():
        values = list(read_posts(path))[:count]
        return [(orjson.loads(v)["id"].encode(), v) for v in values]
    return synthetic(count, seed=23)


def test_ten_thousand_hostile_messages_in_a_real_replay_are_all_dead_lettered(
    pipeline: Pipeline, record_property: Any
) -> None:
    pipeline.extra_env = {"STREAMS_AGENTS": "enrich"}
    worker = pipeline.start_worker()
    good = real_or_synthetic(400)
    hostile = fuzz.hostile(10_000, seed=13)
    mixed: list[tuple[bytes | None, bytes | None]] = [*good, *((key.encode(), value) for key, _, value in hostile)]
    random.Random(2).shuffle(mixed)
    started = time.monotonic()
    pipeline.produce(mixed)

    expected = {key.encode(): reason.value for key, reason, _ in hostile}
    dead = pipeline.read("deadletter", lambda rs: len(rs) >= len(expected), timeout_s=240)
    enriched = pipeline.consume_keys("enriched", {key for key, _ in good})
    seconds = time.monotonic() - started

    reasons = {key: record["error"]["type"] for key, record in dead}
    assert len(dead) == len(expected) and reasons == expected  # each once, with the reason it was made for
    assert all(record["error"]["message"] for _, record in dead)
    assert {key for key, _ in enriched} == {key for key, _ in good}
    assert worker.poll() is None, "the worker crashed"
    metrics = pipeline.metrics(0)
    assert 'streams_posts_in_total{topic="' + pipeline.topics["raw"] + '"}' in metrics
    record_property("fuzz_seconds", round(seconds, 1))
    print(f"fuzz: {len(hostile)} hostile messages + {len(good)} posts, all dead-lettered or enriched: {seconds:.1f} s")


def rss_kib(pid: int, field: str) -> int:
    """A memory figure of a process from /proc (VmRSS now, VmHWM the peak), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def raw_lag(pipeline: Pipeline) -> int:
    lines = pipeline.metrics(0).splitlines()
    prefix = 'streams_consumer_lag{partition="'
    raw = f'topic="{pipeline.topics["raw"]}"'
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in lines if line.startswith(prefix) and raw in line)


def test_a_burst_ten_times_the_sustainable_rate_drains_in_bounded_memory(
    pipeline: Pipeline, record_property: Any
) -> None:
    worker = pipeline.start_worker()
    warm_up = synthetic(64, seed=30)
    pipeline.produce(warm_up)
    pipeline.consume("enriched", len(warm_up), settle_s=0)
    baseline_kib = rss_kib(worker.pid, "VmRSS")

    burst = [(key, value) for key, value in synthetic(4_064, seed=31)[64:]]
    started = time.monotonic()
    pipeline.produce(burst)
    produce_s = time.monotonic() - started
    enriched = pipeline.consume_keys("enriched", {key for key, _ in burst}, timeout_s=280)
    drain_s = time.monotonic() - started
    deadline = time.monotonic() + 60
    while raw_lag(pipeline) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)  # the offsets are committed every few seconds

    assert {key for key, _ in enriched} >= {key for key, _ in burst}, "posts were lost"
    assert raw_lag(pipeline) == 0, "the consumer lag did not drain"
    assert len(burst) / produce_s >= 10 * len(burst) / drain_s, "the burst was not ten times the drain rate"
    peak_kib = rss_kib(worker.pid, "VmHWM")
    growth_mib = (peak_kib - baseline_kib) / 1024
    assert growth_mib < 400, f"memory grew by {growth_mib:.0f} MiB under the burst"
    record_property("burst_peak_rss_mib", round(peak_kib / 1024))
    print(
        f"burst: {len(burst)} posts in {produce_s:.1f} s ({len(burst) / produce_s:.0f}/s), drained at "
        f"{len(burst) / drain_s:.0f}/s; RSS {baseline_kib / 1024:.0f} MiB before, peak {peak_kib / 1024:.0f} MiB"
    )
