"""Which posts came too late for trends, as a reader of the output topics can tell.

A post dated before the trends watermark when it was enriched is published on
posts.enriched but counted in no window (streams.trends.windows). ``top`` and
``report`` read the topics, not the workers, so they tell from the records
themselves: a post is late when, by the time it was enriched (its record's
timestamp), a trend window ending after its date had already been published
(the watermark had passed that end). Approximate by the few milliseconds between
enrichment and the trends stage, which is what a person needs to see why a view
stays empty.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from streams.records import iso_utc

POSTS_KEPT = 100_000  # the latest posts judged: a live view runs for hours


@dataclass
class LatePosts:
    windows: list[tuple[int, int]] = field(default_factory=list)  # (published at ms, window end ms), sorted
    posts: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=POSTS_KEPT))  # (enriched at, date)

    def window(self, published_ms: int, end_ms: int) -> None:
        bisect.insort(self.windows, (published_ms, end_ms))

    def post(self, enriched_ms: int, created_ms: int) -> None:
        self.posts.append((enriched_ms, created_ms))

    def count(self) -> tuple[int, int | None]:
        """(late posts, the newest watermark they met)."""
        published = [at for at, _ in self.windows]
        newest, closed = 0, []
        for _, end in self.windows:
            newest = max(newest, end)
            closed.append(newest)  # the latest window end published by then: the watermark had passed it
        late, met = 0, None
        for enriched_ms, created_ms in self.posts:
            i = bisect.bisect_right(published, enriched_ms)
            if i and closed[i - 1] > created_ms:
                late += 1
                met = max(met or 0, closed[i - 1])
        return late, met

    def note(self) -> str | None:
        """One line when posts came too late for trends; None when none did."""
        late, met = self.count()
        if not late or met is None:
            return None
        return (
            f"{late} of {len(self.posts)} posts were dated before the trends watermark ({iso_utc(met)}) when "
            "they were enriched: they are in posts.enriched but in no trend window. Send posts dated now "
            "(social-streams replay --start), or replay into fresh topics."
        )
