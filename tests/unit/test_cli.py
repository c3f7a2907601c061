"""The score command on the served model, and argument errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], input=stdin, capture_output=True, text=True)


def test_score_prints_one_object_per_input_line(tmp_path: Path) -> None:
    source = tmp_path / "texts.jsonl"
    source.write_text('{"text": "What a wonderful morning!"}\nplain line of text\n\n😂😂\n', encoding="utf-8")
    result = run_cli("score", str(source))
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["What a wonderful morning!", "plain line of text", "", "😂😂"]
    first = lines[0]
    assert set(first) >= {"sentiment", "offensive", "hate", "emotion", "moderation", "explanation", "language"}
    assert first["moderation"]["action"] in ("allow", "review", "block")


def test_score_reads_stdin() -> None:
    result = run_cli("score", stdin="this is awful\n")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["text"] == "this is awful"


def test_a_missing_model_folder_is_one_line(tmp_path: Path) -> None:
    result = run_cli("score", "--model", str(tmp_path / "none"), stdin="x\n")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("does not exist (set STREAMS_MODEL_DIR or --model)")


def test_invalid_arguments_are_rejected() -> None:
    result = run_cli("replay", "--rate", "-3")
    assert result.returncode == 2
    assert "must be above 0" in result.stderr


@pytest.mark.parametrize("command", [["topics", "create"], ["tail", "posts.enriched"], ["replay", "--limit", "3"]])
def test_an_unreachable_broker_is_one_line_within_seconds(command: list[str]) -> None:
    import os
    import time

    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", *command],
        env={**os.environ, "KAFKA_BOOTSTRAP": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("social-streams: cannot reach Kafka at 127.0.0.1:1")
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 15  # kafka-python alone would wait 30 s in silence


def test_a_worker_without_a_key_refuses_before_it_touches_the_broker() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_PSEUDONYM")}
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env={**env, "KAFKA_BOOTSTRAP": "127.0.0.1:1", "STREAMS_DEV_MODE": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no pseudonymisation key" in result.stderr and "cannot reach Kafka" not in result.stderr


def test_a_state_folder_that_cannot_be_written_is_one_line() -> None:
    from streams.app import state_folder
    from streams.errors import SettingsError
    from streams.settings import Settings

    with pytest.raises(SettingsError) as caught:
        state_folder(Settings.from_env({"STREAMS_STATE_DIR": "/proc"}))  # read-only even for root
    assert str(caught.value).startswith("STREAMS_STATE_DIR: cannot write in /proc")


def test_a_broker_named_and_a_port_to_start_are_one_line_not_a_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from streams.demo import KAFKA_SCRIPT, start_broker
    from streams.errors import StreamsError

    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("KAFKA_PORT", "19999")
    with pytest.raises(StreamsError, match="unset one of them"):
        start_broker()
    both = subprocess.run([str(KAFKA_SCRIPT), "start"], env=dict(os.environ), capture_output=True, text=True)
    assert both.returncode == 1 and "unset one of them" in both.stderr and both.stdout == ""
    monkeypatch.delenv("KAFKA_PORT")
    nothing = subprocess.run([str(KAFKA_SCRIPT), "start"], env=dict(os.environ), capture_output=True, text=True)
    assert nothing.returncode == 1 and "nothing answers at 127.0.0.1:1" in nothing.stderr and nothing.stdout == ""
