"""Event-time windows of one term, kept as panes and closed by the watermark.

Tumbling windows (``window_ms``) and hopping windows (``hop_size_ms`` every
``hop_ms``) are both unions of panes of ``pane_ms`` = gcd of the three sizes, so
one mention updates one pane, whatever the number of overlapping windows.
A window [start, end) is final once the watermark passes ``end + grace_ms``;
then it is published once and never changes. A mention whose pane is already
final is late: it is counted by a metric and left out of the windows.

The state of a term is a ``TermState`` (streams.trends.state: a Faust table
value, JSON on the changelog); these functions are pure, so the tests check
them without Kafka.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from streams.records import SCHEMA_VERSION, iso_utc
from streams.trends import detect, warning
from streams.trends.policy import DEFAULT_POLICY, AlertPolicy, is_common
from streams.trends.state import SENTIMENTS, Mention, MentionOutcome, Pane, TermState

MAX_USERS_PER_PANE = 500  # unique users are exact up to this many per pane
SAMPLES_PER_PANE = 3
HISTORY_WINDOWS = 60  # closed tumbling windows kept for queries
AUTHORS_KEPT = 64  # a term's last authors, to tell the share of a window's authors new to it
CONTEXT_ALPHA = 0.02  # weight of one mention in the term's usual tone: about its last 50 mentions

# A pane: [count, negative, neutral, positive, toxic, [users], [sample post ids], capped]
COUNT, NEG, NEU, POS, TOXIC, USERS, SAMPLES, CAPPED = range(8)


@dataclass(frozen=True)
class WindowSpec:
    window_ms: int = 60_000
    hop_size_ms: int = 600_000  # 0 = no hopping windows
    hop_ms: int = 60_000
    grace_ms: int = 10_000

    @property
    def pane_ms(self) -> int:
        return math.gcd(self.window_ms, self.hop_size_ms, self.hop_ms) if self.hop_size_ms else self.window_ms

    def boundary(self, watermark_ms: int) -> int:
        """End of the last final pane: windows ending at or before it are closed."""
        return ((watermark_ms - self.grace_ms) // self.pane_ms) * self.pane_ms

    def pane_of(self, ts_ms: int) -> int:
        return (ts_ms // self.pane_ms) * self.pane_ms

    def window_ends(self, pane_start: int) -> list[tuple[str, int]]:
        """(window type, end) of every window containing the pane."""
        ends = [("tumbling", (pane_start // self.window_ms + 1) * self.window_ms)]
        if self.hop_size_ms:
            first = (pane_start // self.hop_ms + 1) * self.hop_ms
            last = ((pane_start + self.hop_size_ms) // self.hop_ms) * self.hop_ms
            ends += [("hopping", end) for end in range(first, last + 1, self.hop_ms)]
        return ends

    def size_ms(self, window_type: str) -> int:
        return self.window_ms if window_type == "tumbling" else self.hop_size_ms


def is_late(state: TermState, pane_start: int, spec: WindowSpec, watermark_ms: int | None) -> bool:
    if state["closed"] is not None and pane_start < state["closed"]:
        return True
    return watermark_ms is not None and pane_start < spec.boundary(watermark_ms)


def add(state: TermState, mention: Mention, spec: WindowSpec, watermark_ms: int | None) -> MentionOutcome:
    """Add one mention: "added", "late", or "duplicate" (already applied from that
    source offset: a re-sent batch after a restart is not counted twice).
    """
    post_id, ts_ms, user, sentiment, toxic, source_partition, source_offset = mention
    applied = state["applied"].get(str(source_partition))
    if applied is not None and source_offset <= applied:
        return "duplicate"
    state["applied"][str(source_partition)] = source_offset
    pane_start = spec.pane_of(ts_ms)
    if is_late(state, pane_start, spec, watermark_ms):
        return "late"
    pane = state["panes"].setdefault(str(pane_start), [0, 0, 0, 0, 0, [], [], False])
    pane[COUNT] += 1
    pane[NEG + sentiment] += 1
    pane[TOXIC] += 1 if toxic else 0
    if user not in pane[USERS]:
        if len(pane[USERS]) < MAX_USERS_PER_PANE:
            pane[USERS].append(user)
        else:
            pane[CAPPED] = True
    if len(pane[SAMPLES]) < SAMPLES_PER_PANE:
        pane[SAMPLES].append(post_id)
    return "added"


def aggregate(panes: list[Pane]) -> dict[str, Any]:
    count = sum(p[COUNT] for p in panes)
    users: set[str] = set()
    for pane in panes:
        users.update(pane[USERS])
    return {
        "count": count,
        "users": sorted(users),
        "unique_users": len(users),
        "unique_users_exact": not any(p[CAPPED] for p in panes),
        "sentiment": {label: round(sum(p[NEG + i] for p in panes) / count, 4) for i, label in enumerate(SENTIMENTS)},
        "toxicity_rate": round(sum(p[TOXIC] for p in panes) / count, 4),
        "samples": [post for p in panes for post in p[SAMPLES]],
    }


@dataclass
class Closed:
    """What closing a term's windows produced."""

    windows: list[dict[str, Any]]  # every closed window with a count (not yet filtered by support)
    alerts: list[dict[str, Any]]  # alerts opened by closed tumbling windows


