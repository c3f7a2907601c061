"""Trend detection through the real broker and worker: planted bursts, exact windows, forecasts.

    python benchmarks/trends.py [--hours 2] [--posts-per-minute 200] [--workers 2] [--restart]
    python benchmarks/trends.py --semeval        # real tweets, in their own time order

Planted mode generates a hashtag stream (Zipf background, daily rhythm, bursts of
3x to 10x a term's baseline, posts out of order within the grace period), replays
it into fresh topics, and prints: window-count discrepancies against a
brute-force count, the detector's precision, recall, median detection delay and
false alarms per simulated hour, and the forecast's MAE and sMAPE next to a naive
last-value forecast. --restart kills a worker (SIGKILL) halfway and starts a new one.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.demo import (  # noqa: E402
    STATE_DIR,
    start_broker,
    start_workers,
    stop_broker,
    stop_workers,
    wait_assigned,
    wait_healthy,
)
from streams.replay.sources import read_posts  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402
from streams.trends import evaluation as ev  # noqa: E402
from streams.trends.windows import WindowSpec  # noqa: E402

SEMEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "semeval2017"


def fresh_settings(bootstrap: str, partitions: int, label: str = "trends") -> Settings:
    """Settings naming fresh topics, also put in this process's environment (which
    start_workers hands to the workers)."""
    name = f"{label}{uuid.uuid4().hex[:6]}"
    topics = {f"topic_{t}": f"{name}.{t}" for t in ("raw", "enriched", "flagged", "deadletter", "trends", "alerts",
                                                    "profiles", "erasure")}  # fmt: skip
    settings = dataclasses.replace(  # table state with the demo's, not in the caller's working directory
        Settings.from_env(), bootstrap=bootstrap, app_id=name, partitions=partitions, state_dir=STATE_DIR, **topics
    )
    os.environ.update({var: value for var, value in settings.describe().items() if value and value != "***"})
    return settings


def produce(bootstrap: str, topic: str, posts: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    for post in posts:
        producer.send(topic, key=post["id"].encode(), value=orjson.dumps(post))
    producer.flush()
    producer.close()


class Reader:
    """Reads a topic from the beginning, all partitions, as it grows."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        while not self.consumer.partitions_for_topic(topic):
            time.sleep(0.2)
        partitions = [TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic)]
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning(*partitions)
        self.records: list[dict[str, Any]] = []

    def poll(self) -> int:
        fresh = [orjson.loads(m.value) for batch in self.consumer.poll(timeout_ms=200).values() for m in batch]
        self.records += fresh
        return len(fresh)


def run_workers(settings: Settings, count: int) -> list[Any]:
    workers = start_workers(settings, count)
    wait_healthy(settings, workers)
    wait_assigned(settings, [settings.web_port + i for i in range(count)])
    return workers


