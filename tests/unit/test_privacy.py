"""Pseudonyms and PII redaction."""

from __future__ import annotations

import orjson
import pytest

from streams.errors import SettingsError
from streams.privacy.policy import PrivacyPolicy
from streams.privacy.pseudonym import Pseudonymizer
from streams.privacy.redact import DEFAULT_KINDS, luhn_valid, redact
from streams.settings import Settings

KEY = b"0123456789abcdef-test"


def test_pseudonyms_are_stable_keyed_and_hide_the_id() -> None:
    first, other = Pseudonymizer(KEY), Pseudonymizer(KEY + b"x")
    assert first("alice") == first("alice") != first("bob")
    assert first("alice") != other("alice")
    assert "alice" not in first("alice") and first("alice").startswith("u_")
    assert "0123" not in repr(first)


def test_the_worker_refuses_to_start_without_a_key() -> None:
    with pytest.raises(SettingsError, match="no pseudonymisation key"):
        Settings.from_env({}).pseudonym_key()
    assert Settings.from_env({"STREAMS_DEV_MODE": "1"}).pseudonym_key()
    with pytest.raises(SettingsError, match="at least 16 bytes"):
        Settings.from_env({"STREAMS_PSEUDONYM_SECRET": "short"}).pseudonym_key()


def test_the_key_is_masked_in_the_startup_log() -> None:
    described = Settings.from_env({"STREAMS_PSEUDONYM_SECRET": "a-very-secret-key-value"}).describe()
    assert described["STREAMS_PSEUDONYM_SECRET"] == "***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+news@mail.example.co.uk today", "write to [email] today"),
        ("call +44 20 7946 0958 or (415) 555-0132", "call [phone] or [phone]"),
        ("card 4111-1111-1111-1111 please", "card [card] please"),
        ("ssh to 10.0.12.7 then 2001:db8::8a2e:370:7334", "ssh to [ip] then [ip]"),
        ("we moved to 1600 Pennsylvania Avenue last week", "we moved to [address] last week"),
        ("full-width ４１１１ １１１１ １１１１ １１１１", "full-width [card]"),
        ("hidden 555\u200b867\u200b5309 number", "hidden [phone] number"),
        ("split by emoji 555📞123📞4567 ok", "split by emoji [phone] ok"),
        ("card 4111🔥1111🔥1111🔥1111", "card [card]"),
    ],
)
def test_pii_is_masked(text: str, expected: str) -> None:
    assert redact(text, DEFAULT_KINDS)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "#blacklivesmatter #2024 is trending",
        "only $1,299.99 until 2026-01-15 at 10:30",
        "upgrade to v2.14.3 or 10.0.1 now",
        "final score 3-1, attendance 45,000",
        "order 1234 5678 9012 3456 is not a card (fails Luhn)",
    ],
)
def test_ordinary_numbers_and_hashtags_stay(text: str) -> None:
    assert redact(text, DEFAULT_KINDS) == (text, [])


def test_mentions_are_masked_only_when_asked() -> None:
    assert redact("thanks @bob", DEFAULT_KINDS)[0] == "thanks @bob"
    assert redact("thanks @bob", ("mention",))[0] == "thanks @user"


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_dead_letter_originals_carry_the_pseudonym_not_the_user_id() -> None:
    policy = PrivacyPolicy.create(KEY, "email", "email")
    original, altered = policy.dead_letter_original(b'{"id": 1, "user_id": "alice", "text": ""}')
    assert altered and b"alice" not in (original or b"")
    assert orjson.loads(original or b"{}")["user_id"] == Pseudonymizer(KEY)("alice")
    assert policy.dead_letter_original(b"not json alice") == (b"not json alice", False)


def test_a_dead_letter_original_too_deep_to_encode_keeps_the_pseudonym() -> None:
    policy = PrivacyPolicy.create(KEY, "email", "email")
    deep = b"[" * 600 + b"]" * 600  # parses (orjson reads 1,024 levels) but cannot be encoded again
    original, altered = policy.dead_letter_original(b'{"user_id": "alice", "extra": ' + deep + b', "id": 7}')
    value = orjson.loads(original or b"{}")
    assert altered and value == {"user_id": Pseudonymizer(KEY)("alice"), "extra": "[nested too deep to keep]", "id": 7}


def test_a_user_id_of_the_wrong_type_is_pseudonymised_in_the_dead_letter_too() -> None:
    policy = PrivacyPolicy.create(KEY, "email", "email")
    original, altered = policy.dead_letter_original(b'{"id": 1, "user_id": {"handle": "alice"}, "text": "x"}')
    assert altered and b"alice" not in (original or b"")
    assert orjson.loads(original or b"{}")["user_id"] == Pseudonymizer(KEY)('{"handle":"alice"}')
