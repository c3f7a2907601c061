"""What the tests share: the shared data folder, test posts, the broker's control, and a Pipeline
of worker processes against a real broker. Fixtures live in the conftest files; helpers here.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.demo import KAFKA_SCRIPT, broker_env, stop_workers
from streams.replay.malformed import malformed
from streams.replay.synthetic import SyntheticPosts

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEPLOY = ROOT / "deploy"
PSEUDONYM_SECRET = "integration-tests-pseudonym-key"


def shared_data_or_skip(relative: str) -> Path:
    """A file of ../shared/data, or skip: a fresh clone does not have that folder."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder is not next to this clone)")
    return path


def synthetic(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` synthetic posts, keyed by post id."""
    posts = SyntheticPosts(seed=seed)
    return [(p["id"].encode(), orjson.dumps(p)) for p in (posts.post(i) for i in range(count))]


def bad_messages(count: int) -> tuple[list[tuple[bytes, bytes]], dict[bytes, str]]:
    """Malformed messages, and the dead-letter reason expected for each key."""
    pairs, reasons = [], {}
    for index in range(count):
        reason, payload = malformed(index)
        key = f"bad-{index}".encode()
        pairs.append((key, payload))
        reasons[key] = reason.value
    return pairs, reasons


def queried_metrics() -> set[str]:
    """Every metric name in the dashboard's and the alert rules' queries."""
    text = (DEPLOY / "grafana/dashboards/social-streams.json").read_text() + (
        DEPLOY / "prometheus/alerts.yml"
    ).read_text()
    return set(re.findall(r"\b(streams_[a-z_]+|up)\b", text))


def hashtag_windows(records: list[tuple[bytes | None, Any]], until_ms: int) -> list[tuple[tuple[str, str, int], int]]:
    """((term, window type, start ms), count) of the hashtag windows in ``records`` ending by ``until_ms``."""
    return [
        ((r["term"], r["window"]["type"], r["window"]["start_ms"]), r["count"])
        for _, r in records
        if r["kind"] == "hashtag" and r["window"]["end_ms"] <= until_ms
    ]


def latest_post_counts(records: list[tuple[bytes | None, Any]]) -> dict[str, int]:
    """Each user's post count in the newest users.profiles record."""
    newest: dict[str, int] = {}
    for key, value in records:
        if key is not None and value is not None:
            newest[key.decode()] = value["posts"]
    return newest


def broker(action: str, bootstrap: str) -> None:
    """Start or stop the local broker serving ``bootstrap`` (deploy/local/kafka)."""
    port = int(bootstrap.rsplit(":", 1)[1])
    subprocess.run([str(KAFKA_SCRIPT), action], env=broker_env(port), check=True, stdout=subprocess.DEVNULL)


def empty_test_broker(port: int) -> None:
    """Remove the data of the test broker on ``port`` unless it runs (then it is someone's).

    Every test makes topics of its own and no session reads another's; kept, they pile up
    (tens of thousands of partitions after a few hundred sessions) until the broker runs out
    of open files and takes its log directory offline (KafkaStorageError) mid-session."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        return
    env = broker_env(port)
    if subprocess.run([str(KAFKA_SCRIPT), "status"], env=env, capture_output=True).returncode != 0:
        subprocess.run([str(KAFKA_SCRIPT), "clean"], env=env, check=True, capture_output=True)


LINE_CHARS = 240


def py_spy_dump(pid: int) -> str:
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        return "py-spy not installed"
    command = [str(py_spy), "dump", "--pid", str(pid)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "py-spy dump timed out"
    return result.stdout + result.stderr


def json_or_bytes(value: bytes | None) -> Any:
    """A record's JSON value; the bytes themselves when they are not JSON (what a hostile producer
    wrote on a pipeline topic), None for a tombstone."""
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pipeline:
    """One test's topics and worker processes."""

    bootstrap: str
    name: str
    log_dir: Path
    partitions: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)  # sinks: stopped with the workers

    @property
    def topics(self) -> dict[str, str]:
        return {
            "raw": f"{self.name}.raw",
            "enriched": f"{self.name}.enriched",
            "flagged": f"{self.name}.flagged",
            "deadletter": f"{self.name}.deadletter",
            "erasure": f"{self.name}.erasure",
            "media": f"{self.name}.media",
        }

    def env(self, port: int) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "STREAMS_APP_ID": self.name,
            "STREAMS_TOPIC_RAW": self.topics["raw"],
            "STREAMS_TOPIC_ENRICHED": self.topics["enriched"],
            "STREAMS_TOPIC_FLAGGED": self.topics["flagged"],
            "STREAMS_TOPIC_DEADLETTER": self.topics["deadletter"],
            "STREAMS_TOPIC_TRENDS": f"{self.name}.trends",
            "STREAMS_TOPIC_ALERTS": f"{self.name}.alerts",
            "STREAMS_TOPIC_PROFILES": f"{self.name}.profiles",
            "STREAMS_TOPIC_ERASURE": f"{self.name}.erasure",
            "STREAMS_TOPIC_MEDIA": self.topics["media"],
            "STREAMS_PARTITIONS": str(self.partitions),
            "STREAMS_WEB_PORT": str(port),
            "STREAMS_BATCH_SIZE": "32",
            "STREAMS_STATE_DIR": str(self.log_dir),
            # A killed worker's partitions move after 10 s instead of 30 s.
            "STREAMS_SESSION_TIMEOUT_S": "10",
            "STREAMS_PSEUDONYM_SECRET": PSEUDONYM_SECRET,
            **self.extra_env,
        }

    def start_worker(self, env: dict[str, str] | None = None, consuming: str | None = None) -> subprocess.Popen[bytes]:
        """A worker with the pipeline's settings (and ``env``), once it consumes ``consuming`` (posts.raw)."""
        port = free_port()
        with (self.log_dir / f"worker-{len(self.workers)}.log").open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env={**self.env(port), **(env or {})},
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        self.workers.append(worker)
        self.ports.append(port)
        self.wait_healthy(worker, port, consuming=consuming or self.topics["raw"], env=env)
        return worker

    def wait_healthy(
        self,
        worker: subprocess.Popen[bytes],
        port: int,
        timeout_s: float = 120,
        consuming: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert worker.poll() is None, f"worker exited with {worker.returncode}; log in {self.log_dir}"
            request = urllib.request.Request(f"http://127.0.0.1:{port}/health")
            token = {**self.extra_env, **(env or {})}.get("STREAMS_WEB_TOKEN")
            if token:  # /health's details (the partitions assigned) need it
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    body = orjson.loads(response.read())
                    topic = consuming or self.topics["raw"]
                    if response.status == 200 and any(topic in tp for tp in body["assigned"]):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not consuming after {timeout_s}s; log in {self.log_dir}")

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    def stop(self) -> None:
        stop_workers(self.workers + self.others)

    def produce(self, pairs: Sequence[tuple[bytes | None, bytes | None]], topic: str = "raw") -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, max_request_size=8 << 20)
        for key, value in pairs:
            producer.send(self.topics.get(topic, topic), key=key, value=value)
        producer.flush()
        producer.close()

    def consume(
        self, topic: str, expected: int, timeout_s: float = 120, settle_s: float = 3.0, committed: bool = False
    ) -> list[tuple[bytes | None, dict]]:
        """Every record of ``topic``: waits until ``expected`` arrived, then a little longer for extras."""
        settle_until: float | None = None

        def done(records: list[tuple[bytes | None, dict]]) -> bool:
            nonlocal settle_until
            if len(records) >= expected:
                settle_until = settle_until or time.monotonic() + settle_s
                return time.monotonic() >= settle_until
            return False

        return self.read(topic, done, timeout_s, committed)

    def consume_keys(self, topic: str, keys: set[bytes], timeout_s: float = 120) -> list[tuple[bytes | None, Any]]:
        """Every record of ``topic`` once each of ``keys`` came out (repeats do not count)."""
        return self.read(topic, lambda records: keys <= {key for key, _ in records}, timeout_s)

    def read(
        self,
        topic: str,
        done: Callable[[list[tuple[bytes | None, Any]]], bool],
        timeout_s: float = 120,
        committed: bool = False,
    ) -> list[tuple[bytes | None, Any]]:
        """(key, JSON value) of the records of ``topic`` from the beginning, until ``done`` says so or time is up.

        ``committed`` reads as a ``read_committed`` consumer: records of aborted transactions are not seen.
        """
        isolation = "read_committed" if committed else "read_uncommitted"
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, isolation_level=isolation)
        name = self.topics.get(topic, topic)
        deadline = time.monotonic() + timeout_s
        while not consumer.partitions_for_topic(name) and time.monotonic() < deadline:
            time.sleep(0.2)
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out: list[tuple[bytes | None, Any]] = []
        while not done(out) and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=300).values():
                out += [(m.key, json_or_bytes(m.value)) for m in messages]
        consumer.close()
        return out

    def read_many(
        self,
        topics: list[str],
        done: Callable[[dict[str, list[tuple[bytes | None, Any]]]], bool],
        timeout_s: float = 120,
    ) -> dict[str, list[tuple[bytes | None, Any]]]:
        """(key, JSON value) of the records of each of ``topics`` from the beginning, read together
        until ``done`` says so of them all, or time is up."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        names = {self.topics.get(topic, topic): topic for topic in topics}
        deadline = time.monotonic() + timeout_s
        while not all(consumer.partitions_for_topic(name) for name in names) and time.monotonic() < deadline:
            time.sleep(0.2)
        partitions = [TopicPartition(name, p) for name in names for p in consumer.partitions_for_topic(name) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out: dict[str, list[tuple[bytes | None, Any]]] = {topic: [] for topic in topics}
        while not done(out) and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=300).items():
                out[names[tp.topic]] += [(m.key, json_or_bytes(m.value)) for m in messages]
        consumer.close()
        return out

    def record_count(self, topic: str) -> int:
        """How many records ``topic`` holds now (the sum of its partitions' high watermarks)."""
        name = self.topics.get(topic, topic)
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or [])]
        total = sum(consumer.end_offsets(partitions).values())
        consumer.close()
        return total

    def end_offsets(self, topic: str) -> str:
        """Each partition's end for a read_committed reader against its high watermark: where the
        two differ, a transaction is still open there (what a test failure should show)."""
        name = self.topics.get(topic, topic)
        ends = {}
        for isolation in ("read_committed", "read_uncommitted"):
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, isolation_level=isolation)
            partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or [])]
            ends[isolation] = [consumer.end_offsets(partitions)[tp] for tp in partitions]
            consumer.close()
        return f"{name}: last stable offsets {ends['read_committed']}, high watermarks {ends['read_uncommitted']}"

    def uncommitted(self, topics: list[str], timeout_s: float = 60) -> list[str]:
        """Wait until the workers' group has committed every offset of ``topics``; what it has
        not (partition, committed/end) when ``timeout_s`` runs out."""
        names = [self.topics.get(t, t) for t in topics]
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.name, enable_auto_commit=False)
        try:
            partitions = [TopicPartition(n, p) for n in names for p in consumer.partitions_for_topic(n) or []]
            ends = consumer.end_offsets(partitions)
            deadline = time.monotonic() + timeout_s
            while True:
                behind = [f"{tp.topic}[{tp.partition}] {consumer.committed(tp) or 0}/{end}"
                          for tp, end in sorted(ends.items()) if (consumer.committed(tp) or 0) < end]  # fmt: skip
                if not behind or time.monotonic() > deadline:
                    return behind
                time.sleep(0.5)
        finally:
            consumer.close()

    def stacks(self) -> str:
        """Where each living worker waits: py-spy's view of its threads, then every asyncio task's
        stack as the worker prints it on SIGUSR1 (mode's ``cry``); and each living sink's threads.
        For a failure report."""
        parts = []
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                continue
            parts.append(f"worker {index} (pid {worker.pid}):\n{py_spy_dump(worker.pid)}")
            parts.append(self.tasks_of(index, worker))
        for other in self.others:  # a sink: its threads only (it has no task dump)
            if other.poll() is None:
                parts.append(f"{other.args!r} (pid {other.pid}):\n{py_spy_dump(other.pid)}")
        return "\n".join(parts) or "no worker alive"

    def tasks_of(self, index: int, worker: subprocess.Popen[bytes], quiet_s: float = 1.0) -> str:
        log = self.log_dir / f"worker-{index}.log"
        start = log.stat().st_size
        worker.send_signal(signal.SIGUSR1)
        size, deadline = start, time.monotonic() + 10
        while time.monotonic() < deadline:  # until the dump stops growing
            time.sleep(quiet_s)
            if (grown := log.stat().st_size) == size and size > start:
                break
            size = grown
        with log.open("rb") as file:
            file.seek(start)
            text = file.read().decode(errors="replace")
        if not text:
            return f"worker {index} printed no tasks within 10 s: its event loop is blocked"
        stacks = re.sub(r"LOCAL VARIABLES\n.*?(?=^TASKS|^THREAD|\Z)", "", text, flags=re.S | re.M)  # stacks only
        return "\n".join(line[:LINE_CHARS] for line in stacks.splitlines())  # a frame's locals can be huge

    def metrics(self, index: int) -> str:
        """The Prometheus exposition of the index-th worker."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[index]}/metrics", timeout=10) as response:
            return str(response.read().decode())
