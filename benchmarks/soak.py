"""A longer soak than the suite's: crashes and bursts on the real broker, nothing lost.

    python benchmarks/soak.py [--posts 20000] [--kills 10] [--workers 2] [--bad 2000]

Queues synthetic posts and hostile messages in bursts, runs the workers, and kills
(SIGKILL) a random worker at random moments, starting a fresh one each time. At the
end it checks that every post was enriched and every hostile message dead-lettered,
and prints the duplicates per crash, the records Faust skipped and we read back, and
the peak memory of the workers.
"""

from __future__ import annotations

import argparse
import os
import random
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

from streams.demo import LOG_DIR, start_broker, start_workers, stop_broker, stop_workers, wait_healthy  # noqa: E402
from streams.replay import fuzz  # noqa: E402
from streams.replay.synthetic import SyntheticPosts  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402


def keys_of(bootstrap: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    keys: list[bytes] = []
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for batch in consumer.poll(timeout_ms=500).values():
            keys += [m.key for m in batch]
    consumer.close()
    return keys


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def read_back(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return int(sum(float(v) for v in re.findall(r"streams_records_read_back_total\{[^}]*\} ([0-9.e+]+)", text)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--bad", type=int, default=2_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    bootstrap, started_broker = start_broker()
    name = f"soak{uuid.uuid4().hex[:6]}"
    os.environ.update({
        "STREAMS_APP_ID": name, "STREAMS_PARTITIONS": str(args.partitions), "STREAMS_SESSION_TIMEOUT_S": "10",
        "STREAMS_TOPIC_RAW": f"{name}.raw", "STREAMS_TOPIC_ENRICHED": f"{name}.enriched",
        "STREAMS_TOPIC_FLAGGED": f"{name}.flagged", "STREAMS_TOPIC_DEADLETTER": f"{name}.deadletter",
        "STREAMS_TOPIC_PROFILES": f"{name}.profiles", "STREAMS_TOPIC_ERASURE": f"{name}.erasure",
        "STREAMS_TOPIC_TRENDS": f"{name}.trends", "STREAMS_TOPIC_ALERTS": f"{name}.alerts",
    })  # fmt: skip
    settings = Settings.from_env(bootstrap=bootstrap)
    ensure_topics(settings)
    synthetic = SyntheticPosts(seed=args.seed)
    posts = [synthetic.post(i) for i in range(args.posts)]
    hostile = fuzz.hostile(args.bad, seed=args.seed)
    messages = [(p["id"].encode(), orjson.dumps(p)) for p in posts] + [(k.encode(), v) for k, _, v in hostile]
    rng.shuffle(messages)
    bursts = [
        messages[i : i + len(messages) // (args.kills + 1) + 1]
        for i in range(0, len(messages), len(messages) // (args.kills + 1) + 1)
    ]

    workers = start_workers(settings, args.workers)
    ports = [settings.web_port + i for i in range(args.workers)]
    peaks: list[float] = []
    skipped_back = 0
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_request_size=8 << 20)
    started = time.monotonic()
    try:
        wait_healthy(settings, workers)
        for number, burst in enumerate(bursts):
            for key, value in burst:
                producer.send(settings.topic_raw, key=key, value=value)
            producer.flush()
            if number == len(bursts) - 1:
                break
            time.sleep(rng.uniform(5, 20))
            victim = rng.randrange(len(workers))
            peaks.append(peak_rss_mib(workers[victim].pid))
            skipped_back += read_back(ports[victim])
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            index = max(ports) - settings.web_port + 1
            fresh = start_workers(settings, 1, first_index=index)
            wait_healthy(settings, fresh, first_index=index)
            workers[victim], ports[victim] = fresh[0], settings.web_port + index
            print(f"burst {number + 1}/{len(bursts)} queued; killed worker {victim}, started worker {index}")
        wanted = {p["id"].encode() for p in posts}
        deadline = time.monotonic() + 3600
        enriched = keys_of(bootstrap, settings.topic_enriched)
        while not wanted <= set(enriched) and time.monotonic() < deadline:
            time.sleep(5)
            enriched = keys_of(bootstrap, settings.topic_enriched)
        elapsed = time.monotonic() - started
        dead = keys_of(bootstrap, settings.topic_deadletter)
        peaks += [peak_rss_mib(w.pid) for w in workers]
        skipped_back += sum(read_back(port) for port in ports)
        missing = len(wanted - set(enriched))
        missing_dead = len({k.encode() for k, _, _ in hostile} - set(dead))
        print(f"posts: {len(wanted)}, enriched records: {len(enriched)}, missing: {missing}")
        print(f"hostile messages: {len(hostile)}, dead letters: {len(dead)}, missing: {missing_dead}")
        print(f"crashes: {args.kills}, duplicates: {len(enriched) - len(set(enriched))} "
              f"({(len(enriched) - len(set(enriched))) / max(args.kills, 1):.1f} a crash)")  # fmt: skip
        print(f"records skipped by the consumer and read back: {skipped_back}")
        print(f"peak RSS of a worker: {max(peaks):.0f} MiB; {elapsed:.0f} s in all; logs in {LOG_DIR}")
        sys.exit(1 if missing or missing_dead else 0)
    finally:
        producer.close()
        stop_workers(workers)
        stop_broker(started_broker)


if __name__ == "__main__":
    main()