def close(
    state: TermState,
    watermark_ms: int,
    spec: WindowSpec,
    detector: detect.DetectorSettings,
    warm: bool,
    policy: AlertPolicy = DEFAULT_POLICY,
) -> Closed:
    """Close every window of the term that ends at or before the watermark's boundary.

    ``warm``: the stream has run long enough that a term seen for the first time
    is new (baseline 0), not merely new to this worker (baseline = first count).
    ``policy``: which of the detectors' alerts have the evidence to be candidates
    (the budget is applied over all the terms a watermark closes, by the agent).
    """
    boundary = spec.boundary(watermark_ms)
    panes = {int(start): pane for start, pane in state["panes"].items()}
    if not panes or (state["closed"] is not None and boundary <= state["closed"]):
        return Closed([], [])
    ends: set[tuple[str, int]] = set()
    for start in panes:
        ends.update(e for e in spec.window_ends(start) if e[1] <= boundary)
    if state["closed"] is not None:
        ends = {e for e in ends if e[1] > state["closed"]}
    result = Closed([], [])
    for window_type, end in sorted(ends, key=lambda e: (e[1], e[0] != "tumbling")):
        size = spec.size_ms(window_type)
        members = [pane for start, pane in panes.items() if end - size <= start < end]
        if not members:
            continue
        window = {"type": window_type, "start": end - size, "end": end, "size_s": size / 1000, **aggregate(members)}
        if window_type == "tumbling":
            result.alerts += _observe(state, window, spec, detector, warm, policy)
        result.windows.append(window)
    state["panes"] = {
        str(start): pane for start, pane in panes.items() if max(e for _, e in spec.window_ends(start)) > boundary
    }
    state["closed"] = boundary
    return result


