"""End-to-end throughput of the pipeline on the real broker with real tweets.

    python benchmarks/pipeline_throughput.py [--posts 10000] [--bad 1000] [--workers 2]
                                             [--guarantee at_least_once|exactly_once] [--sink]

Replays SemEval-2017 tweets from ../shared/data (or synthetic posts with
--synthetic) plus malformed messages into fresh topics, runs the workers, and
prints the time until every post is enriched and every malformed message is
dead-lettered, with the counts checked exactly. With --sink, the data-lake sink
then appends this run's posts.enriched and posts.flagged to Delta tables in a
temporary folder (one sink process, catching up) and its rows/s is printed beside
the pipeline's posts/s, with the rows checked by id.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.demo import start_broker, start_workers, stop_broker, stop_workers, wait_healthy  # noqa: E402
from streams.replay.malformed import malformed  # noqa: E402
from streams.replay.sources import read_posts  # noqa: E402
from streams.replay.synthetic import SyntheticPosts  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

SEMEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "semeval2017"


def real_tweets(count: int) -> list[bytes]:
    if not SEMEVAL.is_dir():
        sys.exit(f"{SEMEVAL} is missing: use --synthetic, or place the shared data folder there")
    seen: set[str] = set()
    posts: list[bytes] = []
    for path in sorted(SEMEVAL.glob("*.tsv")):
        for value in read_posts(path):
            post_id = orjson.loads(value)["id"]
            if post_id not in seen:
                seen.add(post_id)
                posts.append(value)
    return posts[:count]


def count_records(consumer: KafkaConsumer, topic: str, expected: int, timeout_s: float) -> tuple[Counter[bytes], float]:
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    keys: Counter[bytes] = Counter()
    deadline = time.monotonic() + timeout_s
    while sum(keys.values()) < expected and time.monotonic() < deadline:
        for messages in consumer.poll(timeout_ms=200).values():
            keys.update(m.key for m in messages)
    return keys, time.monotonic()


def measure_sink(settings: Settings, posts: int) -> None:
    """One sink process appends this run's enriched and flagged posts to Delta tables; rows/s."""
    import tempfile

    from streams.sink.query import query
    from streams.sink.run import Sink, SinkOptions

    with tempfile.TemporaryDirectory() as lake:
        sources = {settings.topic_enriched: "posts.enriched", settings.topic_flagged: "posts.flagged"}
        options = SinkOptions(settings.connection, f"{settings.app_id}-sink", lake, sources, idle_exit_s=5.0)
        sink = Sink(options)
        started = time.monotonic()
        sink.run()
        elapsed = time.monotonic() - started - options.idle_exit_s  # not the idle wait at the end
        ids = query(lake, "SELECT count(DISTINCT id), count(*) FROM posts_enriched")[1][0]
        print(f"sink: {sink.written} rows to Delta in {elapsed:.1f}s = {sink.written / elapsed:.0f} rows/s "
              f"(posts_enriched: {ids[1]} rows, {ids[0]} distinct ids, expected {posts})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--bad", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--guarantee", choices=["at_least_once", "exactly_once"], default="at_least_once")
    parser.add_argument("--sink", action="store_true", help="then measure the data-lake sink on the same records")
    args = parser.parse_args()

    bootstrap, started_broker = start_broker()
    name = f"bench{uuid.uuid4().hex[:6]}"
    settings = dataclasses.replace(
        Settings.from_env(), bootstrap=bootstrap, app_id=name, partitions=args.partitions,
        topic_raw=f"{name}.raw", topic_enriched=f"{name}.enriched",
        topic_flagged=f"{name}.flagged", topic_deadletter=f"{name}.deadletter",
    )  # fmt: skip
    posts = (
        [orjson.dumps(p) for p in itertools.islice(SyntheticPosts(seed=11), args.posts)]
        if args.synthetic
        else real_tweets(args.posts)
    )
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    for index in range(args.bad):
        _, payload = malformed(index)
        producer.send(settings.topic_raw, key=f"bad-{index}".encode(), value=payload)
    for value in posts:
        producer.send(settings.topic_raw, key=orjson.loads(value)["id"].encode(), value=value)
    producer.flush()
    print(f"queued {len(posts)} posts and {args.bad} malformed messages on {settings.topic_raw}")

    import os

    for var, value in (("STREAMS_APP_ID", name), ("STREAMS_PARTITIONS", str(args.partitions)),
                       ("STREAMS_TOPIC_RAW", settings.topic_raw), ("STREAMS_TOPIC_ENRICHED", settings.topic_enriched),
                       ("STREAMS_TOPIC_FLAGGED", settings.topic_flagged),
                       ("STREAMS_TOPIC_DEADLETTER", settings.topic_deadletter),
                       ("STREAMS_GUARANTEE", args.guarantee)):  # fmt: skip
        os.environ[var] = value
    workers = start_workers(settings, args.workers)
    try:
        wait_healthy(settings, workers)
        started = time.monotonic()
        # In exactly-once mode a post counts once its transaction committed: what a read_committed reader sees.
        isolation = "read_committed" if args.guarantee == "exactly_once" else "read_uncommitted"
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation)
        enriched, done = count_records(consumer, settings.topic_enriched, len(posts), timeout_s=1800)
        dead, _ = count_records(consumer, settings.topic_deadletter, args.bad, timeout_s=60)
        elapsed = done - started
        print(f"workers: {args.workers} process(es), partitions: {args.partitions}, guarantee: {args.guarantee}")
        print(f"enriched: {sum(enriched.values())} records, {len(enriched)} distinct ids (expected {len(posts)})")
        print(f"dead letters: {sum(dead.values())} (expected {args.bad})")
        print(
            f"throughput: {len(posts) / elapsed:.0f} posts/s ({elapsed:.1f}s from a consuming worker to the last post)"
        )
        if args.sink:
            measure_sink(settings, len(posts))
    finally:
        stop_workers(workers)
        stop_broker(started_broker)


if __name__ == "__main__":
    main()
