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


def test_an_external_broker_is_used_as_given() -> None:
    result = run("start", KAFKA_BOOTSTRAP="broker.example:9092")
    assert (result.returncode, result.stdout.strip()) == (0, "broker.example:9092")
