"""Early warning: the probability that a term trends within the next hour.

At every closed tumbling window of a term, a logistic regression over what the
term's detector state already holds (its count, the sum of its last
detect.RECENT_WINDOWS windows, the slow and fast baselines, TSB's expected
count, its growth over the baseline, its mentions so far, whether it is a
hashtag) gives the probability that the term's count over RECENT_WINDOWS
consecutive windows (ten minutes at the default one-minute window) reaches
``target_count`` within the next ``horizon_windows``. A term that trended within
the horizon is not warned again: the question is about a new rise. The weights,
the decision threshold and the figures behind them are fitted by
benchmarks/early_warning.py on real tweet timestamps (time-ordered: tuned on the
past, scored on a held-back month) and shipped in early_warning.json: a dot
product per window, nothing to load at run time but that file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from streams.trends.detect import expected_count

WEIGHTS_FILE = Path(__file__).with_name("early_warning.json")
FEATURES = ("count", "last_10", "baseline", "fast", "expected", "growth", "seen", "hashtag")


@dataclass(frozen=True)
class Warning:
    weights: tuple[float, ...]
    intercept: float
    threshold: float  # probability at or above which a window warns
    target_count: int  # mentions over SPAN windows that make a term trend
    horizon_windows: int  # how far ahead the question looks
    window_s: int  # the window size it was fitted at


@cache
def load(path: Path = WEIGHTS_FILE) -> Warning:
    saved = json.loads(path.read_text(encoding="utf-8"))
    weights = tuple(float(saved["weights"][name]) for name in FEATURES)
    return Warning(weights, float(saved["intercept"]), float(saved["threshold"]), int(saved["target_count"]),
                   int(saved["horizon_windows"]), int(saved["window_s"]))  # fmt: skip


def features(model: dict[str, Any], count: int, growth: float, hashtag: bool) -> list[float]:
    """The features of a closed window, from the detector state after it observed the window.
    Counts enter as log1p: a burst's size spans three orders of magnitude."""
    return [
        math.log1p(count),
        math.log1p(sum(model.get("recent", ()))),
        math.log1p(model["mean"]),
        math.log1p(model.get("fast", 0.0)),
        math.log1p(expected_count(model)),
        math.log1p(growth),
        math.log1p(model.get("seen", 0)),
        1.0 if hashtag else 0.0,
    ]


def quiet(model: dict[str, Any], warning: Warning) -> bool:
    """Whether the term has not trended within the last horizon: the question is about a new rise.
    Records the window when the term's last RECENT_WINDOWS windows hold the target count."""
    if sum(model.get("recent", ())) >= warning.target_count:
        model["trended_at"] = model["windows"]
    last = model.get("trended_at")
    return last is None or model["windows"] - last > warning.horizon_windows


def probability(warning: Warning, values: list[float]) -> float:
    z = warning.intercept + sum(w * v for w, v in zip(warning.weights, values, strict=True))
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def predict(
    warning: Warning, model: dict[str, Any], count: int, growth: float, hashtag: bool, threshold: float | None = None
) -> dict[str, Any]:
    """What a published window carries: the probability, and whether it warns (at ``threshold``,
    or the fitted one)."""
    p = probability(warning, features(model, count, growth, hashtag))
    rising = quiet(model, warning)
    return {
        "probability": round(p, 4),
        "warning": rising and p >= (warning.threshold if threshold is None else threshold),
        "trending_recently": not rising,
        "target_count": warning.target_count,
        "within_s": warning.horizon_windows * warning.window_s,
    }
