"""The alert policy: evidence before an alert, everyday words, the hourly budget, and the
explanation an alert carries."""

from __future__ import annotations

from typing import Any

from streams.trends import windows
from streams.trends.detect import DetectorSettings
from streams.trends.policy import AlertPolicy, is_common
from streams.trends.state import Mention, TermState, new_state
from streams.trends.windows import WindowSpec

SPEC = WindowSpec(window_ms=60_000, hop_size_ms=0, hop_ms=60_000, grace_ms=0)
T0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
HOUR_MS = 3_600_000


def feed(state: TermState, counts: list[int], policy: AlertPolicy, authors: int = 1_000, negative_from: int = -1,
         warm: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """One window per count (``authors`` distinct authors at most per window); the alerts opened."""
    alerts, offset = [], 0
    for w, count in enumerate(counts):
        for i in range(count):
            offset += 1
            sentiment = 0 if 0 <= negative_from <= w else 2
            mention = Mention(f"p{offset}", T0 + w * 60_000 + i, f"u{w}-{i % authors}", sentiment, 0, 0, offset)
            windows.add(state, mention, SPEC, None)
        alerts += windows.close(state, T0 + (w + 1) * 60_000, SPEC, DetectorSettings(), warm, policy).alerts
    return alerts


def spike(score: float, start: int, kind: str = "hashtag") -> dict[str, Any]:
    return {"type": "spike", "kind": kind, "score": score, "window": {"start": start}}


def test_a_burst_from_one_account_is_no_trend_and_from_many_it_is() -> None:
    policy = AlertPolicy(spikes_per_hour=0, warnings_per_hour=0)
    calm = [2] * 20
    one_author = feed(new_state("hashtag", "spam", 0), [*calm, 40], policy, authors=1)
    many = feed(new_state("hashtag", "launch", 0), [*calm, 40], policy)
    assert [a["type"] for a in one_author] == []
    assert [a["type"] for a in many] == ["spike"]


def test_an_everyday_word_is_never_new_and_spikes_only_far_above_its_own_baseline() -> None:
    assert is_common("keyword", "new") and is_common("keyword", "new work") and not is_common("hashtag", "new")
    assert not is_common("keyword", "new iphone")
    policy = AlertPolicy(spikes_per_hour=0, warnings_per_hour=0)
    # Seen for the first time on a warm stream: a rare term is new (a rise from 0), an everyday word is not.
    assert [a["type"] for a in feed(new_state("keyword", "zyxwv", 0), [12], policy)] == ["spike"]
    assert feed(new_state("keyword", "new", 0), [12], policy) == []
    # Six times its baseline alerts a term, not an everyday word; thirty times alerts both.
    assert feed(new_state("keyword", "new", 0), [5] * 20 + [30], policy) == []
    assert [a["type"] for a in feed(new_state("keyword", "zyxwv", 0), [5] * 20 + [30], policy)] == ["spike"]
    assert [a["type"] for a in feed(new_state("keyword", "new", 0), [5] * 20 + [150], policy)] == ["spike"]


def test_an_early_warning_needs_its_mentions() -> None:
    rising = [0] * 10 + [1, 2, 2, 3, 4, 6, 9]
    lenient = AlertPolicy(warning_min_count=1, warning_threshold=0.05, min_users=1)
    strict = AlertPolicy(warning_min_count=50, warning_threshold=0.05, min_users=1)
    assert any(a["type"] == "early_warning" for a in feed(new_state("hashtag", "rise", 0), rising, lenient))
    assert not any(a["type"] == "early_warning" for a in feed(new_state("hashtag", "rise", 0), rising, strict))


def test_the_budget_sends_the_strongest_and_counts_the_rest_per_hour_and_kind() -> None:
    budget = AlertPolicy(spikes_per_hour=2, warnings_per_hour=1).new_budget()
    sent, suppressed = budget.admit([spike(6.0, T0), spike(9.0, T0), spike(7.0, T0), spike(8.0, T0, "keyword")])
    assert [(a["kind"], a["score"]) for a in sent] == [("hashtag", 9.0), ("keyword", 8.0), ("hashtag", 7.0)]
    assert [a["score"] for a in suppressed] == [6.0]
    assert budget.admit([spike(20.0, T0 + 60_000)])[0] == []  # the hour's budget is spent
    later = T0 - T0 % HOUR_MS + HOUR_MS
    assert len(budget.admit([spike(5.0, later)])[0]) == 1  # a new hour, a new budget


def test_the_budget_is_shared_by_the_partitions() -> None:
    assert AlertPolicy(spikes_per_hour=20, partitions=4).limit("spike") == 5
    assert AlertPolicy(warnings_per_hour=10, partitions=4).limit("early_warning") == 3
    assert AlertPolicy(spikes_per_hour=0).limit("spike") == 0  # no limit


def test_an_alert_explains_its_authors_and_tone_against_the_term_s_past() -> None:
    policy = AlertPolicy(spikes_per_hour=0, warnings_per_hour=0)
    # Twenty calm, positive windows by the same four authors, then a negative burst by new ones.
    state = new_state("hashtag", "acme", 0)
    feed(state, [4] * 20, policy, authors=4)
    alerts = feed_burst(state, policy)
    why = alerts[0]["explanation"]
    assert why["unique_users"] == 40 and why["new_authors_share"] == 1.0
    assert why["negative_share"] == 1.0 and why["negative_baseline"] == 0.0
    assert why["toxicity_rate"] == 0.0 and why["toxicity_baseline"] == 0.0
    record = windows.alert_record("hashtag", "acme", None, alerts[0])
    assert record["explanation"] == why


def feed_burst(state: TermState, policy: AlertPolicy) -> list[dict[str, Any]]:
    """A burst of 40 negative mentions by 40 authors new to the term, in the window after its last."""
    start = state["closed"]
    assert start is not None
    for i in range(40):
        windows.add(state, Mention(f"b{i}", start + i, f"new{i}", 0, 0, 1, i), SPEC, None)
    return windows.close(state, start + 60_000, SPEC, DetectorSettings(), True, policy).alerts
