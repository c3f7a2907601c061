"""Will this term trend? An early-warning classifier against the spike detector, on real timestamps.

    pip install -e '.[train]'
    python benchmarks/early_warning.py [--threshold 10] [--window-s 600]

The same real series as benchmarks/forecast.py (SemEval-2017 pool, July to
September 2015, the 300 most mentioned terms), in 10-minute windows. A term
*trends* when a window holds ``--threshold`` mentions or more. At every window a
term fills at least twice while it has not trended in the last hour (a window
the agent publishes, before any trend), the question is: will it trend within
the next hour (6 windows)? Features use the past only: the last three counts,
the exponentially weighted baseline, the growth over it, TSB's expected count,
how many of the last six windows held the term, its mentions so far, and
whether it is a hashtag. A logistic regression (scikit-learn, class-balanced) is
trained on July and August and scored on September (held back); the spike
detector alone (streams.trends.detect, an alert in that window) is the baseline.
Printed: precision, recall, and the lead time (minutes from the warning to the
first trending window) of each, at the classifier's default threshold of 0.5.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from forecast import SPLIT, START, mentions, series  # noqa: E402

from streams.trends import detect  # noqa: E402

AHEAD = 6  # windows: the next hour at 10 minutes


def examples(
    y: np.ndarray, hashtag: bool, threshold: int, step_s: int
) -> list[tuple[int, list[float], int, int, bool]]:
    """(window, features, label, windows until it trends, spike alert) per candidate window."""
    size, probability = detect.tsb_smoothing(step_s)
    settings = detect.DetectorSettings(tsb_size=size, tsb_probability=probability)
    model = detect.new_model()
    out = []
    previous = None
    seen = 0.0
    for t in np.flatnonzero(y):
        if previous is not None and t - previous > 1:
            detect.skip_empty(model, int(t - previous - 1), settings)
        baseline = model["mean"]
        alerted = detect.observe(model, int(y[t]), settings)
        previous = t
        recent = y[max(0, t - AHEAD) : t + 1]
        seen += y[t]
        if y[t] < 2 or recent.max() >= threshold or t + AHEAD >= len(y):
            continue
        future = y[t + 1 : t + 1 + AHEAD]
        hits = np.flatnonzero(future >= threshold)
        features = [
            float(y[t]), float(y[t - 1]), float(y[t - 2]), baseline, y[t] / max(baseline, 1.0),
            detect.expected_count(model), float((recent > 0).sum()), float(np.log1p(seen)), float(hashtag),
        ]  # fmt: skip
        out.append((int(t), features, int(len(hits) > 0), int(hits[0]) + 1 if len(hits) else -1, alerted))
    return out


def scores(predicted: np.ndarray, labels: np.ndarray, lead: np.ndarray, step_s: int) -> str:
    hits = predicted & (labels == 1)
    precision = hits.sum() / max(predicted.sum(), 1)
    recall = hits.sum() / max((labels == 1).sum(), 1)
    minutes = lead[hits] * step_s / 60
    median = f"{np.median(minutes):.0f} min" if len(minutes) else "-"
    return (
        f"precision {precision:.2f}, recall {recall:.2f} ({hits.sum()} of {(labels == 1).sum()}), median lead {median}"
    )


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=int, default=10, help="mentions in a window that make a term trend")
    parser.add_argument("--window-s", type=int, default=600)
    args = parser.parse_args()
    split = int((SPLIT - START).total_seconds() // args.window_s)
    rows = []
    for term, y in series(mentions(), args.window_s, 20, 300).items():
        rows += [
            (t < split, *rest) for t, *rest in examples(y, term.startswith("hashtag:"), args.threshold, args.window_s)
        ]
    tune = [r for r in rows if r[0]]
    test = [r for r in rows if not r[0]]
    x_tune, y_tune = np.array([r[1] for r in tune]), np.array([r[2] for r in tune])
    x_test, y_test = np.array([r[1] for r in test]), np.array([r[2] for r in test])
    lead = np.array([r[3] for r in test])
    spike = np.array([r[4] for r in test], dtype=bool)
    classifier = LogisticRegression(class_weight="balanced", max_iter=2000).fit(np.log1p(x_tune), y_tune)
    warned = classifier.predict_proba(np.log1p(x_test))[:, 1] >= 0.5
    print(f"{len(tune)} tune and {len(test)} held-back candidate windows; {y_test.sum()} held-back ones trend "
          f"within the hour (>= {args.threshold} mentions in a {args.window_s // 60}-minute window)")  # fmt: skip
    print(f"early warning (p >= 0.5): {scores(warned, y_test, lead, args.window_s)}")
    print(f"spike detector alone:     {scores(spike, y_test, lead, args.window_s)}")
    print(f"either:                   {scores(warned | spike, y_test, lead, args.window_s)}")


if __name__ == "__main__":
    main()
