"""Will this term trend within the hour? The early warning against the spike detector, on real timestamps.

    pip install -e '.[train]'
    python benchmarks/early_warning.py [--target-count 10] [--precision 0.5] [--save]

The same real series as benchmarks/forecast.py (SemEval-2017 pool, July to
September 2015, the 300 most mentioned terms), in the worker's default one-minute
windows. A term *trends* when ten consecutive windows (a ten-minute hopping
window) hold ``--target-count`` mentions or more. The question, at every window
the agent publishes (two mentions or more) of a term that has not trended in the
last hour: will it trend within the next hour? Features are what the worker's
detector state holds (streams.trends.warning), from the past only.

Time-ordered, no leakage from the future: a logistic regression (scikit-learn,
unweighted, so that its probabilities mean what they say) is fitted on July; the
decision threshold is the lowest whose precision on August reaches ``--precision``
(the best F1 where none does); the model is refitted on July and August with that
threshold and scored on September, held back and never tuned on. The spike
detector alone (an alert opened at such a window) is the baseline. Printed for
September: per warning window, precision and recall; per trending episode (a
term that trends after an hour without), the share warned before it trends and
the lead time (minutes from the first warning to the first trending window).
``--save`` writes the served weights and these figures to
streams/trends/early_warning.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from forecast import SPLIT, START, mentions, series  # noqa: E402

from streams.trends import detect, warning  # noqa: E402

AUGUST = SPLIT.replace(month=8)
PUBLISHED = 2  # STREAMS_TREND_MIN_COUNT


@dataclass
class Candidate:
    term: str
    t: int  # window index
    features: list[float]
    label: bool  # trends within the horizon
    lead: int  # windows until it first trends, -1 if it does not
    alerted: bool  # the spike detector opened an alert at this window


def trending_windows(y: np.ndarray, target: int) -> np.ndarray:
    """Whether the RECENT_WINDOWS windows ending at each index hold the target count."""
    sums = np.convolve(y, np.ones(detect.RECENT_WINDOWS, dtype=int))[: len(y)]
    return sums >= target


def replay(term: str, y: np.ndarray, rule: warning.Warning, step_s: int) -> list[Candidate]:
    """Run the worker's detector over a term's windows; a candidate at every published window of a quiet term."""
    size, probability = detect.tsb_smoothing(step_s)
    settings = detect.DetectorSettings(tsb_size=size, tsb_probability=probability)
    hot = trending_windows(y, rule.target_count)
    model, previous, out = detect.new_model(), None, []
    for t in np.flatnonzero(y):
        if previous is not None and t - previous > 1:
            detect.skip_empty(model, int(t - previous - 1), settings)
        previous = t
        growth = detect.growth(model, int(y[t]))
        alerted = detect.observe(model, int(y[t]), settings)
        values = warning.features(model, int(y[t]), growth, term.startswith("hashtag:"))
        rising = warning.quiet(model, rule)
        if y[t] < PUBLISHED or not rising or t + rule.horizon_windows >= len(y):
            continue
        ahead = np.flatnonzero(hot[t + 1 : t + 1 + rule.horizon_windows])
        lead = int(ahead[0]) + 1 if len(ahead) else -1
        out.append(Candidate(term, int(t), values, lead > 0, lead, alerted))
    return out


def episodes_in(
    all_series: dict[str, np.ndarray], rule: warning.Warning, start: int, end: int
) -> list[tuple[str, int]]:
    """(term, window) where a term trends after a horizon without trending, in [start, end)."""
    out = []
    for term, y in all_series.items():
        hot = np.flatnonzero(trending_windows(y, rule.target_count))
        previous = -(10**9)
        for t in hot:
            if t - previous > rule.horizon_windows and start <= t < end:
                out.append((term, int(t)))
            previous = t
    return out


def choose_threshold(p: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """The lowest threshold whose precision reaches the target (at least 5 warnings), else the best F1."""
    best, best_f1 = 0.5, -1.0
    for threshold in np.round(np.arange(0.01, 1.0, 0.01), 2):
        warned = p >= threshold
        hits = (warned & labels).sum()
        if warned.sum() >= 5 and hits / warned.sum() >= precision:
            return float(threshold)
        f1 = 2 * hits / max(warned.sum() + labels.sum(), 1)
        if f1 > best_f1:
            best, best_f1 = float(threshold), f1
    return best


def fit(rows: list[Candidate]):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    x, y = np.array([r.features for r in rows]), np.array([r.label for r in rows])
    return LogisticRegression(max_iter=5000).fit(x, y)


def figures(
    warned: np.ndarray, rows: list[Candidate], trend_episodes: list[tuple[str, int]], step_s: int, horizon: int
) -> dict[str, float | int | None]:
    labels = np.array([r.label for r in rows])
    hits = warned & labels
    first: dict[tuple[str, int], int] = {}
    for row, flag in zip(rows, warned, strict=True):
        if flag and row.label:
            key = (row.term, row.t + row.lead)
            first[key] = max(first.get(key, 0), row.lead)
    caught = [first[e] for e in trend_episodes if e in first]
    leads = np.array(caught) * step_s / 60
    return {
        "warnings": int(warned.sum()),
        "precision": round(float(hits.sum() / max(warned.sum(), 1)), 3),
        "recall": round(float(hits.sum() / max(labels.sum(), 1)), 3),
        "episodes": len(trend_episodes),
        "episodes_warned": len(caught),
        "median_lead_min": round(float(np.median(leads)), 1) if len(leads) else None,
    }


def line(name: str, f: dict[str, float | int | None]) -> str:
    lead = f"{f['median_lead_min']:.0f} min" if f["median_lead_min"] is not None else "-"
    return (f"{name:<28} {f['warnings']:>8} {f['precision']:>9.2f} {f['recall']:>6.2f} "
            f"{f['episodes_warned']:>4} of {f['episodes']:<4} {lead:>11}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-count", type=int, default=10, help="mentions in ten windows that make a term trend")
    parser.add_argument("--window-s", type=int, default=60)
    parser.add_argument("--horizon-min", type=int, default=60)
    parser.add_argument("--precision", type=float, default=0.5, help="precision the threshold is chosen for")
    parser.add_argument("--save", action="store_true", help="write streams/trends/early_warning.json")
    args = parser.parse_args()
    horizon = args.horizon_min * 60 // args.window_s
    rule = warning.Warning((), 0.0, 1.0, args.target_count, horizon, args.window_s)
    all_series = series(mentions(), args.window_s, 20, 300)
    rows = [c for term, y in all_series.items() for c in replay(term, y, rule, args.window_s)]
    august, september = (int((d - START).total_seconds() // args.window_s) for d in (AUGUST, SPLIT))
    july = [r for r in rows if r.t + horizon < august]  # labels that look past July stay out of its fit
    aug = [r for r in rows if august <= r.t and r.t + horizon < september]
    tune = [r for r in rows if r.t + horizon < september]
    test = [r for r in rows if r.t >= september]
    choice = fit(july)
    p_august = choice.predict_proba(np.array([r.features for r in aug]))[:, 1]
    threshold = choose_threshold(p_august, np.array([r.label for r in aug]), args.precision)
    chosen = figures(
        p_august >= threshold, aug, episodes_in(all_series, rule, august, september), args.window_s, horizon
    )
    model = fit(tune)
    p = model.predict_proba(np.array([r.features for r in test]))[:, 1]
    trend_episodes = episodes_in(all_series, rule, september, len(next(iter(all_series.values()))))
    served = figures(p >= threshold, test, trend_episodes, args.window_s, horizon)
    spike = figures(np.array([r.alerted for r in test]), test, trend_episodes, args.window_s, horizon)
    print(f"{len(tune)} tune and {len(test)} held-back candidate windows (September); "
          f"{sum(r.label for r in test)} held-back ones trend within {args.horizon_min} min "
          f"(>= {args.target_count} mentions in {detect.RECENT_WINDOWS} windows of {args.window_s} s); "
          f"threshold {threshold:.2f} chosen on August for precision >= {args.precision}")  # fmt: skip
    print(f"{'method':<28} {'warnings':>8} {'precision':>9} {'recall':>6} {'episodes warned':>12} {'median lead':>11}")
    print(line(f"early warning (p >= {threshold:.2f})", served))
    print(line("  same, July fit, on August", chosen))
    print(line("spike detector alone", spike))
    for other in (0.1, 0.2, 0.3, 0.5):
        print(
            line(f"early warning (p >= {other:.2f})", figures(p >= other, test, trend_episodes, args.window_s, horizon))
        )
    if args.save:
        saved = {
            "weights": dict(zip(warning.FEATURES, (round(float(w), 6) for w in model.coef_[0]), strict=True)),
            "intercept": round(float(model.intercept_[0]), 6),
            "threshold": threshold,
            "target_count": args.target_count,
            "horizon_windows": horizon,
            "window_s": args.window_s,
            "fitted_on": "SemEval-2017 pool, July-August 2015 (threshold: fitted on July, chosen on August)",
            "held_back": {"period": "September 2015", "early_warning": served, "spike_detector": spike},
            "threshold_choice": {"period": "August 2015, fitted on July", "early_warning": chosen},
            "command": "python benchmarks/early_warning.py --save",
        }
        warning.WEIGHTS_FILE.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {warning.WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
