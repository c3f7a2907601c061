"""Secured Kafka, for real: the local broker's SASL_SSL listener (SCRAM users made when its
storage is formatted) and its mutual-TLS listener, both signed by a test CA of its own.

A worker reads and writes through SASL_SSL with SCRAM-SHA-512, the lake sink through
mutual TLS, and the command-line tools through PLAIN over TLS; a wrong password, a
missing CA and a missing client certificate each fail with one line that says what to check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from streams.demo import KAFKA_SCRIPT, broker_env
from tests.support import ROOT, Pipeline, synthetic

pytestmark = pytest.mark.integration
USER, PASSWORD = "streams", "streams-local-secret"  # made by deploy/local/kafka


def local_broker_or_skip(pipeline: Pipeline) -> tuple[int, Path]:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        pytest.skip("the secured listeners are the local broker's (deploy/local/kafka); KAFKA_BOOTSTRAP names another")
    port = int(pipeline.bootstrap.rsplit(":", 1)[1])
    tls = subprocess.run([str(KAFKA_SCRIPT), "tls"], env=broker_env(port), capture_output=True, text=True, check=True)
    return port, Path(tls.stdout.strip())


def sasl_ssl(port: int, tls: Path, mechanism: str, password: str = PASSWORD) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{port + 2}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": password,
        "KAFKA_SSL_CA_FILE": str(tls / "ca.pem"),
    }


def mutual_tls(port: int, tls: Path, with_certificate: bool = True) -> dict[str, str]:
    env = {"KAFKA_BOOTSTRAP": f"127.0.0.1:{port + 3}", "KAFKA_SECURITY_PROTOCOL": "SSL"}
    env["KAFKA_SSL_CA_FILE"] = str(tls / "ca.pem")
    if with_certificate:
        env.update(KAFKA_SSL_CERT_FILE=str(tls / "client.pem"), KAFKA_SSL_KEY_FILE=str(tls / "client.key"))
    return env


def cli(pipeline: Pipeline, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "streams.cli", *args]
    return subprocess.run(command, env={**pipeline.env(6066), **env}, capture_output=True, text=True, timeout=120)


def rows_in(lake: Path, table: str) -> int:
    try:
        return int(DeltaTable(str(lake / table)).to_pyarrow_dataset().count_rows())
    except TableNotFoundError:
        return 0


def test_the_pipeline_and_the_sink_run_through_sasl_ssl_and_mutual_tls(pipeline: Pipeline, tmp_path: Path) -> None:
    port, tls = local_broker_or_skip(pipeline)
    pipeline.start_worker(sasl_ssl(port, tls, "SCRAM-SHA-512"))
    posts = synthetic(60, seed=21)
    pipeline.produce(posts)  # through the PLAINTEXT listener: the same broker, the same topics
    enriched = pipeline.consume_keys("enriched", {key for key, _ in posts})
    assert {key for key, _ in posts} <= {key for key, _ in enriched}

    lake = tmp_path / "lake"
    env = {**pipeline.env(6066), **mutual_tls(port, tls), "STREAMS_LAKE_URI": str(lake)}
    env.update(STREAMS_SINK_BATCH_ROWS="20", STREAMS_SINK_BATCH_S="0.5", STREAMS_SINK_TOPICS="posts.enriched")
    with (pipeline.log_dir / "sink.log").open("ab") as log:
        sink = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "sink"], env=env, stdout=log, stderr=log, cwd=ROOT
        )
    pipeline.others.append(sink)
    deadline = time.monotonic() + 120
    while rows_in(lake, "posts_enriched") < len(posts):
        assert sink.poll() is None, (
            f"the sink exited with {sink.returncode}: {(pipeline.log_dir / 'sink.log').read_text()[-2000:]}"
        )
        assert time.monotonic() < deadline, "the sink wrote too few rows through mutual TLS"
        time.sleep(0.5)

    # The command-line tools: PLAIN over TLS works, and each mistake is one line.
    tail = ("tail", pipeline.topics["enriched"], "--from-beginning", "--json", "--limit", "3")
    done = cli(pipeline, sasl_ssl(port, tls, "PLAIN"), *tail)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 3, done.stderr
    wrong = cli(pipeline, sasl_ssl(port, tls, "SCRAM-SHA-256", password="not-the-password"), "topics", "create")
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert "while authenticating" in wrong.stderr and "KAFKA_SASL_PASSWORD" in wrong.stderr
    assert "not-the-password" not in wrong.stderr + wrong.stdout
    untrusted = cli(pipeline, {**sasl_ssl(port, tls, "PLAIN"), "KAFKA_SSL_CA_FILE": ""}, "topics", "create")
    assert untrusted.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
    anonymous = cli(pipeline, mutual_tls(port, tls, with_certificate=False), "topics", "create")
    assert anonymous.returncode == 2 and "refused the connection" in anonymous.stderr, anonymous.stderr
    assert len(anonymous.stderr.strip().splitlines()) == 1
