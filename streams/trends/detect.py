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

Forecast: Holt's linear trend, damped, on the same counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# A term's detector state (JSON in the term's table value): mean, var, level, trend,
# alert (the open alert or None), windows seen, seeded.
Model = dict[str, Any]

# A gap of this many empty windows resets the baseline: the weights left are nil.
MAX_ZERO_STEPS = 200


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
    # Chosen on planted-burst streams (benchmarks/trends.py): smoother than these
    # lags bursts, rougher chases Poisson noise.
    holt_alpha: float = 0.3
    holt_beta: float = 0.05
    holt_phi: float = 0.8  # trend damping
    horizon: int = 3  # forecast windows


def new_model(first_count: float | None = None) -> Model:
    """A term's detector state: seeded with its first count at the start of a stream,
    or from 0 (and at once able to alert) for a term new to a running stream."""
    level = float(first_count or 0.0)
    seeded = first_count is not None
    return {"mean": level, "var": level, "level": level, "trend": 0.0, "alert": None, "windows": 0, "seeded": seeded}


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


def _update_holt(model: dict[str, Any], count: float, s: DetectorSettings) -> None:
    level, trend = model["level"], model["trend"]
    new_level = s.holt_alpha * count + (1 - s.holt_alpha) * (level + s.holt_phi * trend)
    model["trend"] = s.holt_beta * (new_level - level) + (1 - s.holt_beta) * s.holt_phi * trend
    model["level"] = new_level


def forecast(model: dict[str, Any], s: DetectorSettings) -> list[float]:
    """Expected counts of the next ``horizon`` windows."""
    values, damped = [], 0.0
    for step in range(1, s.horizon + 1):
        damped += s.holt_phi**step
        values.append(round(max(0.0, model["level"] + damped * model["trend"]), 3))
    return values


def skip_empty(model: dict[str, Any], windows: int, s: DetectorSettings) -> None:
    """Account for ``windows`` windows in which the term did not occur."""
    if windows >= MAX_ZERO_STEPS:
        model.update(mean=0.0, var=0.0, level=0.0, trend=0.0, alert=None)
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
    _update_holt(model, count, s)
    model["windows"] += 1
    model["last_z"] = z if high else 0.0
    return opened
