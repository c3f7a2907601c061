"""The event-time watermark of each trends partition.

Every source (a partition of posts.enriched, and the topic clusterer) reports
the newest event time it has sent; a trends partition's watermark is the
minimum over its sources, so a source that lags behind (a slow partition, a
restarting worker) holds windows open instead of making its posts late.
A source that reports it has read everything there is (caught up) does not hold
the watermark back, nor does one silent for ``idle_s`` wall seconds (its worker
is gone); when no source holds it back the stream has paused, and the
watermark moves to the newest time seen, closing the windows that can close.

"Caught up" is a claim about one moment: it counts only while fresh, and never
across a rebalance (the caller's ``caught_up_since``). Otherwise a partition
that moves to another worker, with records still to read, would be taken as
caught up while its new owner recovers, and its records would come late.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PartitionWatermark:
    since: float  # wall time this partition was taken up (sources not heard yet count from here)
    # source -> (event ms, when the report came, epoch seconds it was caught up at or None)
    sources: dict[str, tuple[int, float, float | None]] = field(default_factory=dict)

    def report(self, source: str, event_ms: int, now: float, caught_up_at: float | None = None) -> None:
        previous = self.sources.get(source)
        newest = event_ms if previous is None else max(previous[0], event_ms)
        self.sources[source] = (newest, now, caught_up_at)

    def current(self, expected: list[str], idle_s: float, now: float, caught_up_since: float = 0.0) -> int | None:
        """The watermark: ``now`` is on the clock of the reports; a caught-up claim
        counts when made at or after ``caught_up_since`` (epoch seconds)."""
        if not self.sources:
            return None
        active: list[int] = []
        for source in expected:
            reported = self.sources.get(source)
            if reported is None:
                if now - self.since < idle_s:
                    return None  # a source not heard from yet may still be behind
                continue
            caught_up = reported[2] is not None and reported[2] >= caught_up_since
            if now - reported[1] < idle_s and not caught_up:
                active.append(reported[0])
        if not active:
            return max(ms for ms, _, _ in self.sources.values())
        return min(active)
