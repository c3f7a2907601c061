"""The Faust app's settings that depend on what a worker runs."""

from __future__ import annotations

import pytest

from streams.app import create_app, standby_replicas
from streams.settings import Settings


@pytest.mark.parametrize(
    ("env", "replicas"),
    [
        ({}, 0),  # every agent, in-memory tables: a standby would only read the other workers' writes
        ({"STREAMS_AGENTS": "enrich"}, 0),
        ({"STREAMS_STORE": "rocksdb://"}, 1),  # a local store keeps what a standby read
        # No table: with no standby either, Faust would join with round-robin assignment,
        # which the group of the text workers refuses.
        ({"STREAMS_AGENTS": "media"}, 1),
    ],
)
def test_standby_replicas_fit_what_the_worker_runs(env: dict[str, str], replicas: int) -> None:
    settings = Settings.from_env(env)
    assert standby_replicas(settings) == replicas
    assert create_app(settings).conf.table_standby_replicas == replicas
