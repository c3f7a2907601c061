"""Next-window forecasts of term counts on real tweet timestamps, against simple baselines.

    pip install -e '.[bench]'
    python benchmarks/forecast.py [--min-mentions 20] [--terms 300] [--split tune|test] [--grid]

The SemEval-2017 pool's tweet ids carry their creation time. Its densest months
(July to September 2015, about 26,000 tweets) give per-term count series
(the 300 most mentioned hashtags and keywords, as the worker extracts them) at 1 minute, 10 minutes
and 1 hour. Time-ordered: July and August are for choosing models and settings
(``--split tune``); September is held back (``--split test``, the default) and
nothing is tuned on it.

Rolling origin, as the trends agent forecasts: at every window of the split in
which a term occurred at least twice (a window the agent publishes, with its forecast), each method sees only the
past and forecasts the next 1, 3 and 6 windows. Printed per granularity and
horizon: MAE, MASE (MAE over the in-sample MAE of the daily seasonal-naive
forecast on the tune months, pooled over terms, on windows where
the term occurred then or a day before) and the MAE on origins whose count is 5 or
more (the terms that matter), with the number of origins. Methods: zero, last
value, trailing mean of 10 windows, seasonal naive (the same window a day
before), the damped Holt served before, the worker's served forecast (TSB's mean
from streams.trends.detect, published as the median of a Poisson count), and statsforecast's
intermittent-demand models (Croston SBA, TSB, ADIDA, IMAPA) on the last day of
windows, and the median of a Poisson count with TSB's mean (MAE rewards the median:
for sparse terms it is 0, as the zero forecast is).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from data import semeval_pool  # noqa: E402

from streams.terms import post_terms  # noqa: E402
from streams.trends import detect  # noqa: E402

EPOCH_MS = 1288834974657
START = dt.datetime(2015, 7, 1, tzinfo=dt.UTC)
SPLIT = dt.datetime(2015, 9, 1, tzinfo=dt.UTC)
END = dt.datetime(2015, 10, 1, tzinfo=dt.UTC)
GRANULARITIES = {"1 min": 60, "10 min": 600, "1 h": 3600}
HORIZONS = (1, 3, 6)
HASHTAG = re.compile(r"(?<![\w#])#(\w{1,100})")  # as streams.records finds them in a post's text
PUBLISHED = 2  # STREAMS_TREND_MIN_COUNT: the windows the agent publishes, with their forecast
HOT = 5  # origins at or above this count: the terms that matter
Forecaster = Callable[[np.ndarray, int, int, int], np.ndarray]  # (series, origin, season, horizon) -> forecasts


def mentions() -> list[tuple[str, int]]:
    """(kind:term, epoch ms) of every hashtag and keyword in the period, each tweet once."""
    seen: set[int] = set()
    out: list[tuple[str, int]] = []
    low, high = START.timestamp() * 1000, END.timestamp() * 1000
    for tweet_id, _, text in semeval_pool():
        ms = (tweet_id >> 22) + EPOCH_MS
        if tweet_id in seen or not low <= ms < high:
            continue
        seen.add(tweet_id)
        terms = post_terms(text, list(dict.fromkeys(tag.casefold() for tag in HASHTAG.findall(text))))
        for kind in ("hashtags", "keywords"):
            out += [(f"{kind[:-1]}:{term}", ms) for term in terms.get(kind, [])]
    return out


def series(found: list[tuple[str, int]], step_s: int, min_mentions: int, top: int) -> dict[str, np.ndarray]:
    """Count series of the ``top`` most mentioned terms (with at least ``min_mentions``)."""
    counts = Counter(term for term, _ in found)
    kept = {term for term, n in counts.most_common(top) if n >= min_mentions}
    bins = int((END - START).total_seconds() // step_s)
    start_ms = START.timestamp() * 1000
    by_term: dict[str, list[int]] = defaultdict(list)
    for term, ms in found:
        if term in kept:
            by_term[term].append(int((ms - start_ms) // (step_s * 1000)))
    return {term: np.bincount(b, minlength=bins).astype(float) for term, b in by_term.items()}


def zero(y: np.ndarray, t: int, season: int, h: int) -> np.ndarray:
    return np.zeros(h)


def last(y: np.ndarray, t: int, season: int, h: int) -> np.ndarray:
    return np.full(h, y[t])


def trailing_mean(y: np.ndarray, t: int, season: int, h: int) -> np.ndarray:
    return np.full(h, y[max(0, t - 9) : t + 1].mean())


def seasonal_naive(y: np.ndarray, t: int, season: int, h: int) -> np.ndarray:
    return np.array([y[t + k - season] if t + k - season >= 0 else 0.0 for k in range(1, h + 1)])


def statsforecast_model(make: Callable[[], object]) -> Forecaster:
    def forecast(y: np.ndarray, t: int, season: int, h: int) -> np.ndarray:
        history = y[max(0, t + 1 - season) : t + 1]
        return np.asarray(make().forecast(y=history, h=h)["mean"], dtype=float)  # type: ignore[attr-defined]

    return forecast


def served_forecasts(y: np.ndarray, origins: np.ndarray, h: int, step_s: int) -> dict[int, np.ndarray]:
    """The worker's forecast (streams.trends.detect), fed as the trends agent feeds it: the
    gap of empty windows before each occurrence (a long gap resets the model), then the count."""
    size, probability = detect.tsb_smoothing(step_s)
    settings = detect.DetectorSettings(horizon=h, tsb_size=size, tsb_probability=probability)
    return _replay(y, origins, lambda model: np.array(detect.forecast(model, settings)), settings)


def holt_forecasts(y: np.ndarray, origins: np.ndarray, h: int) -> dict[int, np.ndarray]:
    """The damped Holt forecast served before 2.x (level 0.3, trend 0.05, damping 0.8, reset
    after 200 empty windows), over the same feed."""
    settings = detect.DetectorSettings(horizon=h)
    state = {"level": 0.0, "trend": 0.0}

    def update(model: dict[str, object], count: float) -> None:
        level, trend = state["level"], state["trend"]
        new_level = 0.3 * count + 0.7 * (level + 0.8 * trend)
        state["trend"] = 0.05 * (new_level - level) + 0.95 * 0.8 * trend
        state["level"] = new_level

    def forecast(model: dict[str, object]) -> np.ndarray:
        steps = np.cumsum([0.8**k for k in range(1, h + 1)])
        return np.maximum(0.0, state["level"] + steps * state["trend"])

    return _replay(y, origins, forecast, settings, update, state)


def _replay(y, origins, forecast, settings, update=None, state=None):  # type: ignore[no-untyped-def]
    model = detect.new_model()
    out: dict[int, np.ndarray] = {}
    wanted = set(origins.tolist())
    previous = None
    for t in np.flatnonzero(y[: int(origins.max()) + 1] if len(origins) else []):
        gap = int(t - previous - 1) if previous is not None else 0
        if update is None:
            if gap:
                detect.skip_empty(model, gap, settings)
            detect.observe(model, int(y[t]), settings)
        else:
            if gap >= detect.MAX_ZERO_STEPS:
                state.update(level=0.0, trend=0.0)
            for _ in range(min(gap, detect.MAX_ZERO_STEPS)):
                update(model, 0.0)
            update(model, float(y[t]))
        previous = t
        if int(t) in wanted:
            out[int(t)] = forecast(model)
    return out


# TSB's smoothing (size, probability) per window size, chosen on the tune months (--split tune --grid):
# the lowest MAE at horizon 1. The worker serves the same (streams.trends.detect.tsb_smoothing).
CHOSEN_TSB = {step: detect.tsb_smoothing(step) for step in (60, 600, 3600)}


def methods(grid: bool, step_s: int) -> dict[str, Forecaster]:
    from statsforecast.models import ADIDA, IMAPA, TSB, CrostonSBA

    tsb = {}
    if grid:  # for choosing TSB's smoothing on the tune months
        for a_d in (0.05, 0.1, 0.2, 0.4):
            for a_p in (0.02, 0.05, 0.1, 0.2, 0.4):
                tsb[f"TSB ({a_d}, {a_p})"] = statsforecast_model(lambda a_d=a_d, a_p=a_p: TSB(alpha_d=a_d, alpha_p=a_p))
    a_d, a_p = CHOSEN_TSB[step_s]
    chosen = statsforecast_model(lambda: TSB(alpha_d=a_d, alpha_p=a_p))
    return {
        f"TSB ({a_d}, {a_p}), chosen on tune": chosen,
        f"TSB ({a_d}, {a_p}) Poisson median": lambda y, t, season, h: poisson_median(chosen(y, t, season, h)),
        **tsb,
        "zero": zero,
        "last value": last,
        "trailing mean (10)": trailing_mean,
        "seasonal naive (day)": seasonal_naive,
        "Croston SBA": statsforecast_model(CrostonSBA),
        "TSB (0.1, 0.1)": statsforecast_model(lambda: TSB(alpha_d=0.1, alpha_p=0.1)),
        "ADIDA": statsforecast_model(ADIDA),
        "IMAPA": statsforecast_model(IMAPA),
    }


def mase_scale(all_series: dict[str, np.ndarray], season: int, split_bin: int) -> float:
    """The seasonal-naive forecast's in-sample MAE on the tune months, pooled over the terms
    and over the windows where the term occurred then or a day before (per-term scales are
    0 for most terms: a day-ago window of a sparse term is nearly always as empty)."""
    errors = []
    for y in all_series.values():
        past = y[:split_bin]
        now, before = past[season:], past[:-season]
        active = (now > 0) | (before > 0)
        errors.append(np.abs(now - before)[active])
    return float(np.concatenate(errors).mean())


def poisson_median(mean: np.ndarray) -> np.ndarray:
    """The median of a Poisson count with this mean: the forecast that minimises the
    expected absolute error when the mean is right (0 below a mean of ln 2)."""
    out = np.zeros_like(mean)
    for i, lam in enumerate(mean):
        k, p = 0, np.exp(-lam)
        cumulative = p
        while cumulative < 0.5:
            k += 1
            p *= lam / k
            cumulative += p
        out[i] = k
    return out


def evaluate(
    all_series: dict[str, np.ndarray], step_s: int, split: str, grid: bool = False
) -> dict[str, dict[int, dict[str, float]]]:
    season = 86_400 // step_s
    split_bin = int((SPLIT - START).total_seconds() // step_s)
    results: dict[str, dict[int, list[tuple[float, float, bool]]]] = defaultdict(lambda: defaultdict(list))
    scale = mase_scale(all_series, season, split_bin)
    for y in all_series.values():
        lo, hi = (season, split_bin) if split == "tune" else (split_bin, len(y))
        origins = np.array([t for t in range(lo, hi - max(HORIZONS)) if y[t] >= PUBLISHED])
        if not len(origins):
            continue
        replayed = {
            "served: TSB Poisson median (streams.trends.detect)": served_forecasts(y, origins, max(HORIZONS), step_s),
            "damped Holt (served before)": holt_forecasts(y, origins, max(HORIZONS)),
        }
        for name, forecaster in [*((n, None) for n in replayed), *methods(grid, step_s).items()]:
            for t in origins:
                f = replayed[name][int(t)] if forecaster is None else forecaster(y, int(t), season, max(HORIZONS))
                for h in HORIZONS:
                    error = abs(float(f[h - 1]) - float(y[t + h]))
                    results[name][h].append((error, error / scale, y[t] >= HOT))
    summary: dict[str, dict[int, dict[str, float]]] = {}
    for name, by_h in results.items():
        summary[name] = {}
        for h, rows in by_h.items():
            errors = np.array(rows)
            hot = errors[errors[:, 2] == 1]
            summary[name][h] = {
                "mae": float(errors[:, 0].mean()),
                "mase": float(errors[:, 1].mean()),
                "mae_hot": float(hot[:, 0].mean()) if len(hot) else float("nan"),
                "origins": len(errors),
                "hot": len(hot),
            }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-mentions", type=int, default=20, help="terms with at least this many mentions")
    parser.add_argument("--terms", type=int, default=300, help="the most mentioned terms, at most this many")
    parser.add_argument("--split", choices=["tune", "test"], default="test")
    parser.add_argument("--grid", action="store_true", help="also TSB over a grid of smoothing constants")
    args = parser.parse_args()
    found = mentions()
    print(f"{len(found)} mentions from {START.date()} to {END.date()}; split: {args.split}")
    for label, step in GRANULARITIES.items():
        all_series = series(found, step, args.min_mentions, args.terms)
        summary = evaluate(all_series, step, args.split, args.grid)
        origins = next(iter(summary.values()))[1]
        print(
            f"\n{label} windows: {len(all_series)} terms, {origins['origins']} origins ({origins['hot']} with >= {HOT})"
        )
        print(f"{'method':<22}" + "".join(f" {'h=' + str(h) + ' MAE':>9} {'MASE':>6} {'hot':>6}" for h in HORIZONS))
        for name, by_h in summary.items():
            cells = "".join(
                f" {by_h[h]['mae']:>9.3f} {by_h[h]['mase']:>6.2f} {by_h[h]['mae_hot']:>6.2f}" for h in HORIZONS
            )
            print(f"{name:<22}{cells}")


if __name__ == "__main__":
    main()
