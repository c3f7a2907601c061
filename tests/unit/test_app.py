"""The Faust app's settings that depend on what a worker runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams import faust_compat
from streams.app import TABLE_WRITES_BUFFERED, create_app, standby_replicas
from streams.errors import SettingsError
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


def test_table_writes_waiting_in_the_producer_buffer_do_not_stop_the_streams() -> None:
    # Faust's conductor awaits wait_until_ebb before it hands each record to the streams.
    app = create_app(Settings.from_env({}))
    buffer = app.producer.buffer
    for _ in range(150):  # one windows batch of 150 terms' changelog writes, not produced yet
        buffer.pending.put_nowait(object())
    with pytest.raises(RuntimeError):  # Faust's 100: the streams would wait for them to drain
        asyncio.run(buffer.wait_until_ebb())
    faust_compat.let_producer_buffer_hold(app, TABLE_WRITES_BUFFERED)
    asyncio.run(buffer.wait_until_ebb())  # returns at once: the streams go on


def test_table_state_goes_to_the_state_folder(tmp_path: Path) -> None:
    app = create_app(Settings.from_env({"STREAMS_STATE_DIR": str(tmp_path), "STREAMS_APP_ID": "state-test"}))
    assert app.conf.datadir == tmp_path / "state-test-data"
    assert create_app(Settings.from_env({"STREAMS_APP_ID": "here"})).conf.datadir == Path("here-data")


def test_a_missing_state_folder_is_created_and_an_impossible_one_named(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "yet"
    app = create_app(Settings.from_env({"STREAMS_STATE_DIR": str(folder), "STREAMS_APP_ID": "fresh"}))
    assert folder.is_dir() and app.conf.datadir == folder / "fresh-data"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match="STREAMS_STATE_DIR: cannot create"):
        create_app(Settings.from_env({"STREAMS_STATE_DIR": str(blocker / "state")}))
