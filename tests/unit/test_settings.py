"""Settings: defaults, and one clear line for each invalid value."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

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
        ({"STREAMS_BATCH_LINGER_S": "inf"}, "STREAMS_BATCH_LINGER_S='inf' is not a valid finite_number"),
        ({"STREAMS_BATCH_LINGER_S": "nan"}, "STREAMS_BATCH_LINGER_S='nan' is not a valid finite_number"),
        ({"STREAMS_BATCH_LINGER_S": "600"}, "STREAMS_BATCH_LINGER_S must be above 0 and at most 60"),
        ({"STREAMS_MAX_HASHTAGS": "0"}, "STREAMS_MAX_HASHTAGS must be between 1 and 1000"),
        ({"STREAMS_MAX_MESSAGE_BYTES": "9000000"}, "STREAMS_MAX_MESSAGE_BYTES must be between 1024 and 1048576"),
        ({"STREAMS_DEADLETTER_ORIGINAL_BYTES": "-1"}, "STREAMS_DEADLETTER_ORIGINAL_BYTES must be between 0"),
        ({"STREAMS_MEDIA_DEADLINE_S": "0"}, "STREAMS_MEDIA_DEADLINE_S must be between 0.5 and 120"),
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


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = Settings.from_env({"STREAMS_PSEUDONYM_SECRET": "s3cret-key-of-16-bytes", "STREAMS_WEB_TOKEN": "t0ken"})
    for shown in (repr(settings), str(settings), repr([settings]), str(settings.describe())):
        assert "s3cret" not in shown and "t0ken" not in shown
        assert "***" in shown


def test_the_advertised_url_is_an_address_the_other_workers_can_reach() -> None:
    import socket

    assert Settings.from_env({}).advertised_url == "http://127.0.0.1:6066"
    anywhere = Settings.from_env({"STREAMS_WEB_HOST": "0.0.0.0", "STREAMS_WEB_PORT": "7000"})
    assert anywhere.advertised_url == f"http://{socket.gethostname()}:7000"
    pod = {"STREAMS_WEB_HOST": "0.0.0.0", "STREAMS_WEB_ADVERTISED_HOST": "10.4.2.7"}
    assert Settings.from_env(pod).advertised_url == "http://10.4.2.7:6066"
    assert Settings.from_env({"STREAMS_WEB_HOST": "::1"}).advertised_url == "http://[::1]:6066"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL, SASL_PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
            "SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        ({"KAFKA_SSL_CA_FILE": "/etc/hostname"}, "KAFKA_SSL_* is set but KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "/etc/hostname"},
            "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/no/such/ca.pem"}, "KAFKA_SSL_CA_FILE /no/such"),
    ],
)
def test_a_wrong_combination_of_connection_settings_is_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_sasl_connection_reads_its_password_from_a_file_and_never_shows_it(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-password\n")
    env = {
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD_FILE": str(secret),
    }
    settings = Settings.from_env(env)
    connection = settings.connection
    assert (connection.security_protocol, connection.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    config = connection.kafka_python(acks="all")
    assert config["sasl_plain_password"] == "s3cret-password" and config["acks"] == "all"
    assert config["ssl_cafile"] is None  # the system's CAs
    assert connection.aiokafka()["sasl_mechanism"] == "SCRAM-SHA-512"
    for shown in (repr(settings), repr(connection), str(settings.describe())):
        assert "s3cret" not in shown
    with pytest.raises(SettingsError, match="both set"):
        Settings.from_env({**env, "KAFKA_SASL_PASSWORD": "x"})
