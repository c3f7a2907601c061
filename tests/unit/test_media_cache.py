"""The same bytes are analysed once within the TTL; the cache stays bounded."""

from __future__ import annotations

from streams.media.cache import AnalysisCache, digest


def test_the_same_bytes_are_analysed_once_within_the_ttl() -> None:
    now = [0.0]
    cache: AnalysisCache[str] = AnalysisCache(ttl_s=60, max_items=10, clock=lambda: now[0])
    runs: list[bytes] = []

    def analyse(content: bytes) -> str:
        runs.append(content)
        return f"tags of {len(content)} bytes"

    first = cache.analysed(b"meme", analyse)
    again = cache.analysed(b"meme", analyse)
    assert first == (digest(b"meme"), "tags of 4 bytes", False) and again[2] is True and runs == [b"meme"]
    now[0] = 61.0  # past the TTL: analysed again
    assert cache.analysed(b"meme", analyse)[2] is False and len(runs) == 2
    assert (cache.hits, cache.misses) == (1, 2)


def test_the_least_recently_used_go_first() -> None:
    cache: AnalysisCache[int] = AnalysisCache(ttl_s=60, max_items=2)
    for key in ("a", "b"):
        cache.put(key, 1)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert list(cache.items) == ["a", "c"]
