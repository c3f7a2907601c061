"""Route: posts.enriched -> ``trends-by-term`` (and ``trends-to-cluster``).

Called by the fan-out agent on each batch of posts.enriched. Skips posts the
fan-out saw before (a re-published post counts once) and posts too far in the
future, sends each term's mentions keyed by term, posts with an embedding to
the clusterer, and the partitions' watermarks to every trends partition: with
each busy batch at most every ``BROADCAST_INTERVAL_S``, and from the heartbeat
every second, with the partitions that are caught up, so an idle stream still
closes its windows.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import faust
from faust.types import TP, TopicT

from streams.faust_compat import processing
from streams.metrics import Metrics
from streams.runtime import EnrichProgress
from streams.settings import Settings
from streams.topics import fitted, key_partition
from streams.trends.state import (
    ClusterPost,
    Mention,
    encode_cluster,
    encode_mentions,
    encode_terms,
    encode_watermark,
    mention_of,
    term_key,
)
from streams.trends.watchlist import WatchList

BROADCAST_INTERVAL_S = 0.2  # the route's watermark reports: windows close this much later at most
# Asking the broker for end offsets runs on the consumer's thread: not more often than this.
END_OFFSETS_INTERVAL_S = 3.0
TERM_FIELDS = (("hashtag", "hashtags"), ("cashtag", "cashtags"), ("keyword", "keywords"))
ENTITY_PREFIX = term_key("entity", "")
ENTITY_ROUTING_KEY = "entity"


def terms_of(post: dict[str, Any], kinds: list[str], watch: WatchList | None = None) -> list[tuple[str, str]]:
    """The post's terms of these kinds, with the watched entities it mentions."""
    terms = post.get("terms") or {}
    found = [(kind, term) for kind, name in TERM_FIELDS if kind in kinds for term in terms.get(name) or []]
    if watch and "entity" in kinds:
        found += [("entity", term) for term in watch.match(str(post.get("text", "")), terms.get("hashtags") or [])]
    return found


def cluster_terms(post: dict[str, Any]) -> list[str]:
    """The words that name a post's topic: its hashtags and one-word keywords."""
    terms = post.get("terms") or {}
    return list(terms.get("hashtags", [])) + [k for k in terms.get("keywords", []) if " " not in k]


def encode_pairs(pairs: list[tuple[str, Mention]]) -> bytes:
    """One ``trends-by-term`` message of (term key, mention) pairs, in order."""
    per_key: dict[str, list[Mention]] = defaultdict(list)
    for key, mention in pairs:
        per_key[key].append(mention)
    return encode_terms(per_key)


class TermSender:
    """Writes to ``trends-by-term``: mentions keyed by term, watermarks to every partition."""

    def __init__(self, topic: TopicT, partitions: int, on_split: Callable[[], None] = lambda: None) -> None:
        self.topic = topic
        self.partitions = partitions
        self.on_split = on_split  # a partition's mentions were too heavy for one message (counted)

    async def mentions(self, key: str, mentions: list[Mention], label: str | None = None) -> Any:
        return await self.topic.send(key=key.encode(), value=encode_mentions(mentions, label))

    def partition_of(self, key: str) -> int:
        """The partition a message keyed by ``key`` goes to (the producer's default partitioner):
        a term's state stays where keyed messages put it. Watched entities all go to one partition:
        their share of voice is computed where all of them are."""
        routing = ENTITY_ROUTING_KEY if key.startswith(ENTITY_PREFIX) else key
        return key_partition(routing.encode(), self.partitions)

    async def combined(self, per_key: dict[str, list[Mention]]) -> list[Any]:
        """Many terms' mentions: one message per destination partition; the pending sends."""
        by_partition: dict[int, list[tuple[str, Mention]]] = defaultdict(list)
        for key, mentions in per_key.items():
            by_partition[self.partition_of(key)] += [(key, mention) for mention in mentions]
        pending = []
        for partition, pairs in by_partition.items():
            values = fitted(pairs, encode_pairs)
            if len(values) > 1:
                self.on_split()
            pending += [await self.topic.send(value=value, partition=partition) for _, value in values]
        return pending

    async def broadcast(self, marks: dict[str, int], caught_up: list[str]) -> list[Any]:
        """Send the sources' watermarks to every trends partition; the pending sends."""
        if not marks:
            return []
        value = encode_watermark(marks, caught_up, time.time())
        return [await self.topic.send(value=value, partition=p) for p in range(self.partitions)]


