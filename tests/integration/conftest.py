"""Fixtures against a real Apache Kafka broker: one broker for the session, a Pipeline per test.

The broker comes from deploy/local/kafka (the project's own ``start_broker``) on a
port of its own (KAFKA_TEST_PORT, default 19092) unless KAFKA_BOOTSTRAP names one; a
session that starts it starts it empty (the topics of earlier sessions removed).
Every test gets a unique app id and unique topic names, so tests never see each
other's records. Every test here is marked ``integration``: ``-m "not integration"``
runs the unit tests alone, without a broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.demo import start_broker, stop_broker
from tests.support import Pipeline, empty_test_broker

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report shows where its living workers wait (a stalled worker says why)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    pipeline = getattr(item, "funcargs", {}).get("pipeline")
    if report.when == "call" and report.failed and isinstance(pipeline, Pipeline):
        report.sections.append(("workers' stacks", pipeline.stacks()))


def broker_port() -> int:
    return int(os.environ.get("KAFKA_TEST_PORT", "19092"))


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    port = broker_port()
    empty_test_broker(port)
    address, started = start_broker(port)
    try:
        yield address
    finally:
        stop_broker(started, port)  # leave a broker someone else started


@pytest.fixture
def pipeline(bootstrap: str, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(bootstrap, f"t{uuid.uuid4().hex[:10]}", tmp_path)
    try:
        yield pipe
    finally:
        pipe.stop()
