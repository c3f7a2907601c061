"""Cluster: ``trends-to-cluster`` (one partition) -> topic mentions on ``trends-by-term``.

Assigns each post to a semantic topic (streams.trends.topics) and sends the
topic's mentions on, with a watermark of its own (source ``topics``): the
minimum over the posts.enriched partitions it has heard from. Its state, with
the last input offset assigned, is saved in the ``trend-topics`` table, so a
batch re-read after a restart is not assigned twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import faust
from faust.types import TP, TopicT

from streams.faust_compat import processing
from streams.settings import Settings
from streams.trends.route import END_OFFSETS_INTERVAL_S, TermSender
from streams.trends.state import Mention, decode_cluster, term_key
from streams.trends.topics import TopicClusterer

CLUSTER_SOURCE = "topics"  # the clusterer's name among the trends partitions' watermark sources
CLUSTER_STATE_KEY = "clusterer"


class ClusterStage:
    def __init__(self, app: faust.App, settings: Settings, topic: TopicT, sender: TermSender) -> None:
        self.app = app
        self.settings = settings
        self.topic = topic
        self.sender = sender
        self.table = app.Table("trend-topics", default=None, partitions=1, help="the topic clusterer's state")
        self.watermarks: dict[str, int] = {}  # posts.enriched partition -> newest event ms heard of
        self.clusterer: TopicClusterer | None = None
        self.last_end_at = 0.0
        self.last_event: Any = None  # the latest input event: the heartbeat's reports join its transaction

    def forget(self, partitions: set[int]) -> None:
        """Exactly-once aborted the clusterer's work: start again from its recovered table state."""
        if 0 in partitions:
            self.watermarks.clear()
            self.clusterer = None
            self.last_event = None

    @property
    def heard_from_all(self) -> bool:
        return len(self.watermarks) >= self.settings.partitions

    async def cluster(self, events: list[Any]) -> None:
        if self.clusterer is None:
            s = self.settings
            self.clusterer = TopicClusterer(s.topic_similarity, s.topic_max, self.table.get(CLUSTER_STATE_KEY))
        clusterer = self.clusterer
        self.last_event = events[-1]
        by_topic: dict[str, list[Mention]] = defaultdict(list)
        labels: dict[str, str] = {}
        for event in events:
            batch = decode_cluster(event.value)
            for source, ms in batch["wm"].items():
                self.watermarks[source] = max(self.watermarks.get(source, 0), ms)
            if event.message.offset <= clusterer.applied:
                continue  # assigned before a restart: its mentions were sent then
            for post in batch["posts"]:
                assigned = clusterer.assign(post["e"], post["t"])
                if assigned is not None:
                    by_topic[assigned[0]].append(Mention.from_wire(post["m"]))
                    labels[assigned[0]] = assigned[1]
            clusterer.applied = event.message.offset
        # Its mentions and its watermark go through one producer (the input's), in order.
        with processing(events[-1]):
            pending = [await self.sender.mentions(term_key("topic", t), m, labels[t]) for t, m in by_topic.items()]
            if self.heard_from_all:
                pending += await self.sender.broadcast({CLUSTER_SOURCE: min(self.watermarks.values())}, [])
        await asyncio.gather(*pending)
        with processing(events[-1]):
            self.table[CLUSTER_STATE_KEY] = clusterer.state()

    async def heartbeat(self) -> None:
        """The clusterer's watermark, caught up when it has assigned everything on its input."""
        if self.clusterer is None or self.last_event is None or not self.heard_from_all:
            return
        tp = TP(self.topic.get_topic_name(), 0)
        consumer = self.app.consumer
        if tp not in consumer.assignment():
            return
        applied = self.clusterer.applied
        cached = consumer.highwater(tp)
        done: list[str] = []
        due = time.monotonic() - self.last_end_at >= END_OFFSETS_INTERVAL_S
        if cached is not None and applied + 1 >= cached and due:
            self.last_end_at = time.monotonic()
            end = (await consumer.highwaters(tp)).get(tp)
            done = [CLUSTER_SOURCE] if end is not None and applied + 1 >= end else []
        mark = {CLUSTER_SOURCE: min(self.watermarks.values())}
        with processing(self.last_event):
            await asyncio.gather(*await self.sender.broadcast(mark, done))