def planted(args: argparse.Namespace, bootstrap: str) -> None:
    settings = fresh_settings(bootstrap, args.partitions)
    os.environ["STREAMS_TREND_KINDS"] = "hashtag"
    settings = dataclasses.replace(settings, trend_kinds="hashtag")
    spec = WindowSpec(settings.trend_window_s * 1000, settings.trend_hop_size_s * 1000, settings.trend_hop_s * 1000,
                      settings.trend_grace_s * 1000)  # fmt: skip
    shape = ev.StreamShape(hours=args.hours, posts_per_minute=args.posts_per_minute)
    now = int(time.time() * 1000)
    start = (now - int((args.hours + 1) * 3_600_000)) // spec.window_ms * spec.window_ms
    stream = ev.generate(shape, start, spec.window_ms, args.seed)
    end_marks = ev.sentinels(args.partitions, stream.end_ms + spec.hop_size_ms + spec.grace_ms + spec.window_ms)
    print(f"stream: {len(stream.posts)} posts over {args.hours} h of event time, {len(stream.bursts)} planted bursts")
    ensure_topics(settings)
    workers = run_workers(settings, args.workers)
    try:
        started = time.monotonic()
        half = len(stream.posts) // 2
        produce(bootstrap, settings.topic_raw, stream.posts[:half])
        if args.restart:
            enriched = Reader(bootstrap, settings.topic_enriched)
            while len(enriched.records) < half // 2:
                enriched.poll()
            victim = workers.pop()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            print(f"killed a worker (SIGKILL) after {len(enriched.records)} posts were enriched; starting another")
            workers += start_workers(settings, 1, first_index=args.workers)
            wait_healthy(settings, workers[-1:], first_index=args.workers)
            wait_assigned(settings, [settings.web_port + i for i in (*range(args.workers - 1), args.workers)])
        produce(bootstrap, settings.topic_raw, stream.posts[half:] + end_marks)
        windows, alerts = Reader(bootstrap, settings.topic_trends), Reader(bootstrap, settings.topic_alerts)
        top_term = "tag001"
        while not any(w["term"] == top_term and w["window"]["end_ms"] == stream.end_ms for w in windows.records):
            windows.poll()
            if time.monotonic() - started > args.timeout:
                sys.exit(f"timed out: {len(windows.records)} windows so far")
        elapsed = time.monotonic() - started
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 10:  # other partitions close the same windows a moment later
            if windows.poll() or alerts.poll():
                quiet_since = time.monotonic()
        report(stream, spec, settings, windows.records, alerts.records, shape.hours, elapsed)
        print(f"trend mentions by outcome (all workers): {dict(mention_outcomes(settings, len(workers) + 1))}")
    finally:
        stop_workers(workers)


def mention_outcomes(settings: Settings, workers: int) -> Counter[str]:
    """streams_trend_mentions_total by outcome, summed over the workers' /metrics."""
    import re
    import urllib.request

    totals: Counter[str] = Counter()
    for port in range(settings.web_port, settings.web_port + workers):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            continue
        for outcome, value in re.findall(r'^streams_trend_mentions_total\{outcome="(\w+)"\} (\S+)', text, re.M):
            totals[outcome] += int(float(value))
        for name, value in re.findall(
            r"^streams_trend_(mentions_routed|posts_skipped)_total(?:\{.*\})? (\S+)", text, re.M
        ):
            totals[name] += int(float(value))
    return totals


def report(stream: ev.GeneratedStream, spec: WindowSpec, settings: Settings, window_records: list[dict[str, Any]],
           alert_records: list[dict[str, Any]], hours: float, elapsed: float) -> None:  # fmt: skip
    published: dict[tuple[str, str, int], dict[str, Any]] = {}
    copies: Counter[tuple[str, str, int]] = Counter()
    for record in window_records:
        if record["window"]["end_ms"] <= stream.end_ms:
            key = (record["term"], record["window"]["type"], record["window"]["start_ms"])
            copies[key] += 1
            published[key] = {**record, "start": record["window"]["start_ms"]}
    reference = ev.reference_counts(ev.hashtag_mentions(stream.posts), spec, stream.end_ms)
    counts = {k: v["count"] for k, v in published.items()}
    gaps = ev.discrepancies(counts, reference, settings.trend_min_count, settings.trend_hop_min_count)
    alerts = [(a["term"], a["window"]["start_ms"]) for a in alert_records if a["type"] == "spike"]
    warnings = sum(1 for a in alert_records if a["type"] == "early_warning")
    scores = ev.score_alerts(alerts, stream.bursts, spec.window_ms, hours)
    served, naive = ev.forecast_pairs(published, reference, spec.window_ms)
    print(
        f"replayed {len(stream.posts)} posts in {elapsed:.0f}s ({len(stream.posts) / elapsed:.0f} posts/s end to end)"
    )
    print(f"windows compared: {gaps['compared']} (count >= {settings.trend_min_count}, hopping >= "
          f"{settings.trend_hop_min_count}); missing {gaps['missing']}, "
          f"extra {gaps['extra']}, wrong count {gaps['wrong_count']}; "
          f"published more than once: {sum(1 for c in copies.values() if c > 1)}")  # fmt: skip
    wrong = [(k, counts[k], reference.get(k)) for k in counts if reference.get(k) != counts[k]]
    for key, got, want in wrong[:5]:
        print(f"  window {key}: published {got}, reference {want}")
    print(f"mentions: reference {sum(v for (t, kind, s), v in reference.items() if kind == 'tumbling')}")
    print(f"spike alerts: {scores.alerts}; bursts detected {scores.detected}/{scores.bursts}; "
          f"early warnings: {warnings}")  # fmt: skip
    print(f"precision {scores.precision:.3f}  recall {scores.recall:.3f}  median delay "
          f"{scores.median_delay_windows} window(s)  false alarms {scores.false_alarms_per_hour:.2f}/h")  # fmt: skip
    print(f"forecast, next window ({len(served)} windows): MAE served {ev.mae(served):.2f}, "
          f"naive last value {ev.mae(naive):.2f}; sMAPE served {ev.smape(served):.1f}%, "
          f"naive {ev.smape(naive):.1f}%")  # fmt: skip


