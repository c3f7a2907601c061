"""What posts stuffed with hashtags do to a worker's memory, on the real broker.

    python benchmarks/hostile_memory.py [--posts 2000] [--hostile 10] [--tags 50000] [--tree PATH]

Runs one worker (every agent), feeds it ``--posts`` synthetic posts, then ``--hostile``
posts of ``--tags`` hashtags each (about 440 KB a post at 50,000), and prints the
worker's resident memory after each phase and whether it is still running. ``--tree``
runs the worker from another checkout (an older commit, for a before/after in one run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.demo import start_broker, stop_broker, stop_workers  # noqa: E402
from streams.replay.synthetic import SyntheticPosts  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def count(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    total = sum(consumer.end_offsets(partitions).values()) if partitions else 0
    consumer.close()
    return total


def wait_for(
    bootstrap: str, topics: list[str], at_least: int, worker: subprocess.Popen[bytes], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(count(bootstrap, t) for t in topics) < at_least:
        if worker.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--hostile", type=int, default=10)
    parser.add_argument("--tags", type=int, default=50_000)
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--port", type=int, default=6190)
    args = parser.parse_args()

    bootstrap, started = start_broker()
    name = f"mem{uuid.uuid4().hex[:6]}"
    topics = {"raw": f"{name}.raw", "enriched": f"{name}.enriched", "dead": f"{name}.deadletter"}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "STREAMS_APP_ID": name,
        "STREAMS_TOPIC_RAW": topics["raw"],
        "STREAMS_TOPIC_ENRICHED": topics["enriched"],
        "STREAMS_TOPIC_DEADLETTER": topics["dead"],
        **{f"STREAMS_TOPIC_{t.upper()}": f"{name}.{t}" for t in ("flagged", "trends", "alerts", "profiles")},
        "STREAMS_TOPIC_ERASURE": f"{name}.erasure",
        "STREAMS_TOPIC_MEDIA": f"{name}.media",
        "STREAMS_WEB_PORT": str(args.port),
        "STREAMS_DEV_MODE": "1",
        "STREAMS_STATE_DIR": f"/tmp/{name}",
    }
    log = open(f"/tmp/{name}-worker.log", "wb")  # noqa: SIM115 - open for the worker's life
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"], env=env, cwd=args.tree, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 << 20, linger_ms=5)
        synthetic = SyntheticPosts(seed=3)
        for post in (synthetic.post(i) for i in range(args.posts)):
            producer.send(topics["raw"], key=post["id"].encode(), value=orjson.dumps(post))
        producer.flush()
        wait_for(bootstrap, [topics["enriched"], topics["dead"]], args.posts, worker, 300)
        time.sleep(5)
        before = rss_mib(worker.pid)
        for index in range(args.hostile):
            post = {"id": f"tags-{index}", "user_id": "u1", "text": "tags", "created_at": 1_767_225_600_000 + index}
            post["hashtags"] = [f"t{index}x{n}" for n in range(args.tags)]
            producer.send(topics["raw"], key=post["id"].encode(), value=orjson.dumps(post))
        producer.flush()
        producer.close()
        wait_for(bootstrap, [topics["enriched"], topics["dead"]], args.posts + args.hostile, worker, 300)
        time.sleep(15)  # the fan-out, profiles and trends behind the enrichment
        after = rss_mib(worker.pid) if worker.poll() is None else float("nan")
        size = len(orjson.dumps({"hashtags": [f"t0x{n}" for n in range(args.tags)]}))
        print(f"tree {args.tree}: {args.hostile} posts of {args.tags} hashtags ({size / 1000:.0f} KB each)")
        print(f"  RSS after {args.posts} ordinary posts: {before:.0f} MiB")
        print(f"  RSS after the hashtag posts:       {after:.0f} MiB")
        print(f"  worker still running: {worker.poll() is None} (exit code {worker.returncode})")
    finally:
        stop_workers([worker])
        stop_broker(started)


if __name__ == "__main__":
    main()
