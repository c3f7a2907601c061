"""What the media models found, by the sha256 of the bytes, for a while.

A meme is reposted thousands of times, often from other URLs: the same bytes are
analysed once within ``ttl_s``. Bounded (least recently used go first) so that a
stream of distinct images cannot grow it without limit; per worker, in memory.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class AnalysisCache(Generic[T]):
    def __init__(self, ttl_s: float, max_items: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.clock = clock
        self.items: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, sha256: str) -> T | None:
        found = self.items.get(sha256)
        if found is None or self.clock() - found[0] > self.ttl_s:
            self.items.pop(sha256, None)
            self.misses += 1
            return None
        self.items.move_to_end(sha256)
        self.hits += 1
        return found[1]

    def put(self, sha256: str, result: T) -> None:
        self.items[sha256] = (self.clock(), result)
        self.items.move_to_end(sha256)
        while len(self.items) > self.max_items:
            self.items.popitem(last=False)

    def analysed(self, content: bytes, analyse: Callable[[bytes], T]) -> tuple[str, T, bool]:
        """(sha256, result, whether it came from the cache): ``analyse`` runs on a miss only."""
        sha256 = digest(content)
        cached = self.get(sha256)
        if cached is not None:
            return sha256, cached, True
        result = analyse(content)
        self.put(sha256, result)
        return sha256, result, False
