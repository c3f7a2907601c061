"""Posts' media items: fetched, analysed once per distinct bytes, each to a result.

Two steps, both off the event loop: ``fetch_all`` (one post's items, in a fetch
thread: fetching blocks on the network) and ``analyse`` (a batch's fetched items:
the bytes the cache does not know go through the models once, in one batch, so a
meme posted twice in a batch is analysed once). A bad item never fails the post:
its result carries an ``error`` {type, message} instead of findings, and its
outcome is counted by reason.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from streams.media.cache import AnalysisCache, digest
from streams.media.fetch import Fetched, FetchError, FetchLimits, checked_content, fetch
from streams.media.vision import ImageFindings, VisionModels

KINDS = ("image", "video")
CACHE_ITEMS = 10_000
DECODED_BYTES_PER_PIXEL = 3  # RGB, as the models read it


def decode_groups(items: list[FetchedItem], max_bytes: int) -> list[list[FetchedItem]]:
    """The items in order, in groups whose decoded pixels fit ``max_bytes`` together (an item
    over it alone makes a group of its own: the pixel cap bounds it)."""
    groups: list[list[FetchedItem]] = []
    weight = 0
    for item in items:
        size = (item.fetched.width or 0) * (item.fetched.height or 0) * DECODED_BYTES_PER_PIXEL
        if not groups or weight + size > max_bytes:
            groups.append([])
            weight = 0
        groups[-1].append(item)
        weight += size
    return groups


@dataclass(frozen=True)
class ItemOutcome:
    """An item's result record, and how it went: a metric label and the bytes fetched."""

    result: dict[str, Any]
    outcome: str  # analysed, cached, or an error type
    fetched_bytes: int = 0


@dataclass(frozen=True)
class FetchedItem:
    index: int
    item: dict[str, Any]
    fetched: Fetched
    sha256: str
    seconds: float


def item_error(index: int, item: Any, kind: str, message: str) -> ItemOutcome:
    source = item.get("url") if isinstance(item, dict) else None
    result = {"index": index, "type": item.get("type") if isinstance(item, dict) else None, "url": source}
    result["error"] = {"type": kind, "message": message}
    return ItemOutcome(result, kind)


class MediaAnalyser:
    def __init__(
        self,
        vision: VisionModels,
        limits: FetchLimits,
        max_items: int,
        cache_ttl_s: float,
        video_frames: int = 8,
        on_split: Callable[[], None] = lambda: None,
    ) -> None:
        self.vision = vision
        self.limits = limits
        self.on_split = on_split  # a batch's images were decoded in more than one group (counted)
        self.max_items = max_items
        self.video_frames = video_frames
        self.cache: AnalysisCache[ImageFindings] = AnalysisCache(cache_ttl_s, CACHE_ITEMS)
        self.cache_lock = threading.Lock()

    def items(self, media: list[Any]) -> list[ItemOutcome]:
        """One post's items, both steps (what the agent does for a batch, for one post)."""
        return self.analyse([self.fetch_all(media)])[0]

    def fetch_all(self, media: list[Any]) -> list[FetchedItem | ItemOutcome]:
        """Every item of a post's ``media``, in order: fetched, or its error."""
        return [self.fetch_one(index, item) for index, item in enumerate(media)]

    def fetch_one(self, index: int, item: Any) -> FetchedItem | ItemOutcome:
        if index >= self.max_items:
            return item_error(index, item, "too_many_items", f"at most {self.max_items} items a post")
        if not isinstance(item, dict) or item.get("type") not in KINDS:
            return item_error(index, item, "invalid_item", f"a media item is an object with type one of {KINDS}")
        started = time.perf_counter()
        try:
            fetched = self.fetched(item)
        except FetchError as error:
            return item_error(index, item, error.reason, error.message)
        return FetchedItem(index, item, fetched, digest(fetched.content), time.perf_counter() - started)

    def fetched(self, item: dict[str, Any]) -> Fetched:
        """The item's bytes: inline ``data`` (base64) or fetched from its ``url``."""
        if isinstance(item.get("data"), str):
            try:
                content = base64.b64decode(item["data"], validate=True)
            except (binascii.Error, ValueError):
                raise FetchError("invalid_url", "the item's data is not valid base64") from None
            if len(content) > self.limits.max_image_bytes:
                raise FetchError(
                    "too_large", f"inline data is {len(content)} bytes, limit {self.limits.max_image_bytes}"
                )
            return checked_content("data:", content, item["type"], self.limits)
        url = item.get("url")
        if not isinstance(url, str):
            raise FetchError("invalid_url", "the item has neither a url nor base64 data")
        return fetch(url, item["type"], self.limits)

    def analyse(self, posts: list[list[FetchedItem | ItemOutcome]]) -> list[list[ItemOutcome]]:
        """Each post's item results: the models run once on each distinct unknown image."""
        known, fresh = self.findings([i for items in posts for i in items if isinstance(i, FetchedItem)])
        return [[self.outcome(i, known, fresh) if isinstance(i, FetchedItem) else i for i in items] for items in posts]

    def findings(self, fetched: list[FetchedItem]) -> tuple[dict[str, ImageFindings | str], set[str]]:
        """sha256 -> findings (or why the bytes do not decode), and the sha256s analysed now."""
        with self.cache_lock:
            known: dict[str, ImageFindings | str] = {
                f.sha256: hit for f in fetched if (hit := self.cache.get(f.sha256)) is not None
            }
        images = {f.sha256: f for f in fetched if f.sha256 not in known and f.item["type"] == "image"}
        videos = {f.sha256: f.fetched.content for f in fetched if f.sha256 not in known and f.item["type"] == "video"}
        found: dict[str, ImageFindings | str] = {}
        groups = decode_groups(list(images.values()), self.limits.max_decoded_bytes)
        if len(groups) > 1:
            self.on_split()
        for group in groups:  # one group's pixels in memory at a time
            results = self.vision.analyse_each([f.fetched.content for f in group])
            found.update(zip([f.sha256 for f in group], results, strict=True))
        for sha256, content in videos.items():
            found[sha256] = self.vision.analyse_video(content, self.video_frames, self.limits.max_pixels)
        for sha256, result in found.items():
            known[sha256] = result
            if isinstance(result, ImageFindings):
                with self.cache_lock:
                    self.cache.put(sha256, result)
        return known, set(found)

    def outcome(self, item: FetchedItem, known: dict[str, ImageFindings | str], fresh: set[str]) -> ItemOutcome:
        found = known[item.sha256]
        if isinstance(found, str):
            return item_error(item.index, item.item, "undecodable", found)
        # The first item with bytes analysed now is "analysed"; the others with the same bytes, "cached".
        analysed = item.sha256 in fresh
        fresh.discard(item.sha256)
        timing = {"fetch_s": round(item.seconds, 4)}
        if analysed:
            timing.update({f"{model}_s": s for model, s in found.seconds.items()})
        result = {
            "index": item.index,
            "type": item.item["type"],
            "url": item.item.get("url"),
            "sha256": item.sha256,
            "media_type": item.fetched.media_type,
            "bytes": len(item.fetched.content),
            **{k: v for k, v in asdict(found).items() if k != "seconds" and v is not None},
            "cached": not analysed,
            "timing": timing,
        }
        return ItemOutcome(result, "analysed" if analysed else "cached", len(item.fetched.content))