class TrendsRouter:
    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        metrics: Metrics,
        progress: EnrichProgress,
        sender: TermSender,
        to_cluster: TopicT | None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.progress = progress
        self.sender = sender
        self.to_cluster = to_cluster  # None: semantic topics are off
        self.kinds = settings.trend_kind_names
        self.watch = settings.watch_list
        self.watermark: dict[int, int] = {}  # posts.enriched partition -> newest event ms sent on
        self.offsets: dict[int, int] = {}  # posts.enriched partition -> last offset routed
        self.last_event: dict[int, Any] = {}  # posts.enriched partition -> its latest event routed
        self.last_broadcast = 0.0
        self.last_end_offsets_at = 0.0

    def forget(self, partitions: set[int]) -> None:
        """Exactly-once aborted these partitions' work: what was routed from them will be routed
        again from their last commit. Kept, the old progress would vouch for mentions not yet
        re-sent: a watermark past them (they would come late) and a false caught-up claim."""
        for partition in partitions:
            self.watermark.pop(partition, None)
            self.offsets.pop(partition, None)
            self.last_event.pop(partition, None)

    async def route(self, events: list[Any], posts: list[dict[str, Any] | None]) -> None:
        """Send the mentions of each fresh post (None: not a post, or one routed before) to its terms' partitions."""
        s = self.settings
        # Grouped by source partition: in exactly-once mode each message joins the transaction
        # of the partition its mentions come from (the one whose offsets commit with it).
        by_term: dict[int, dict[str, list[Mention]]] = defaultdict(lambda: defaultdict(list))
        to_cluster: dict[int, list[ClusterPost]] = defaultdict(list)
        newest: dict[int, int] = {}
        for event, post in zip(events, posts, strict=True):
            if event.message.topic != s.topic_enriched:
                continue
            self.offsets[event.message.partition] = event.message.offset
            self.last_event[event.message.partition] = event
            if post is None:
                self.metrics.trend_posts_skipped.labels("duplicate").inc()
                continue
            if post["created_at_ms"] > event.message.timestamp * 1000 + s.trend_max_future_s * 1000:
                self.metrics.trend_posts_skipped.labels("future").inc()
                continue
            partition = event.message.partition
            mention = mention_of(post, partition, event.message.offset)
            newest[partition] = max(newest.get(partition, 0), post["created_at_ms"])
            for kind, term in terms_of(post, self.kinds, self.watch):
                by_term[partition][term_key(kind, term)].append(mention)
            if self.to_cluster is not None and post.get("embedding"):
                cluster_post: ClusterPost = {"m": mention.to_wire(), "e": post["embedding"], "t": cluster_terms(post)}
                to_cluster[partition].append(cluster_post)
        pending = []
        for partition, per_key in by_term.items():
            with processing(self.last_event[partition]):
                pending += await self.sender.combined(per_key)
        for partition, ms in newest.items():
            self.watermark[partition] = max(self.watermark.get(partition, 0), ms)
        marks = {str(p): self.watermark[p] for p in newest}
        if self.to_cluster is not None:
            for partition in newest:  # one message a partition, with that partition's watermark
                pending += await self.send_to_cluster(partition, to_cluster[partition])
        if newest and time.monotonic() - self.last_broadcast >= BROADCAST_INTERVAL_S:
            pending += await self.broadcast(marks, [])  # busy: the heartbeat tells when it is caught up
            self.last_broadcast = time.monotonic()
        await asyncio.gather(*pending)
        self.metrics.trend_mentions_routed.inc(sum(len(m) for terms in by_term.values() for m in terms.values()))

    async def send_to_cluster(self, partition: int, posts: list[ClusterPost]) -> list[Any]:
        """A partition's posts for the clusterer, in as many messages as their weight takes; the
        last one carries the partition's watermark (every post before it has been sent)."""
        assert self.to_cluster is not None
        pieces = fitted(posts, lambda piece: encode_cluster(piece, {}))
        if len(pieces) > 1:
            self.metrics.limits_hit.labels("internal_message").inc()
        pending = []
        for index, (piece, _) in enumerate(pieces):
            marks = {str(partition): self.watermark[partition]} if index == len(pieces) - 1 else {}
            with processing(self.last_event[partition]):
                pending.append(await self.to_cluster.send(value=encode_cluster(piece, marks), partition=0))
        return pending

    async def heartbeat(self) -> None:
        """The watermark of each posts.enriched partition this worker routes, so a
        partition with nothing new still tells whether it is caught up."""
        topic = self.settings.topic_enriched
        assigned = [tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic]
        marks = {str(p): self.watermark[p] for p in assigned if p in self.watermark}
        if marks:
            caught_up = await self.caught_up([int(p) for p in marks])
            # A timer has no event of its own: the reports join the transaction of one of the partitions.
            await asyncio.gather(*await self.broadcast(marks, caught_up))

    async def broadcast(self, marks: dict[str, int], caught_up: list[str]) -> list[Any]:
        """Each partition's watermark in a message of its own, sent like that partition's mentions.

        A watermark must come after the mentions it vouches for. In exactly-once mode each
        source partition's records go out through its own transactional producer, and two
        producers' records reach a trends partition in no set order: a watermark sent
        through another producer could overtake the mentions and make them late.
        """
        pending: list[Any] = []
        for source, ms in marks.items():
            with processing(self.last_event[int(source)]):
                pending += await self.sender.broadcast({source: ms}, [source] if source in caught_up else [])
        return pending

    async def caught_up(self, partitions: list[int]) -> list[str]:
        """The posts.enriched partitions among ``partitions`` with nothing more to come soon:
        routed to their end, and (when this worker enriches it too) posts.raw of the same
        number enriched to its end. Faust gives one worker the same partition number of
        every topic of the group, so a slow enrichment of partition p holds back p's watermark.

        End offsets are asked of the broker: the consumer's own highwater is stale while
        fetching is paused, which happens under a backlog."""
        s = self.settings
        consumer = self.app.consumer
        assigned = consumer.assignment()
        wanted = [TP(s.topic_enriched, p) for p in partitions]
        wanted += [TP(s.topic_raw, p) for p in partitions if TP(s.topic_raw, p) in assigned]
        # The cached highwaters first: when they already show more to read, no broker call.
        cached = {tp: consumer.highwater(tp) for tp in wanted}
        candidates = self.caught_up_by(partitions, cached)
        if not candidates or time.monotonic() - self.last_end_offsets_at < END_OFFSETS_INTERVAL_S:
            return []
        self.last_end_offsets_at = time.monotonic()
        return self.caught_up_by([int(p) for p in candidates], await consumer.highwaters(*wanted))

    def caught_up_by(self, partitions: list[int], ends: Mapping[TP, int | None]) -> list[str]:
        """The partitions routed, and enriched, up to the end offsets ``ends``."""
        s = self.settings
        done = []
        for partition in partitions:
            routed_end = ends.get(TP(s.topic_enriched, partition))
            if routed_end is None or self.offsets.get(partition, -1) + 1 < routed_end:
                continue
            raw_end = ends.get(TP(s.topic_raw, partition))
            if raw_end is not None and self.progress.enriched_through(partition) + 1 < raw_end:
                continue
            done.append(str(partition))
        return done
