"""Failures of the infrastructure: the broker restarts mid-replay, and nothing is lost."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from streams.demo import KAFKA_SCRIPT
from tests.integration.conftest import Pipeline
from tests.integration.test_pipeline import synthetic


def broker(action: str, bootstrap: str) -> None:
    port = bootstrap.rsplit(":", 1)[1]
    subprocess.run([str(KAFKA_SCRIPT), action], env={**os.environ, "KAFKA_PORT": port}, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def test_a_broker_restart_mid_replay_loses_no_post(pipeline: Pipeline) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        pytest.fail("this test restarts the broker: run it against the broker the suite provisions")
    pipeline.extra_env = {"STREAMS_AGENTS": "enrich"}
    worker = pipeline.start_worker()
    posts = synthetic(400, seed=21)
    pipeline.produce(posts[:200])
    pipeline.consume("enriched", 100, settle_s=0)
    broker("stop", pipeline.bootstrap)
    time.sleep(3)  # the worker sees the broker gone: connections refused, requests failing
    broker("start", pipeline.bootstrap)
    pipeline.produce(posts[200:])
    records = pipeline.consume("enriched", len(posts), timeout_s=240)
    assert {key for key, _ in records} == {key for key, _ in posts}
    assert worker.poll() is None, "the worker exited instead of reconnecting"
