"""Settings: defaults, and one clear line for each invalid value."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from streams.errors import SettingsError
from streams.settings import Settings


def test_defaults_are_valid() -> None:
    settings = Settings.from_env({})
    assert settings.topic_raw == "posts.raw"
    assert settings.guarantee == "at_least_once"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAMS_BATCH_SIZE": "many"}, "STREAMS_BATCH_SIZE='many' is not a valid int"),
        ({"STREAMS_BATCH_SIZE": "0"}, "STREAMS_BATCH_SIZE must be at least 1"),
        ({"STREAMS_GUARANTEE": "maybe"}, "STREAMS_GUARANTEE must be one of at_least_once, exactly_once"),
        ({"STREAMS_BATCH_LINGER_S": "0"}, "STREAMS_BATCH_LINGER_S must be above 0"),
        ({"STREAMS_REVIEW_THRESHOLD": "0.95", "STREAMS_BLOCK_THRESHOLD": "0.9"}, "must not be above STREAMS_BLOCK"),
        ({"STREAMS_MODEL_DEVICE": "tpu"}, "STREAMS_MODEL_DEVICE must be one of cpu, cuda"),
        ({"STREAMS_STORE": "redis://"}, "STREAMS_STORE must be memory:// or rocksdb://"),
        ({"STREAMS_AGENTS": "enrich,images"}, "must name one or more of enrich, profiles, trends, media"),
        ({"STREAMS_MEDIA_NSFW_REVIEW": "0.9", "STREAMS_MEDIA_NSFW_BLOCK": "0.8"}, "at most STREAMS_MEDIA_NSFW_BLOCK"),
        ({"STREAMS_MEDIA_MAX_ITEMS": "0"}, "STREAMS_MEDIA_MAX_ITEMS must be between 1 and 32"),
        ({"STREAMS_MEDIA_ANALYSIS": "yes"}, "STREAMS_MEDIA_ANALYSIS='yes' is not a valid int"),
        ({"STREAMS_EVENT_LOOP": "trio"}, "STREAMS_EVENT_LOOP must be one of uvloop, asyncio"),
        ({"STREAMS_GC_YOUNG_THRESHOLD": "0"}, "STREAMS_GC_YOUNG_THRESHOLD must be between 100 and 1000000"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_the_cli_fails_with_one_line_on_a_bad_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "settings"],
        env={"STREAMS_PARTITIONS": "-2", "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "social-streams: STREAMS_PARTITIONS must be at least 1"


def test_the_readme_lists_every_setting() -> None:
    from pathlib import Path

    from streams.settings import ENV

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert [var for _, var, _, _ in ENV if f"| `{var}` |" not in readme] == []


def test_the_worker_runs_on_the_event_loop_it_is_given() -> None:
    import uvloop

    from streams.worker import use_event_loop

    def loop_class(name: str) -> type:
        use_event_loop(name)
        loop = asyncio.new_event_loop()
        loop.close()
        return type(loop)

    try:
        assert issubclass(loop_class("uvloop"), uvloop.Loop)
        assert not issubclass(loop_class("asyncio"), uvloop.Loop)
    finally:
        asyncio.set_event_loop_policy(None)