def semeval(args: argparse.Namespace, bootstrap: str) -> None:
    """Real tweets in time order: which terms trend, and the alerts."""
    settings = fresh_settings(bootstrap, args.partitions)
    seen: set[str] = set()
    posts = []
    for path in sorted(SEMEVAL.glob("*.tsv")):
        for value in read_posts(path):
            post = orjson.loads(value)
            if post["id"] not in seen:
                seen.add(post["id"])
                posts.append(post)
    posts.sort(key=lambda p: p["created_at"])
    posts = posts[-args.limit :]
    last = posts[-1]["created_at"]
    spec = WindowSpec(settings.trend_window_s * 1000, settings.trend_hop_size_s * 1000, settings.trend_hop_s * 1000,
                      settings.trend_grace_s * 1000)  # fmt: skip
    print(f"{len(posts)} SemEval tweets, {posts[0]['created_at']} .. {last} (epoch ms)")
    ensure_topics(settings)
    workers = run_workers(settings, args.workers)
    try:
        produce(bootstrap, settings.topic_raw, posts + ev.sentinels(args.partitions, last + spec.hop_size_ms * 2))
        windows, alerts = Reader(bootstrap, settings.topic_trends), Reader(bootstrap, settings.topic_alerts)
        enriched = Reader(bootstrap, settings.topic_enriched)
        while len(enriched.records) < len(posts):
            enriched.poll()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 15:
            if windows.poll() or alerts.poll():
                quiet_since = time.monotonic()
        totals: dict[str, Counter[str]] = {}
        labels: dict[str, str] = {}
        for record in windows.records:
            if record["window"]["type"] == "tumbling":
                totals.setdefault(record["kind"], Counter())[record["term"]] += record["count"]
                labels[record["term"]] = record.get("label") or record["term"]
        for kind, counter in sorted(totals.items()):
            top = ", ".join(f"{labels[t] if kind == 'topic' else t} ({c})" for t, c in counter.most_common(10))
            print(f"top {kind}s: {top}")
        spikes = [a for a in alerts.records if a["type"] == "spike"]
        print(
            f"spike alerts: {len(spikes)}; early warnings: {len(alerts.records) - len(spikes)}; "
            f"{len(alerts.records) * 10_000 / len(posts):.1f} alerts per 10,000 posts"
        )
        for alert in sorted(spikes, key=lambda a: -a["score"])[:10]:
            name = alert.get("label") or alert["term"]
            print(f"  {alert['window']['start']} {alert['kind']} {name!r} count {alert['count']} "
                  f"baseline {alert['baseline']['mean']} x{alert['growth']} {alert['severity']}")  # fmt: skip
    finally:
        stop_workers(workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0, help="event time the planted stream spans")
    parser.add_argument("--posts-per-minute", type=float, default=200.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--restart", action="store_true", help="SIGKILL a worker halfway and start another")
    parser.add_argument("--semeval", action="store_true", help="replay the SemEval tweets instead")
    parser.add_argument("--limit", type=int, default=20_000, help="SemEval tweets (the newest)")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    bootstrap, started_broker = start_broker()
    try:
        semeval(args, bootstrap) if args.semeval else planted(args, bootstrap)
    finally:
        stop_broker(started_broker)


if __name__ == "__main__":
    main()
