"""Route: posts.media results -> ``trends-visual-by-term`` (the ``visual`` term kind).

Called by the media agent on each batch it publishes. A picture's tags (score at least
``MIN_TAG_SCORE``) are mentions of the terms ``visual/<tag>``, sent like the text route's
(one message per destination partition, combined), each followed by the watermark of the
media input partition it came from, through the same producer so it never overtakes them.
The media agent's heartbeat reports each partition's watermark, caught up when that
partition is read to its end, so a paused stream still closes its windows. The visual
trends stage (``streams.trends.agent``, a windows stage of its own) counts them.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import faust
from faust.types import TP, EventT, TopicT

from streams.faust_compat import processing
from streams.trends.route import END_OFFSETS_INTERVAL_S, TermSender
from streams.trends.state import SENTIMENTS, Mention, term_key

MIN_TAG_SCORE = 0.5  # a picture counts as showing a tag from here (tags are published from 0.2)


def visual_mentions(record: dict[str, Any], partition: int, offset: int) -> list[tuple[str, Mention]]:
    """(term key, mention) of each tag a posts.media record's pictures show."""
    tags: set[str] = set()
    sentiment = 1  # neutral, unless the text read in the pictures says otherwise
    for item in record["items"]:
        tags.update(t["tag"] for t in item.get("tags", []) if t["score"] >= MIN_TAG_SCORE)
        label = (item.get("text_analysis") or {}).get("sentiment", {}).get("label")
        sentiment = SENTIMENTS.index(label) if label in SENTIMENTS else sentiment
    if not tags or not isinstance(record.get("created_at_ms"), int):
        return []
    toxic = int(record["moderation"]["action"] != "allow")
    user = str(record.get("user_id") or "")[-10:]
    mention = Mention(record["id"], record["created_at_ms"], user, sentiment, toxic, partition, offset)
    return [(term_key("visual", tag), mention) for tag in sorted(tags)]


class VisualRouter:
    def __init__(self, app: faust.App, topic: TopicT, partitions: int, source_topic: str) -> None:
        self.app = app
        self.sender = TermSender(topic, partitions)
        self.source_topic = source_topic  # the media agent's input
        self.watermark: dict[int, int] = {}  # input partition -> newest event ms sent on
        self.offsets: dict[int, int] = {}  # input partition -> last offset routed
        self.last_event: dict[int, EventT] = {}  # its transaction carries the heartbeat's reports
        self.last_end_offsets_at = 0.0

    async def route(self, published: list[tuple[EventT, dict[str, Any]]]) -> None:
        """The mentions of a batch's posts.media records, then each partition's watermark."""
        by_partition: dict[int, dict[str, list[Mention]]] = defaultdict(lambda: defaultdict(list))
        for event, record in published:
            partition, offset = event.message.partition, event.message.offset
            self.offsets[partition] = offset
            self.last_event[partition] = event
            if isinstance(record.get("created_at_ms"), int):
                self.watermark[partition] = max(self.watermark.get(partition, 0), record["created_at_ms"])
            for key, mention in visual_mentions(record, partition, offset):
                by_partition[partition][key].append(mention)
        pending: list[Any] = []
        for partition in {event.message.partition for event, _ in published}:
            with processing(self.last_event[partition]):
                if by_partition[partition]:
                    pending += await self.sender.combined(by_partition[partition])
                if partition in self.watermark:
                    pending += await self.sender.broadcast({str(partition): self.watermark[partition]}, [])
        await asyncio.gather(*pending)

    async def heartbeat(self) -> None:
        """Each assigned partition's watermark, caught up when it is read to its end."""
        consumer = self.app.consumer
        assigned = [tp.partition for tp in consumer.assignment() if tp.topic == self.source_topic]
        mine = [p for p in assigned if p in self.watermark]
        if not mine:
            return
        caught_up: set[int] = set()
        if time.monotonic() - self.last_end_offsets_at >= END_OFFSETS_INTERVAL_S:
            self.last_end_offsets_at = time.monotonic()
            ends = await consumer.highwaters(*[TP(self.source_topic, p) for p in mine])
            caught_up = {p for p in mine if (end := ends.get(TP(self.source_topic, p))) is not None
                         and self.offsets[p] + 1 >= end}  # fmt: skip
        pending: list[Any] = []
        for partition in mine:
            with processing(self.last_event[partition]):
                done = [str(partition)] if partition in caught_up else []
                pending += await self.sender.broadcast({str(partition): self.watermark[partition]}, done)
        await asyncio.gather(*pending)

    def forget(self, partitions: set[int]) -> None:
        """Exactly-once aborted these partitions' work: it is routed again from their last commit."""
        for partition in partitions:
            self.watermark.pop(partition, None)
            self.offsets.pop(partition, None)
            self.last_event.pop(partition, None)
