"""The early warning: a rising term is warned once per rise, a trending one is not, and
windows at other sizes carry no prediction (the weights were fitted on one-minute windows)."""

from __future__ import annotations

from typing import Any

from streams.trends import detect, warning, windows
from streams.trends.state import Mention, new_state
from streams.trends.windows import WindowSpec

MINUTE = 60_000


def run(
    counts: list[int], window_ms: int = MINUTE, kind: str = "hashtag", warm: bool = True
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Feed ``counts`` mentions per window to one term; the closed tumbling windows and the alerts."""
    spec = WindowSpec(window_ms=window_ms, hop_size_ms=0, hop_ms=window_ms, grace_ms=0)
    state = new_state(kind, "rising", 0)
    detector = detect.DetectorSettings(min_count=1000)  # no spike alerts: the warning alone
    closed, alerts, offset = [], [], 0
    for i, count in enumerate(counts):
        for _ in range(count):
            offset += 1
            windows.add(state, Mention(f"p{offset}", i * window_ms, f"u{offset}", 1, 0, 0, offset), spec, None)
        result = windows.close(state, (i + 1) * window_ms, spec, detector, warm=warm)
        closed += [w for w in result.windows if w["type"] == "tumbling"]
        alerts += result.alerts
    return closed, alerts


def test_a_rising_term_is_warned_once_per_rise_with_its_probability() -> None:
    rule = warning.load()
    closed, alerts = run([1, 2, 3, 4, 4, 5])
    assert all(0.0 <= w["prediction"]["probability"] <= 1.0 for w in closed)
    assert [a["type"] for a in alerts] == ["early_warning"]
    first = alerts[0]
    assert first["prediction"]["warning"] and first["prediction"]["probability"] >= rule.threshold
    assert first["prediction"]["within_s"] == rule.horizon_windows * rule.window_s


def test_probabilities_grow_with_the_rise() -> None:
    closed, _ = run([1, 1, 2, 3, 5])
    probabilities = [w["prediction"]["probability"] for w in closed]
    assert probabilities == sorted(probabilities) and probabilities[-1] > probabilities[0]


def test_a_term_that_already_trends_is_not_warned() -> None:
    closed, alerts = run([6, 6, 6, 6])
    assert closed[-1]["prediction"]["trending_recently"] and not closed[-1]["prediction"]["warning"]
    assert not [a for a in alerts if a["window"]["start"] >= 2 * MINUTE]


def test_other_window_sizes_carry_no_prediction() -> None:
    closed, alerts = run([1, 2, 3, 4], window_ms=10 * MINUTE)
    assert closed and all("prediction" not in w for w in closed) and not alerts


def test_the_weights_are_the_benchmarks_and_carry_their_figures() -> None:
    rule = warning.load()
    assert len(rule.weights) == len(warning.FEATURES) and 0 < rule.threshold < 1
    assert rule.window_s == 60 and rule.target_count >= 1


def test_a_term_there_since_the_stream_started_is_not_new() -> None:
    # At start-up every term looks new; like spike alerts, warnings wait for min_history windows.
    _, alerts = run([2, 2, 2], warm=False)
    assert alerts == []
    _, alerts = run([1, 0, 0, 0, 0, 0, 1, 2, 3], warm=False)
    assert [a["type"] for a in alerts] == ["early_warning"] and alerts[0]["window"]["start"] >= 5 * MINUTE
