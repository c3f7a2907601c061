"""Query: what the web views ask of the trends stage (``TrendQueries`` in streams.runtime).

``LatestWindows`` remembers each term's latest closed tumbling window on this
worker, for the top-K view; ``term`` reads one term's state from the table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.records import iso_utc
from streams.runtime import TableView
from streams.trends import detect
from streams.trends.state import TermState, term_key
from streams.trends.windows import COUNT


class LatestWindows:
    def __init__(self) -> None:
        self.latest: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # kind -> term -> window

    def remember(self, state: TermState, window: dict[str, Any]) -> None:
        model = state["model"] or {}
        self.latest[state["kind"]][state["term"]] = {
            "term": state["term"],
            "label": state["label"],
            "window_end": window["end"],
            "count": window["count"],
            "unique_users": window["unique_users"],
            "forecast": window.get("forecast"),
            "baseline_mean": round(model.get("mean", 0.0), 3),
            "alert_open": model.get("alert") is not None,
        }

    def forget(self, kind: str, term: str) -> None:
        self.latest[kind].pop(term, None)

    def top(self, kind: str, k: int) -> list[dict[str, Any]]:
        """This worker's terms of the latest closed window, by count."""
        entries = list(self.latest.get(kind, {}).values())
        if not entries:
            return []
        newest = max(e["window_end"] for e in entries)
        current = [e for e in entries if e["window_end"] == newest]
        return sorted(current, key=lambda e: (-e["count"], e["term"]))[:k]


def term_view(state: TermState, detector: detect.DetectorSettings) -> dict[str, Any]:
    """One term's open panes, recent closed windows, baseline and forecast."""
    model = state["model"] or {}
    return {
        "term": state["term"],
        "kind": state["kind"],
        "label": state["label"],
        "windows": [{"start_ms": start, "count": count} for start, count in state["history"]],
        "open_panes": {start: pane[COUNT] for start, pane in sorted(state["panes"].items())},
        "baseline": {"mean": round(model.get("mean", 0.0), 3), "var": round(model.get("var", 0.0), 3)},
        "alert_open": model.get("alert") is not None,
        "forecast": detect.forecast(model, detector) if model else None,
    }


@dataclass
class TrendClock:
    """How this worker's trends keep up with event time: the watermark of each trends partition
    and how many mentions came in time or late. A stream dated before the watermark (an old
    replay on a broker that has run newer posts) is enriched but adds nothing to any window,
    and /health and /trends/top say so instead of staying silently empty."""

    watermarks: Callable[[], dict[int, int | None]]  # trends partition -> its watermark (ms), now
    added: int = 0
    late: int = 0

    def count(self, outcomes: Mapping[str, int]) -> None:
        self.added += outcomes.get("added", 0)
        self.late += outcomes.get("late", 0)

    def describe(self) -> dict[str, Any]:
        marks = [ms for ms in self.watermarks().values() if ms is not None]
        return {
            "watermark": iso_utc(min(marks)) if marks else None,
            "mentions_added": self.added,
            "mentions_late": self.late,
        }

    def note(self) -> str | None:
        """A line for an empty answer when most mentions came late; None otherwise."""
        if self.late == 0 or self.late < self.added:
            return None
        watermark = self.describe()["watermark"]
        return (
            f"{self.late} mention(s) came after their windows had closed (watermark {watermark}): posts dated "
            "before it are enriched but not counted in trends; send posts dated now (social-streams replay "
            "dates synthetic posts so)"
        )


class TrendsQuery:
    """The trends stage as the views see it: top-K of this worker, one term by key."""

    def __init__(
        self,
        table: TableView,
        latest: LatestWindows,
        detector: detect.DetectorSettings,
        by_kind: Mapping[str, TableView] | None = None,
        clock: TrendClock | None = None,
    ) -> None:
        self.clock = clock or TrendClock(dict)
        self.table = table  # the text terms' (and, for the views, the partitioning of every term)
        self.latest = latest
        self.detector = detector
        self.by_kind = by_kind or {}  # kinds held in a table of their own: visual

    def top(self, kind: str, k: int) -> list[dict[str, Any]]:
        return self.latest.top(kind, k)

    def health(self) -> dict[str, Any]:
        return self.clock.describe()

    def empty_note(self) -> str | None:
        return self.clock.note()

    def term(self, kind: str, term: str) -> dict[str, Any] | None:
        state: TermState | None = self.by_kind.get(kind, self.table).get(term_key(kind, term))
        return None if state is None else term_view(state, self.detector)
