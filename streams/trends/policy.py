"""Which candidate alerts are sent: evidence, common words, and a budget per hour.

The detectors (streams.trends.detect, streams.trends.warning) say when a term's
window is unusual; this module says when that is worth a person's attention.
Its thresholds were chosen for precision on time-ordered real tweets
(benchmarks/alerts.py: tuned on earlier months, scored on held-back ones):

- **Evidence.** A window alerts only with ``min_users`` distinct authors (one
  account posting ten times is not a trend), and an early warning only with
  ``warning_min_count`` mentions and a probability of ``warning_threshold``: on
  real streams most one- and two-mention windows that look like a rise are noise.
- **Common words.** A keyword among the most frequent words of tweets
  (``common_words.txt``, from the training tweets of every language the model
  reads) is never "new" to the detector, never early-warns, and spikes only at
  ``common_growth`` times its own baseline: "new", "work" and "today" are always
  there, and their ordinary ups and downs are not news.
- **Budget.** At most ``spikes_per_hour`` spikes and ``warnings_per_hour`` early
  warnings per term kind and event-time hour, per trends partition's share
  (the budget divided by the partitions, rounded up): when more qualify at once,
  the strongest are sent (spikes by score, warnings by probability) and the rest
  counted in ``streams_trend_alerts_suppressed_total``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

COMMON_WORDS_FILE = Path(__file__).with_name("common_words.txt")
HOUR_MS = 3_600_000


@cache
def common_words(path: Path = COMMON_WORDS_FILE) -> frozenset[str]:
    if not path.exists():
        return frozenset()
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def is_common(kind: str, term: str, policy: AlertPolicy | None = None) -> bool:
    """A keyword (a word, or a phrase of two) made only of common words."""
    if kind != "keyword" or (policy is not None and not policy.common_words):
        return False
    words = common_words()
    return all(word in words for word in term.split(" "))


@dataclass(frozen=True)
class AlertPolicy:
    min_users: int = 3
    warning_min_count: int = 3
    warning_threshold: float | None = 0.5  # None: the early warning's fitted threshold
    common_growth: float = 10.0
    spikes_per_hour: int = 20  # per term kind, across the cluster (0: no limit)
    warnings_per_hour: int = 10
    partitions: int = 1
    common_words: bool = True  # False: every word is news (what the detectors did before this policy)

    def spike_has_evidence(self, window: dict[str, Any], growth: float, common: bool) -> bool:
        """Whether a window the spike detector flags has the authors (and, for a common word, the rise)."""
        return window["unique_users"] >= self.min_users and (not common or growth >= self.common_growth)

    def warning_has_evidence(self, window: dict[str, Any], probability: float, common: bool) -> bool:
        """Whether a window the early warning flags has the mentions, the authors and the probability."""
        threshold = self.warning_threshold if self.warning_threshold is not None else 0.0
        return (
            not common
            and window["count"] >= self.warning_min_count
            and window["unique_users"] >= self.min_users
            and probability >= threshold
        )

    def limit(self, alert_type: str) -> int:
        total = self.warnings_per_hour if alert_type == "early_warning" else self.spikes_per_hour
        return math.ceil(total / max(self.partitions, 1)) if total > 0 else 0

    def new_budget(self) -> Budget:
        return Budget(self)


def strength(alert: dict[str, Any]) -> float:
    if alert["type"] != "early_warning":
        return float(alert["score"])
    return float((alert.get("prediction") or {}).get("probability", 0.0))


@dataclass
class Budget:
    """Alerts sent per (type, kind, event-time hour) on one trends partition."""

    policy: AlertPolicy
    sent: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    def admit(self, candidates: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(sent, suppressed): the strongest candidates first, while their hour has room."""
        sent, suppressed = [], []
        for alert in sorted(candidates, key=strength, reverse=True):
            limit = self.policy.limit(alert["type"])
            slot = (alert["type"], alert.get("kind", ""), alert["window"]["start"] // HOUR_MS)
            if limit and self.sent[slot] >= limit:
                suppressed.append(alert)
                continue
            self.sent[slot] += 1
            sent.append(alert)
        self._forget_old_hours()
        return sent, suppressed

    def _forget_old_hours(self) -> None:
        if len(self.sent) > 256:
            newest = max(hour for _, _, hour in self.sent)
            for slot in [s for s in self.sent if s[2] < newest - 2]:
                del self.sent[slot]


DEFAULT_POLICY = AlertPolicy()
# The detectors alone: every candidate sent, at the early warning's fitted threshold.
NO_POLICY = AlertPolicy(min_users=1, warning_min_count=1, warning_threshold=None, spikes_per_hour=0,
                        warnings_per_hour=0, common_words=False)  # fmt: skip
