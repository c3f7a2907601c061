"""deploy/local/kafka: idempotent start, and one clear line for each failure."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from streams.demo import KAFKA_SCRIPT
from tests.support import free_port

pytestmark = pytest.mark.integration


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(KAFKA_SCRIPT), *args], env={**os.environ, **env}, capture_output=True, text=True
    )


def test_start_is_idempotent_and_prints_the_bootstrap(bootstrap: str) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        pytest.skip("the session uses an external broker")
    port = bootstrap.rsplit(":", 1)[1]
    again = run("start", KAFKA_PORT=port)
    assert again.returncode == 0
    assert again.stdout.strip() == bootstrap
    assert run("status", KAFKA_PORT=port).stdout.startswith(f"running {bootstrap}")


def test_a_taken_port_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("start", KAFKA_PORT=str(port), KAFKA_BOOTSTRAP="")
    assert result.returncode == 1
    assert result.stderr.strip() == f"kafka: port {port} is taken by another process: stop it or set KAFKA_PORT"


def test_missing_java_is_one_clear_line() -> None:
    result = run("start", KAFKA_PORT=str(free_port()), KAFKA_BOOTSTRAP="", PATH="/nonexistent")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("kafka: java not found: install Java 17")


def test_an_external_broker_is_used_as_given(bootstrap: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_PORT"}
    result = subprocess.run(
        [str(KAFKA_SCRIPT), "start"], env={**env, "KAFKA_BOOTSTRAP": bootstrap}, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout.strip()) == (0, bootstrap)


def test_ctrl_c_ends_a_command_with_one_line(bootstrap: str) -> None:
    import signal
    import sys
    import time
    import uuid

    from kafka import KafkaProducer

    topic = f"ctrl-c-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, b"{}").get(timeout=30)  # the broker creates the topic
    producer.close()
    tail = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "tail", topic],
        env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # connected and waiting for records
    tail.send_signal(signal.SIGINT)
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 130
    assert err.strip() == "social-streams: interrupted", err