def _observe(
    state: TermState,
    window: dict[str, Any],
    spec: WindowSpec,
    s: detect.DetectorSettings,
    warm: bool,
    policy: AlertPolicy,
) -> list[dict[str, Any]]:
    """Feed a closed tumbling window to the term's detectors; the alerts it opens: a spike or an
    early warning, and for a watched entity a sentiment shift."""
    count = window["count"]
    model = state["model"]
    common = is_common(state["kind"], state["term"], policy)
    if model is None:
        # A common word is never new: its first window is its level, not a rise from 0.
        model = state["model"] = detect.new_model(None if warm and not common else count)
    elif state["model_end"] is not None:
        detect.skip_empty(model, (window["start"] - state["model_end"]) // spec.window_ms, s)
    baseline = {"mean": round(model["mean"], 3), "std": round(math.sqrt(max(model["var"], 0.0)), 3)}
    z, growth = detect.score(model, count), detect.growth(model, count)
    past = (model.get("authors", []), model.get("negative"), model.get("toxic"))  # before the window is learnt
    shifted = state["kind"] == "entity" and detect.observe_tone(model, window, s)
    shifted = shifted and window["unique_users"] >= policy.min_users
    learn_context(model, window, slowly=model.get("tone_alert") is not None)
    opened = detect.observe(model, count, s) and policy.spike_has_evidence(window, growth, common)
    state["model_end"] = window["end"]
    window["forecast"] = detect.forecast(model, s)
    window["forecast_interval"] = detect.forecast_interval(model, s)
    warns = _predict(state, window, spec, growth, s, policy, common)
    history = state["history"]
    history.append([window["start"], count])
    del history[:-HISTORY_WINDOWS]
    types = ["spike" if opened else "early_warning"] if opened or warns else []
    types += ["sentiment_shift"] if shifted else []
    return [_alert(alert_type, state, window, baseline, z, growth, past) for alert_type in types]


def _alert(
    alert_type: str,
    state: TermState,
    window: dict[str, Any],
    baseline: dict[str, float],
    z: float,
    growth: float,
    past: tuple[list[str], float | None, float | None],
) -> dict[str, Any]:
    count = window["count"]
    score = state["model"]["tone_z"] if alert_type == "sentiment_shift" and state["model"] else z
    return {
        "type": alert_type,
        "kind": state["kind"],
        "window": {k: window[k] for k in ("start", "end", "size_s")},
        "count": count,
        "baseline": baseline,
        "score": round(score, 3),
        "growth": round(growth, 3),
        "severity": detect.severity(growth),
        "forecast": window["forecast"],
        "forecast_interval": window["forecast_interval"],
        "prediction": window.get("prediction"),
        "sample_post_ids": window["samples"][:5],
        "explanation": explanation(past, window),
    }


def explanation(past: tuple[list[str], float | None, float | None], window: dict[str, Any]) -> dict[str, Any]:
    """What drives a window, against the term's own past (its last authors, its usual negative share
    and toxicity, before the window was learnt): who posts it, and how its tone differs."""
    authors, negative, toxic = past
    known = set(authors)
    users = window["users"]
    return {
        "unique_users": window["unique_users"],
        "new_authors_share": round(sum(1 for u in users if u not in known) / len(users), 3) if users else 0.0,
        "negative_share": window["sentiment"]["negative"],
        "negative_baseline": None if negative is None else round(negative, 3),
        "toxicity_rate": window["toxicity_rate"],
        "toxicity_baseline": None if toxic is None else round(toxic, 3),
    }


def learn_context(model: detect.Model, window: dict[str, Any], slowly: bool = False) -> None:
    """The term's usual tone (mention-weighted moving averages) and its last authors; ``slowly``
    while a sentiment shift is open (a crisis must not become the usual at once)."""
    weight = min(1.0, window["count"] * CONTEXT_ALPHA) * (detect.TONE_LEARNING if slowly else 1.0)
    for name, value in (("negative", window["sentiment"]["negative"]), ("toxic", window["toxicity_rate"])):
        model[name] = value if name not in model else model[name] + weight * (value - model[name])
    model["authors"] = [*model.get("authors", ()), *window["users"]][-AUTHORS_KEPT:]


def _predict(
    state: TermState,
    window: dict[str, Any],
    spec: WindowSpec,
    growth: float,
    s: detect.DetectorSettings,
    policy: AlertPolicy,
    common: bool,
) -> bool:
    """Attach the early warning's prediction to the window (at the window size it was fitted for);
    True when it is the first warning of the term's rise: one early-warning alert per rise. Like a
    spike alert, a term already there when the stream started is not new: it warns only after
    ``min_history`` windows."""
    rule = warning.load()
    if rule.window_s * 1000 != spec.window_ms:
        return False
    model = state["model"]
    assert model is not None
    prediction = window["prediction"] = warning.predict(
        rule, model, window["count"], growth, state["kind"] == "hashtag", policy.warning_threshold
    )
    if model.get("seeded") and model["windows"] < s.min_history:
        prediction["warning"] = False
    elif prediction["warning"]:
        prediction["warning"] = policy.warning_has_evidence(window, prediction["probability"], common)
    if not prediction["warning"]:
        return False
    last = model.get("warned_at")
    model["warned_at"] = model["windows"]
    return last is None or model["windows"] - last > rule.horizon_windows


def share_of_voice(closed: list[tuple[TermState, Closed]]) -> None:
    """Each watched entity's share of the watched entities' mentions in the same window (they are
    all closed together: routed to one partition, due at the same watermark)."""
    entity_windows = [w for state, result in closed if state["kind"] == "entity" for w in result.windows]
    totals: dict[tuple[str, int], int] = {}
    for window in entity_windows:
        slot = (window["type"], window["start"])
        totals[slot] = totals.get(slot, 0) + window["count"]
    for window in entity_windows:
        window["share_of_voice"] = round(window["count"] / totals[(window["type"], window["start"])], 4)


def next_due(state: TermState, spec: WindowSpec) -> int | None:
    """The watermark at which this term next has a window to close."""
    if not state["panes"]:
        return None
    after = state["closed"] if state["closed"] is not None else -(2**62)
    ends = [end for start in state["panes"] for _, end in spec.window_ends(int(start)) if end > after]
    return min(ends) + spec.grace_ms


def window_record(kind: str, term: str, label: str | None, window: dict[str, Any]) -> dict[str, Any]:
    """A final window as published to trends.windows."""
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "term": term,
        "kind": kind,
        "label": label,
        "window": {
            "type": window["type"],
            "start": iso_utc(window["start"]),
            "end": iso_utc(window["end"]),
            "start_ms": window["start"],
            "end_ms": window["end"],
            "size_s": window["size_s"],
        },
        "count": window["count"],
        "unique_users": window["unique_users"],
        "unique_users_exact": window["unique_users_exact"],
        "sentiment": window["sentiment"],
        "toxicity_rate": window["toxicity_rate"],
        "final": True,
    }
    if "forecast" in window:
        record["forecast"] = window["forecast"]
        record["forecast_interval"] = window["forecast_interval"]
    if window.get("prediction") is not None:
        record["prediction"] = window["prediction"]
    if "share_of_voice" in window:
        record["share_of_voice"] = window["share_of_voice"]
    return record


def alert_record(kind: str, term: str, label: str | None, alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as published to trends.alerts."""
    window = alert["window"]
    record = {
        "schema_version": SCHEMA_VERSION,
        "type": alert["type"],
        "term": term,
        "kind": kind,
        "label": label,
        "window": {
            "start": iso_utc(window["start"]),
            "end": iso_utc(window["end"]),
            "start_ms": window["start"],
            "end_ms": window["end"],
            "size_s": window["size_s"],
        },
        **{k: alert[k] for k in ("count", "baseline", "score", "growth", "forecast", "severity", "sample_post_ids")},
        "forecast_interval": alert["forecast_interval"],
    }
    if alert.get("prediction") is not None:
        record["prediction"] = alert["prediction"]
    if alert.get("explanation") is not None:
        record["explanation"] = alert["explanation"]
    return record
