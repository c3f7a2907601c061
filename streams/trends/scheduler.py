"""When each term of one trends partition has windows to close: a pure object, no I/O.

In the shape of bytewax's stateful batch logic: the windows stage feeds it the
terms it changed (``on_batch``) and the watermark reports it reads
(``on_watermark``); ``notify_at`` says at which watermark the next window
closes, and ``on_notify`` hands over the terms whose windows the current
watermark closes. ``stale`` names the terms silent long enough to forget, and
``snapshot`` shows what is scheduled. Time comes in as arguments, so tests
drive it with a list of events and a clock.

The watermark never moves back; before ``WARM_UP_WINDOWS`` windows have passed
since the first watermark, a term's first window seeds its baseline (the term
is new to this worker, not necessarily to the world).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from streams.trends.state import TermState, WatermarkMessage
from streams.trends.watermarks import PartitionWatermark
from streams.trends.windows import WindowSpec, next_due

WARM_UP_WINDOWS = 10
# A term with no open pane whose last window closed this many windows ago is forgotten.
FORGET_AFTER_WINDOWS = 60


@dataclass
class WindowScheduler:
    spec: WindowSpec
    sources: list[str]  # every source whose watermark counts
    idle_s: float  # a source silent this long no longer holds the watermark back
    watermark: PartitionWatermark
    current: int | None = None  # the watermark, never moving back
    first: int | None = None  # the first watermark, to tell when the partition is warm
    due: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # watermark -> term keys
    scheduled: dict[str, int] = field(default_factory=dict)  # term key -> watermark it is due at
    idle: dict[str, int] = field(default_factory=dict)  # term key -> end of its last closed window

    @classmethod
    def start(cls, spec: WindowSpec, sources: list[str], idle_s: float, now: float) -> WindowScheduler:
        return cls(spec, sources, idle_s, PartitionWatermark(now))

    def on_batch(self, key: str, state: TermState) -> None:
        """(Re)schedule a term after its state changed: mentions added, windows closed, or recovered."""
        previous = self.scheduled.pop(key, None)
        if previous is not None:
            self.due[previous].discard(key)
        due = next_due(state, self.spec)
        if due is None:
            if state["closed"] is not None:
                self.idle[key] = state["closed"]
            return
        self.idle.pop(key, None)
        self.scheduled[key] = due
        self.due[due].add(key)

    def on_watermark(self, report: WatermarkMessage, now: float, caught_up_since: float) -> None:
        """Take a watermark report (``now`` on the report clock) and move the watermark if it may."""
        caught_up = set(report["caught_up"])
        for source, ms in report["wm"].items():
            self.watermark.report(source, ms, now, report["at"] if source in caught_up else None)
        self.advance(now, caught_up_since)

    def advance(self, now: float, caught_up_since: float) -> None:
        """Move the watermark as the reports allow (a paused stream lets it move to the newest time seen)."""
        current = self.watermark.current(self.sources, self.idle_s, now, caught_up_since)
        if current is not None and (self.current is None or current > self.current):
            self.current = current
            self.first = current if self.first is None else self.first

    def notify_at(self) -> int | None:
        """The watermark at which the next window closes (None: nothing scheduled)."""
        pending = [due for due, keys in self.due.items() if keys]
        return min(pending) if pending else None

    def on_notify(self) -> list[str]:
        """The terms whose windows the current watermark closes, in due order; they leave the schedule."""
        if self.current is None:
            return []
        keys = [key for due in sorted(d for d in self.due if d <= self.current) for key in self.due.pop(due)]
        for key in keys:
            self.scheduled.pop(key, None)
        return keys

    @property
    def warm(self) -> bool:
        return (
            self.current is not None
            and self.first is not None
            and self.current - self.first >= WARM_UP_WINDOWS * self.spec.window_ms
        )

    def stale(self) -> list[str]:
        """Idle terms whose last window closed FORGET_AFTER_WINDOWS windows ago: forget them (they leave)."""
        if self.current is None:
            return []
        horizon = self.spec.boundary(self.current) - FORGET_AFTER_WINDOWS * self.spec.window_ms
        keys = [key for key, closed in self.idle.items() if closed <= horizon]
        for key in keys:
            del self.idle[key]
        return keys

    def snapshot(self) -> dict[str, Any]:
        """What is scheduled, for the logs and the tests."""
        return {
            "watermark": self.current,
            "first": self.first,
            "scheduled": dict(self.scheduled),
            "idle": dict(self.idle),
        }
