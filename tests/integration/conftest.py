"""A real Apache Kafka broker for the session, and workers started per test.

The broker comes from deploy/local/kafka on a port of its own (KAFKA_TEST_PORT,
default 19092) unless KAFKA_BOOTSTRAP names one. Every test gets a unique app
id and unique topic names, so tests never see each other's records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.demo import KAFKA_SCRIPT, stop_workers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
PSEUDONYM_SECRET = "integration-tests-pseudonym-key"


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield os.environ["KAFKA_BOOTSTRAP"]
        return
    env = {**os.environ, "KAFKA_PORT": os.environ.get("KAFKA_TEST_PORT", "19092")}
    already_running = subprocess.run([str(KAFKA_SCRIPT), "status"], env=env, capture_output=True).returncode == 0
    started = subprocess.run([str(KAFKA_SCRIPT), "start"], env=env, stdout=subprocess.PIPE, text=True, check=True)
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        if not already_running:  # leave a broker someone else started
            subprocess.run([str(KAFKA_SCRIPT), "stop"], env=env, check=False)


def free_port() -> int:
    import socket

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

    @property
    def topics(self) -> dict[str, str]:
        return {
            "raw": f"{self.name}.raw",
            "enriched": f"{self.name}.enriched",
            "flagged": f"{self.name}.flagged",
            "deadletter": f"{self.name}.deadletter",
            "erasure": f"{self.name}.erasure",
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
            "STREAMS_PARTITIONS": str(self.partitions),
            "STREAMS_WEB_PORT": str(port),
            "STREAMS_BATCH_SIZE": "32",
            # A killed worker's partitions move after 10 s instead of 30 s.
            "STREAMS_SESSION_TIMEOUT_S": "10",
            "STREAMS_PSEUDONYM_SECRET": PSEUDONYM_SECRET,
            **self.extra_env,
        }

    def start_worker(self) -> subprocess.Popen[bytes]:
        port = free_port()
        with (self.log_dir / f"worker-{len(self.workers)}.log").open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"], env=self.env(port), stdout=log, stderr=log, cwd=ROOT
            )
        self.workers.append(worker)
        self.ports.append(port)
        self.wait_healthy(worker, port)
        return worker

    def wait_healthy(self, worker: subprocess.Popen[bytes], port: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert worker.poll() is None, f"worker exited with {worker.returncode}; log in {self.log_dir}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    body = orjson.loads(response.read())
                    if response.status == 200 and any(self.topics["raw"] in tp for tp in body["assigned"]):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not consuming after {timeout_s}s; log in {self.log_dir}")

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    def stop(self) -> None:
        stop_workers(self.workers)

    def produce(self, pairs: list[tuple[bytes | None, bytes]], topic: str = "raw") -> None:
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
                out += [(m.key, None if m.value is None else orjson.loads(m.value)) for m in messages]
        consumer.close()
        return out

    def metrics(self, index: int) -> str:
        """The Prometheus exposition of the index-th worker."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[index]}/metrics", timeout=10) as response:
            return str(response.read().decode())


@pytest.fixture
def pipeline(bootstrap: str, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(bootstrap, f"t{uuid.uuid4().hex[:10]}", tmp_path)
    try:
        yield pipe
    finally:
        pipe.stop()
