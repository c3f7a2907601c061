"""Watch lists: matching posts to entities, a crisis as one sentiment-shift alert, share of voice,
and a file that cannot be used failing with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import SettingsError
from streams.settings import Settings
from streams.trends import windows
from streams.trends.detect import DetectorSettings
from streams.trends.policy import AlertPolicy
from streams.trends.route import TermSender, terms_of
from streams.trends.state import Mention, TermState, new_state, term_key
from streams.trends.watchlist import Entity, WatchList, fold_accents, load
from streams.trends.windows import WindowSpec

SPEC = WindowSpec(window_ms=60_000, hop_size_ms=0, hop_ms=60_000, grace_ms=0)
T0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
ACME = Entity("Acmé", ("acme corp", "rocket skates"), ("acme",))
NIMBUS = Entity("Nimbus", ("nimbus",), ())


def test_an_entity_is_matched_by_alias_or_hashtag_without_case_or_accents() -> None:
    watch = WatchList([ACME, NIMBUS])
    assert fold_accents("ACMÉ Corp") == "acme corp"
    assert watch.match("My ROCKET   Skates broke; acmé support?", []) == ["acme"]
    assert watch.match("nothing here but acmeism", []) == []  # whole words only
    assert watch.match("switching from Nimbus", ["acme"]) == ["nimbus", "acme"]
    post = {"text": "Acme Corp again", "terms": {"hashtags": [], "cashtags": [], "keywords": ["acme", "corp"]}}
    assert ("entity", "acme") in terms_of(post, ["keyword", "entity"], watch)
    assert ("entity", "acme") not in terms_of(post, ["keyword"], watch)  # the kind switched off


def test_every_watched_entity_goes_to_one_trends_partition() -> None:
    sender = TermSender(topic=None, partitions=8)  # type: ignore[arg-type]
    partitions = {sender.partition_of(term_key("entity", name)) for name in ("acme", "nimbus", "zeta", "omega")}
    assert len(partitions) == 1
    assert len({sender.partition_of(term_key("hashtag", f"t{i}")) for i in range(40)}) > 1


def tone_windows(state: TermState, negative_by_window: list[float], count: int = 20) -> list[str]:
    """Close one window per share (twenty mentions each, on a stream that has just started); the
    alerts each opens, in order (``w:type``)."""
    opened, offset = [], 0
    for w, share in enumerate(negative_by_window):
        for i in range(count):
            offset += 1
            sentiment = 0 if i < round(share * count) else 2
            windows.add(state, Mention(f"p{offset}", T0 + w * 60_000 + i, f"u{offset}", sentiment, 0, 0, offset),
                        SPEC, None)  # fmt: skip
        closed = windows.close(state, T0 + (w + 1) * 60_000, SPEC, DetectorSettings(), False, AlertPolicy())
        opened += [f"{w}:{a['type']}" for a in closed.alerts]
    return opened


def test_a_crisis_opens_one_sentiment_shift_and_ordinary_ups_and_downs_none() -> None:
    calm = [0.1, 0.05, 0.15, 0.1, 0.2, 0.1, 0.05, 0.1, 0.15, 0.1]
    assert tone_windows(new_state("entity", "acme", 0), [*calm, 0.25, 0.3, 0.2, 0.1]) == []
    # The negative share jumps from about 10% to 70% and stays there: one alert, at once.
    assert tone_windows(new_state("entity", "acme", 0), [*calm, 0.7, 0.75, 0.7, 0.8]) == ["10:sentiment_shift"]
    # A hashtag's tone is not watched.
    assert tone_windows(new_state("hashtag", "acme", 0), [*calm, 0.7, 0.75]) == []
    # Back to calm re-arms it: a second crisis is a second alert.
    again = tone_windows(new_state("entity", "acme", 0), [*calm, 0.7, 0.1, 0.1, 0.1, 0.1, 0.8])
    assert again == ["10:sentiment_shift", "15:sentiment_shift"]


def test_share_of_voice_divides_the_watched_mentions_of_each_window() -> None:
    states = [new_state("entity", "acme", 0), new_state("entity", "nimbus", 0), new_state("hashtag", "x", 0)]
    for state, n in zip(states, (30, 10, 50), strict=True):
        for i in range(n):
            windows.add(state, Mention(f"{state['term']}{i}", T0 + i, f"u{i}", 1, 0, 0, i), SPEC, None)
    closed = [(state, windows.close(state, T0 + 60_000, SPEC, DetectorSettings(), True)) for state in states]
    windows.share_of_voice(closed)
    shares = [result.windows[0].get("share_of_voice") for _, result in closed]
    assert shares == [0.75, 0.25, None]
    assert windows.window_record("entity", "acme", None, closed[0][1].windows[0])["share_of_voice"] == 0.75


def test_a_watch_list_that_cannot_be_used_fails_with_one_line(tmp_path: Path) -> None:
    good = tmp_path / "watch.toml"
    good.write_text('[[entity]]\nname = "Acme"\naliases = ["acme corp"]\nhashtags = ["acme"]\n', encoding="utf-8")
    assert [e.term for e in load(str(good)).entities] == ["acme"]
    assert Settings.from_env({"STREAMS_WATCHLIST": str(good)}).watch_list.match("ACME CORP", []) == ["acme"]
    cases = {
        "missing.toml": "cannot read the file",
        "bad.toml": "not valid TOML",
        "unnamed.toml": "needs a name",
        "typo.toml": r"unknown keys \['alias'\]",
        "twice.toml": "two entities are named 'acme'",
    }
    texts = {
        "bad.toml": "[[entity]\n",
        "unnamed.toml": "[[entity]]\naliases = ['x']\n",
        "typo.toml": "[[entity]]\nname = 'Acme'\nalias = ['x']\n",
        "twice.toml": "[[entity]]\nname = 'Acme'\n[[entity]]\nname = 'ACME'\n",
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    for name, message in cases.items():
        with pytest.raises(SettingsError, match=message) as raised:
            Settings.from_env({"STREAMS_WATCHLIST": str(tmp_path / name)})
        assert "\n" not in str(raised.value) and "STREAMS_WATCHLIST=" in str(raised.value)
