"""Table recovery time against table size, on the real broker.

    python benchmarks/recovery.py [--posts 10000] [--users 5000] [--partitions 4]

One worker (enrich + profiles) builds its tables from a replay of synthetic posts:
one seen-post-ids row and one routed-posts row a post, one profile a user (who posted). Then a
second worker joins and takes half the partitions (restoring their tables from the
changelogs), and the first is killed (SIGKILL), so the second restores the rest.
Prints, for each of those rebalances, the rows the second worker holds after it and
the seconds its recovery phase took (streams_rebalance_seconds{phase="recovery"}).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.demo import start_broker, start_workers, stop_broker, stop_workers, wait_healthy  # noqa: E402
from streams.replay.synthetic import SyntheticPosts  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def total(metrics: str, pattern: str) -> float:
    return sum(float(v) for v in re.findall(pattern + r" ([0-9.e+-]+)", metrics))


def recovery(port: int) -> tuple[int, float, int]:
    """(rebalances, recovery seconds in all, table rows held) of the worker on ``port``."""
    metrics = scrape(port)
    return (
        int(total(metrics, "streams_rebalances_total")),
        total(metrics, r'streams_rebalance_seconds_sum\{phase="recovery"\}'),
        int(total(metrics, r'streams_table_rows\{table="[^"]+"\}')),
    )


def wait_for(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(1)


def enriched_count(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    count = sum(consumer.end_offsets(partitions).values())
    consumer.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    bootstrap, started_broker = start_broker()
    name = f"recovery{uuid.uuid4().hex[:6]}"
    overrides = {
        "STREAMS_APP_ID": name, "STREAMS_PARTITIONS": str(args.partitions), "STREAMS_AGENTS": "enrich,profiles",
        "STREAMS_TOPIC_RAW": f"{name}.raw", "STREAMS_TOPIC_ENRICHED": f"{name}.enriched",
        "STREAMS_TOPIC_FLAGGED": f"{name}.flagged", "STREAMS_TOPIC_DEADLETTER": f"{name}.deadletter",
        "STREAMS_TOPIC_PROFILES": f"{name}.profiles", "STREAMS_TOPIC_ERASURE": f"{name}.erasure",
        "STREAMS_SESSION_TIMEOUT_S": "10",
    }  # fmt: skip
    os.environ.update(overrides)
    settings = dataclasses.replace(Settings.from_env(), bootstrap=bootstrap)
    ensure_topics(settings)
    posts = SyntheticPosts(seed=5, users=args.users)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    for index in range(args.posts):
        post = posts.post(index)
        producer.send(settings.topic_raw, key=post["id"].encode(), value=orjson.dumps(post))
    producer.flush()
    print(f"queued {args.posts} posts from {args.users} users; partitions: {args.partitions}")

    workers = start_workers(settings, 1)
    try:
        wait_healthy(settings, workers)
        started = time.monotonic()
        wait_for(lambda: enriched_count(bootstrap, settings.topic_enriched) >= args.posts, 3600, "the replay")
        wait_for(lambda: recovery(settings.web_port)[2] >= 2 * args.posts, 300, "the tables")
        time.sleep(3)  # the last profiles
        print(f"built the tables in {time.monotonic() - started:.0f} s: {recovery(settings.web_port)[2]} rows")

        workers += start_workers(settings, 1, first_index=1)
        port = settings.web_port + 1
        wait_healthy(settings, workers[1:], first_index=1)
        wait_for(lambda: recovery(port)[0] >= 1, 120, "the second worker's first rebalance")
        time.sleep(5)  # the first worker gives up its half: the second may rebalance once more
        rebalances, seconds, rows = recovery(port)
        print(f"joined: {rebalances} rebalance(s), recovery {seconds:.2f} s, then holding {rows} rows")

        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        wait_for(lambda: recovery(port)[0] > rebalances and recovery(port)[2] >= 2 * args.posts, 180, "the takeover")
        after, seconds_after, rows_after = recovery(port)
        print(
            f"took over: {after - rebalances} rebalance(s), recovery {seconds_after - seconds:.2f} s, "
            f"then holding {rows_after} rows (restored {rows_after - rows} more)"
        )
    finally:
        stop_workers(workers)
        stop_broker(started_broker)


if __name__ == "__main__":
    main()
