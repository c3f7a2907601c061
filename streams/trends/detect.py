"""Spike detection and forecasts over a term's closed tumbling windows.

Baseline: an exponentially weighted mean and variance of the term's counts.
A window opens an alert when its count has enough support, is ``ratio`` times
the baseline mean (at least 1) and ``z`` standard deviations above it, where the
deviation is the larger of the observed one and the Poisson one (sqrt(mean)),
so a rare, steady term is not alerted on for noise. Two windows in a row at
``z_sustained`` deviations also alert: a lasting burst of a smaller size.
A term alerts only after ``min_history`` windows, unless it is new (its
baseline starts at 0). While an alert is open the baseline's mean learns five
times slower and its variance not at all (a burst must not become its own
baseline, but a lasting new level must); the alert closes, and re-arms, when a
window is back near the baseline, or after ``max_alert_windows``.

Forecast: TSB (Teunter, Syntetos & Babai 2011), the intermittent-demand model of
statsforecast: the size of a term's count when it occurs and the probability that
it occurs, each exponentially smoothed; their product is the expected count. The
published point forecast is the median of a Poisson count with that mean (what
minimises the absolute error: 0 for a sparse term, as most next windows are),
with an 80% interval (the 10th and 90th percentiles). Chosen by
benchmarks/forecast.py on real tweet timestamps: it beats zero, last value,
trailing mean, seasonal naive, Croston, ADIDA, IMAPA and the damped Holt served
before, at horizon 1, at 1 minute, 10 minutes and 1 hour, on held-back data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# A term's detector state (JSON in the term's table value): mean, var, TSB's size and
# probability, alert (the open alert or None), windows seen, seeded, and for the early
# warning the fast baseline, the last counts and the mentions seen.
Model = dict[str, Any]

# A gap of this many empty windows resets the baseline: the weights left are nil.
MAX_ZERO_STEPS = 200
RECENT_WINDOWS = 10  # the last counts kept for the early warning (streams.trends.warning)
TONE_LEARNING = 0.2  # share of its weight a window keeps in the usual tone while a sentiment shift is open


@dataclass(frozen=True)
class DetectorSettings:
    alpha: float = 0.1  # EWMA weight of the newest window
    z: float = 5.0  # standard deviations above the baseline
    z_sustained: float = 3.0  # ... or this many, two windows in a row
    ratio: float = 2.0  # times the baseline mean
    min_count: int = 5  # least count in the window
    calm_z: float = 2.0  # the alert closes when the count is within this many deviations
    max_alert_windows: int = 30
    min_history: int = 5
    alert_learning: float = 0.2  # share of alpha the baseline keeps while an alert is open
    fast_alpha: float = 0.5  # the fast baseline the early warning compares with the slow one
    # TSB smoothing of the count's size and of its probability, for 1-minute windows
    # (tsb_smoothing() gives the values chosen per window size).
    tsb_size: float = 0.4
    tsb_probability: float = 0.05
    horizon: int = 3  # forecast windows
    interval: float = 0.8  # the forecast interval's coverage
    # Sentiment shift of a watched entity: the window's negative share this far above its usual,
    # this many binomial deviations above it, with this many mentions, after this many windows.
    shift_delta: float = 0.3
    shift_z: float = 3.0
    shift_min_count: int = 5
    shift_history: int = 5


def tsb_smoothing(window_s: float) -> tuple[float, float]:
    """(size, probability) smoothing chosen on the tune months of benchmarks/forecast.py."""
    if window_s <= 60:
        return 0.4, 0.05
    if window_s <= 600:
        return 0.2, 0.05
    return 0.4, 0.1


def new_model(first_count: float | None = None) -> Model:
    """A term's detector state: seeded with its first count at the start of a stream,
    or from 0 (and at once able to alert) for a term new to a running stream."""
    level = float(first_count or 0.0)
    seeded = first_count is not None
    return {"mean": level, "var": level, "size": None, "probability": 0.0, "alert": None, "windows": 0,
            "seeded": seeded}  # fmt: skip


def deviation(model: dict[str, Any]) -> float:
    return math.sqrt(max(model["var"], model["mean"]) + 1.0)


def score(model: dict[str, Any], count: int) -> float:
    return (count - model["mean"]) / deviation(model)


def growth(model: dict[str, Any], count: int) -> float:
    return count / max(model["mean"], 1.0)


def severity(growth_ratio: float) -> str:
    if growth_ratio >= 10:
        return "high"
    if growth_ratio >= 5:
        return "medium"
    return "low"


def _update_baseline(model: dict[str, Any], count: float, alpha: float, learn_variance: bool) -> None:
    diff = count - model["mean"]
    increment = alpha * diff
    model["mean"] += increment
    if learn_variance:
        model["var"] = (1 - alpha) * (model["var"] + diff * increment)


def _update_tsb(model: dict[str, Any], count: float, s: DetectorSettings) -> None:
    """One window into TSB. A term's (re)start is preceded by empty windows: the probability
    starts from 0 and takes one step toward its first occurrence, the size starts at its
    first count (statsforecast's TSB over the last day of windows does the same). A term
    seeded at the start of a stream starts at probability 1: nothing is known before it."""
    occurred = 1.0 if count > 0 else 0.0
    if model.get("size") is None:
        if count > 0:
            # A term already there when the stream started has no empty windows behind it.
            start = 1.0 if model.get("seeded") and model["windows"] == 0 else s.tsb_probability
            model["size"], model["probability"] = float(count), start
        return
    model["probability"] += s.tsb_probability * (occurred - model["probability"])
    if count > 0:
        model["size"] += s.tsb_size * (count - model["size"])


def expected_count(model: dict[str, Any]) -> float:
    return float(model.get("probability", 0.0) * (model.get("size") or 0.0))


def poisson_quantile(mean: float, q: float) -> int:
    """The least k with P(X <= k) >= q for X ~ Poisson(mean)."""
    k, p = 0, math.exp(-mean)
    cumulative = p
    while cumulative < q and k < 10_000:
        k += 1
        p *= mean / k
        cumulative += p
    return k


def forecast(model: dict[str, Any], s: DetectorSettings) -> list[float]:
    """The next ``horizon`` windows' counts: the median of a Poisson count with TSB's mean
    (TSB's forecast is flat: the same for every window ahead)."""
    median = float(poisson_quantile(expected_count(model), 0.5))
    return [median] * s.horizon


def forecast_interval(model: dict[str, Any], s: DetectorSettings) -> dict[str, Any]:
    """The central ``interval`` of each forecast window's count, and the expected count."""
    mean = expected_count(model)
    tail = (1 - s.interval) / 2
    low, high = float(poisson_quantile(mean, tail)), float(poisson_quantile(mean, 1 - tail))
    return {"level": s.interval, "low": [low] * s.horizon, "high": [high] * s.horizon, "mean": round(mean, 3)}


def skip_empty(model: dict[str, Any], windows: int, s: DetectorSettings) -> None:
    """Account for ``windows`` windows in which the term did not occur."""
    if windows >= MAX_ZERO_STEPS:
        model.update(mean=0.0, var=0.0, size=None, probability=0.0, alert=None, fast=0.0, recent=[])
        return
    for _ in range(windows):
        observe(model, 0, s)


def observe(model: dict[str, Any], count: int, s: DetectorSettings) -> bool:
    """Score one closed window, then learn from it; True when it opens an alert."""
    opened = False
    alert = model["alert"]
    z = score(model, count)
    high = count >= s.min_count and count >= s.ratio * max(model["mean"], 1.0)
    if alert is None:
        ready = model["windows"] >= s.min_history or not model.get("seeded", False)
        # One window far above the baseline, or two in a row well above it.
        sustained = z >= s.z_sustained and model.get("last_z", 0.0) >= s.z_sustained
        if ready and high and (z >= s.z or sustained):
            model["alert"] = {"windows": 0, "peak": count}
            opened = True
    else:
        alert["windows"] += 1
        alert["peak"] = max(alert["peak"], count)
        if z <= s.calm_z or alert["windows"] >= s.max_alert_windows:
            model["alert"] = None
    calm = model["alert"] is None
    # A burst's windows would inflate the variance and hide the next burst: they move the mean only.
    _update_baseline(model, count, s.alpha if calm else s.alpha * s.alert_learning, learn_variance=calm)
    _update_tsb(model, count, s)
    model["fast"] = model.get("fast", 0.0) + s.fast_alpha * (count - model.get("fast", 0.0))
    model["recent"] = [*model.get("recent", ())[1 - RECENT_WINDOWS :], count]
    model["seen"] = model.get("seen", 0) + count
    model["windows"] += 1
    model["last_z"] = z if high else 0.0
    return opened


def observe_tone(model: Model, window: dict[str, Any], s: DetectorSettings) -> bool:
    """Score a window's negative share against the term's usual one (``model["negative"]``, before
    the window is learnt); True when it opens a sentiment shift. The deviation is the binomial one
    of the usual share, floored at 5%, so a few negative posts on a term that is never negative are
    not a crisis. One alert per shift: it closes, and re-arms, when the share is back within half
    the distance."""
    usual = model.get("negative")
    count, negative = window["count"], window["sentiment"]["negative"]
    model["tone_windows"] = model.get("tone_windows", 0) + 1
    if usual is None:
        return False
    spread = math.sqrt(max(usual, 0.05) * (1 - min(usual, 0.95)) / max(count, 1))
    z = model["tone_z"] = (negative - usual) / spread
    alert = model.get("tone_alert")
    if alert is not None:
        if negative <= usual + s.shift_delta / 2 or alert["windows"] >= s.max_alert_windows:
            model["tone_alert"] = None
        else:
            alert["windows"] += 1
        return False
    ready = model["tone_windows"] > s.shift_history
    if ready and count >= s.shift_min_count and negative - usual >= s.shift_delta and z >= s.shift_z:
        model["tone_alert"] = {"windows": 0, "peak": negative}
        return True
    return False
