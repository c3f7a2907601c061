"""The trends agents: term windows, spike alerts and forecasts on event time.

``route``          (called by the fan-out agent on batches of posts.enriched) skips posts already
                   routed (a re-published post counts once), and sends each
                   term's mentions, keyed by term, to the internal
                   ``trends-by-term`` topic, plus a watermark to each of its
                   partitions; posts with an embedding go to the clusterer.
``trends-topics``  one partition: assigns each post to a semantic topic and
                   sends the topic mentions on, with its own watermark.
``trends``         adds mentions to the term's panes (table ``trend-terms``),
                   and when the watermark passes a window's end plus the grace,
                   publishes the final window to trends.windows and any alert
                   it opens to trends.alerts, then saves the term's state.

Every mention carries its source partition and offset, and a term's state
remembers the last offset applied per source, in the same table value as the
counts: a batch re-sent after a crash is not counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.types import TP, EventT, StreamT

from streams.app import Runtime, internal_topic, raw_topic
from streams.commits import gated, processed
from streams.gaps import GapRepair
from streams.tables import processing
from streams.topics import compaction_config
from streams.trends import windows
from streams.trends.detect import DetectorSettings
from streams.trends.topics import TopicClusterer
from streams.trends.watermarks import PartitionWatermark
from streams.trends.windows import SENTIMENTS, WindowSpec

log = logging.getLogger(__name__)
SEP = "\x1f"
CLUSTER_SOURCE = "topics"
CLUSTER_STATE_KEY = "clusterer"
ROUTE_BATCH = 500
ROUTE_LINGER_S = 0.2
IDLE_CHECK_S = 1.0
# Asking the broker for end offsets runs on the consumer's thread: not more often than this.
END_OFFSETS_INTERVAL_S = 3.0
# A caught-up claim older than this no longer counts: the heartbeat renews it every few seconds.
CAUGHT_UP_TTL_S = 5.0
BROADCAST_INTERVAL_S = 0.2  # the route's watermark reports: windows close this much later at most
# A term with no open pane whose last window closed this many windows ago is forgotten.
FORGET_AFTER_WINDOWS = 60
# Before this many windows have closed in a partition, a term's first window seeds
# its baseline (it is new to this worker, not necessarily new to the world).
WARM_UP_WINDOWS = 10
TERM_FIELDS = (("hashtag", "hashtags"), ("cashtag", "cashtags"), ("keyword", "keywords"))


def term_key(kind: str, term: str) -> str:
    return f"{kind}{SEP}{term}"


def mention_of(post: dict[str, Any], partition: int, offset: int) -> list[Any]:
    """[post id, event ms, user, sentiment index, toxic, source partition, source offset]."""
    label = (post.get("sentiment") or {}).get("label")
    sentiment = SENTIMENTS.index(label) if label in SENTIMENTS else 1
    toxic = (post.get("moderation") or {}).get("action", "allow") != "allow"
    user = str(post.get("user_id", ""))[-10:]
    return [post["id"], post["created_at_ms"], user, sentiment, int(toxic), partition, offset]


def terms_of(post: dict[str, Any], kinds: list[str]) -> list[tuple[str, str]]:
    terms = post.get("terms") or {}
    return [(kind, term) for kind, name in TERM_FIELDS if kind in kinds for term in terms.get(name) or []]


@dataclass
class PartitionState:
    """What the trends agent keeps in memory for one trends partition (rebuilt from the table)."""

    watermark: PartitionWatermark
    current: int | None = None  # the watermark, never moving back
    due: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # watermark -> term keys
    scheduled: dict[str, int] = field(default_factory=dict)
    idle: dict[str, int] = field(default_factory=dict)  # term key -> end of its last closed window
    first: int | None = None  # the first watermark seen, to tell when the partition is warm
    last_mark: EventT | None = None  # the latest watermark event: table writes of closes go to its partition


class TrendsAgent:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        s = runtime.settings
        app = runtime.app
        self.metrics = runtime.metrics
        self.kinds = s.trend_kind_names
        self.topics_on = "topic" in self.kinds
        self.spec = WindowSpec(
            s.trend_window_s * 1000, s.trend_hop_size_s * 1000, s.trend_hop_s * 1000, s.trend_grace_s * 1000
        )
        self.detector = DetectorSettings(
            alpha=s.trend_alpha,
            z=s.trend_alert_z,
            z_sustained=s.trend_alert_z_sustained,
            ratio=s.trend_alert_ratio,
            min_count=s.trend_alert_min_count,
            horizon=s.trend_forecast_windows,
        )
        self.by_term = internal_topic(app, f"{s.app_id}-trends-by-term", s.partitions)
        self.to_cluster = internal_topic(app, f"{s.app_id}-trends-to-cluster", 1)
        self.table = app.Table(
            "trend-terms",
            default=None,
            partitions=s.partitions,
            extra_topic_configs=compaction_config(s),
            help="kind+term -> panes, applied offsets, detector and history",
        )
        self.cluster_table = app.Table("trend-topics", default=None, partitions=1, help="the topic clusterer's state")
        self.windows_out = raw_topic(app, s.topic_trends, s)
        self.alerts_out = raw_topic(app, s.topic_alerts, s)
        self.sources = [str(p) for p in range(s.partitions)] + ([CLUSTER_SOURCE] if self.topics_on else [])
        self.partitions: dict[int, PartitionState] = {}
        self.route_watermark: dict[int, int] = {}  # posts.enriched partition -> newest event ms sent on
        self.route_offsets: dict[int, int] = {}  # posts.enriched partition -> last offset routed
        self.last_broadcast = 0.0
        self.last_end_offsets_at = 0.0
        self.last_cluster_end_at = 0.0
        self.cluster_watermarks: dict[str, int] = {}
        self.latest: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # kind -> term -> last closed window
        self.clusterer: TopicClusterer | None = None
        self.lock = asyncio.Lock()  # the agent and the idle timer both close windows

    # --- route: posts.enriched -> trends-by-term ------------------------------------

    async def route(self, events: list[EventT], posts: list[dict[str, Any] | None]) -> None:
        """Send the mentions of each fresh post (None: not a post, or one routed before) to its terms' partitions."""
        s = self.rt.settings
        by_term: dict[str, list[list[Any]]] = defaultdict(list)
        to_cluster: list[dict[str, Any]] = []
        newest: dict[int, int] = {}
        for event, post in zip(events, posts, strict=True):
            if event.message.topic != s.topic_enriched:
                continue
            self.route_offsets[event.message.partition] = event.message.offset
            if post is None:
                self.metrics.trend_posts_skipped.labels("duplicate").inc()
                continue
            if post["created_at_ms"] > event.message.timestamp * 1000 + s.trend_max_future_s * 1000:
                self.metrics.trend_posts_skipped.labels("future").inc()
                continue
            partition = event.message.partition
            mention = mention_of(post, partition, event.message.offset)
            newest[partition] = max(newest.get(partition, 0), post["created_at_ms"])
            for kind, term in terms_of(post, self.kinds):
                by_term[term_key(kind, term)].append(mention)
            if self.topics_on and post.get("embedding"):
                terms = (post.get("terms") or {}).get("hashtags", []) + [
                    k for k in (post.get("terms") or {}).get("keywords", []) if " " not in k
                ]
                to_cluster.append({"m": mention, "e": post["embedding"], "t": terms})
        pending = [await self.send_mentions(key, m) for key, m in by_term.items()]
        for partition, ms in newest.items():
            self.route_watermark[partition] = max(self.route_watermark.get(partition, 0), ms)
        marks = {str(p): self.route_watermark[p] for p in newest}
        if self.topics_on:
            cluster_batch = orjson.dumps({"posts": to_cluster, "wm": marks})
            pending.append(await self.to_cluster.send(value=cluster_batch, partition=0))
        if time.monotonic() - self.last_broadcast >= BROADCAST_INTERVAL_S:
            pending += await self.broadcast(marks, [])  # busy: the heartbeat tells when it is caught up
            self.last_broadcast = time.monotonic()
        await asyncio.gather(*pending)
        self.metrics.trend_mentions_routed.inc(sum(len(m) for m in by_term.values()))

    async def caught_up(self, partitions: list[int]) -> list[str]:
        """The posts.enriched partitions among ``partitions`` with nothing more to come soon:
        routed to their end, and (when this worker enriches it too) posts.raw of the same
        number enriched to its end. Faust gives one worker the same partition number of
        every topic of the group, so a slow enrichment of partition p holds back p's watermark.

        End offsets are asked of the broker: the consumer's own highwater is stale while
        fetching is paused, which happens under a backlog."""
        s = self.rt.settings
        assigned = self.rt.app.consumer.assignment()
        wanted = [TP(s.topic_enriched, p) for p in partitions]
        wanted += [TP(s.topic_raw, p) for p in partitions if TP(s.topic_raw, p) in assigned]
        # The cached highwaters first: when they already show more to read, no broker call.
        cached = {tp: self.rt.app.consumer.highwater(tp) for tp in wanted}
        candidates = self._caught_up(partitions, cached)
        if not candidates or time.monotonic() - self.last_end_offsets_at < END_OFFSETS_INTERVAL_S:
            return []
        self.last_end_offsets_at = time.monotonic()
        return self._caught_up([int(p) for p in candidates], await self.rt.app.consumer.highwaters(*wanted))

    def _caught_up(self, partitions: list[int], ends: Any) -> list[str]:
        s = self.rt.settings
        done = []
        for partition in partitions:
            routed_end = ends.get(TP(s.topic_enriched, partition))
            if routed_end is None or self.route_offsets.get(partition, -1) + 1 < routed_end:
                continue
            raw_end = ends.get(TP(s.topic_raw, partition))
            if raw_end is not None and self.rt.enriched_offsets.get(partition, -1) + 1 < raw_end:
                continue
            done.append(str(partition))
        return done

    async def heartbeat(self) -> None:
        """Every second, the watermark of each posts.enriched partition this worker routes,
        so a partition with nothing new still tells whether it is caught up."""
        topic = self.rt.settings.topic_enriched
        assigned = [tp.partition for tp in self.rt.app.consumer.assignment() if tp.topic == topic]
        marks = {str(p): self.route_watermark[p] for p in assigned if p in self.route_watermark}
        if marks:
            caught_up = await self.caught_up([int(p) for p in marks])
            await asyncio.gather(*await self.broadcast(marks, caught_up))
        if self.clusterer is not None and len(self.cluster_watermarks) >= self.rt.settings.partitions:
            tp = TP(self.to_cluster.get_topic_name(), 0)
            if tp in self.rt.app.consumer.assignment():
                applied = self.clusterer.applied
                cached = self.rt.app.consumer.highwater(tp)
                done: list[str] = []
                due = time.monotonic() - self.last_cluster_end_at >= END_OFFSETS_INTERVAL_S
                if cached is not None and applied + 1 >= cached and due:
                    self.last_cluster_end_at = time.monotonic()
                    end = (await self.rt.app.consumer.highwaters(tp)).get(tp)
                    done = [CLUSTER_SOURCE] if end is not None and applied + 1 >= end else []
                mark = {CLUSTER_SOURCE: min(self.cluster_watermarks.values())}
                await asyncio.gather(*await self.broadcast(mark, done))

    async def send_mentions(self, key: str, mentions: list[list[Any]], label: str | None = None) -> Any:
        value: dict[str, Any] = {"m": mentions} if label is None else {"m": mentions, "label": label}
        return await self.by_term.send(key=key.encode(), value=orjson.dumps(value))

    async def broadcast(self, marks: dict[str, int], caught_up: list[str]) -> list[Any]:
        """Send the sources' watermarks to every trends partition."""
        if not marks:
            return []
        value = orjson.dumps({"wm": marks, "caught_up": caught_up, "at": time.time()})
        partitions = self.rt.settings.partitions
        return [await self.by_term.send(value=value, partition=p) for p in range(partitions)]

    # --- topics: one partition, assigns semantic topics -------------------------------

    async def cluster(self, events: list[EventT]) -> None:
        if self.clusterer is None:
            s = self.rt.settings
            self.clusterer = TopicClusterer(s.topic_similarity, s.topic_max, self.cluster_table.get(CLUSTER_STATE_KEY))
        clusterer = self.clusterer
        by_topic: dict[str, list[list[Any]]] = defaultdict(list)
        labels: dict[str, str] = {}
        for event in events:
            batch = orjson.loads(event.value)
            for source, ms in batch["wm"].items():
                self.cluster_watermarks[source] = max(self.cluster_watermarks.get(source, 0), ms)
            if event.message.offset <= clusterer.applied:
                continue  # assigned before a restart: its mentions were sent then
            for post in batch["posts"]:
                assigned = clusterer.assign(post["e"], post["t"])
                if assigned is not None:
                    by_topic[assigned[0]].append(post["m"])
                    labels[assigned[0]] = assigned[1]
            clusterer.applied = event.message.offset
        pending = [await self.send_mentions(term_key("topic", t), m, labels[t]) for t, m in by_topic.items()]
        if len(self.cluster_watermarks) >= self.rt.settings.partitions:
            pending += await self.broadcast({CLUSTER_SOURCE: min(self.cluster_watermarks.values())}, [])
        await asyncio.gather(*pending)
        with processing(events[-1]):
            self.cluster_table[CLUSTER_STATE_KEY] = clusterer.state()

    # --- trends: windows per term -----------------------------------------------------

    def partition_state(self, partition: int) -> PartitionState:
        state = self.partitions.get(partition)
        if state is None:
            state = self.partitions[partition] = PartitionState(PartitionWatermark(time.monotonic()))
            self.reindex(partition, state)
        return state

    def reindex(self, partition: int, state: PartitionState) -> None:
        """Schedule the terms of a partition taken up (their state came from the changelog)."""
        for key, value in list(self.table.data.items()):
            if value is not None and value["p"] == partition:
                self.schedule(state, key, value)

    def schedule(self, state: PartitionState, key: str, value: dict[str, Any]) -> None:
        previous = state.scheduled.pop(key, None)
        if previous is not None:
            state.due[previous].discard(key)
        due = windows.next_due(value, self.spec)
        if due is None:
            if value["closed"] is not None:
                state.idle[key] = value["closed"]
            return
        state.idle.pop(key, None)
        state.scheduled[key] = due
        state.due[due].add(key)

    def drop_revoked(self) -> None:
        name = self.by_term.get_topic_name()
        assigned = {tp.partition for tp in self.rt.app.consumer.assignment() if tp.topic == name}
        for partition in set(self.partitions) - assigned:
            del self.partitions[partition]

    async def apply(self, events: list[EventT]) -> None:
        async with self.lock:
            await self._apply(events)

    async def close_idle(self) -> None:
        """Close what a paused stream lets close: the watermark moves when every source is idle."""
        async with self.lock:
            self.drop_revoked()
            now = time.monotonic()
            for partition, pstate in list(self.partitions.items()):
                if pstate.last_mark is not None:
                    self.advance(pstate, now)
                    await self.close_due(partition, pstate.last_mark)

    async def _apply(self, events: list[EventT]) -> None:
        self.drop_revoked()
        touched: dict[str, tuple[dict[str, Any], EventT]] = {}
        marks: dict[int, EventT] = {}
        now = time.monotonic()
        for event in events:
            partition = event.message.partition
            pstate = self.partition_state(partition)
            value = orjson.loads(event.value)
            if "wm" in value:
                caught_up = set(value.get("caught_up", ()))
                for source, ms in value["wm"].items():
                    pstate.watermark.report(source, ms, now, value.get("at") if source in caught_up else None)
                self.advance(pstate, now)
                marks[partition] = pstate.last_mark = event
                continue
            key = (event.key or b"").decode()
            state = touched[key][0] if key in touched else self.table.get(key)
            if state is None:
                kind, term = key.split(SEP, 1)
                state = windows.new_state(kind, term, partition)
            if "label" in value:
                state["label"] = value["label"]
            for mention in value["m"]:
                outcome = windows.add(state, mention, self.spec, pstate.current)
                self.metrics.trend_mentions.labels(outcome).inc()
            touched[key] = (state, event)
        for key, (state, event) in touched.items():
            with processing(event):
                self.table[key] = state
            self.schedule(self.partitions[event.message.partition], key, state)
        for partition, event in marks.items():
            await self.close_due(partition, event)

    def advance(self, pstate: PartitionState, now: float) -> None:
        # Claims made before the latest rebalance are void: the partition may have moved since.
        since = max(time.time() - CAUGHT_UP_TTL_S, self.rt.rebalance_started_at)
        current = pstate.watermark.current(self.sources, self.rt.settings.trend_idle_s, now, since)
        if current is not None and (pstate.current is None or current > pstate.current):
            pstate.current = current
            pstate.first = current if pstate.first is None else pstate.first

    async def close_due(self, partition: int, event: EventT) -> None:
        """Close and publish the windows the partition's watermark has passed."""
        pstate = self.partitions[partition]
        watermark = pstate.current
        if watermark is None:
            return
        self.metrics.trend_watermark_lag.labels(str(partition)).set(max(0.0, time.time() - watermark / 1000))
        keys = [key for due in sorted(d for d in pstate.due if d <= watermark) for key in pstate.due.pop(due)]
        if not keys:
            self.forget_idle(pstate, event)
            return
        assert pstate.first is not None
        warm = watermark - pstate.first >= WARM_UP_WINDOWS * self.spec.window_ms
        pending: list[Any] = []
        closed_states: list[tuple[str, dict[str, Any]]] = []
        for key in keys:
            pstate.scheduled.pop(key, None)
            state = self.table.get(key)
            if state is None:
                continue
            result = windows.close(state, watermark, self.spec, self.detector, warm)
            pending += await self.publish(state, result)
            closed_states.append((key, state))
        await asyncio.gather(*pending)
        with processing(event):
            for key, state in closed_states:
                self.table[key] = state
        for key, state in closed_states:
            self.schedule(pstate, key, state)
        self.forget_idle(pstate, event)

    async def publish(self, state: dict[str, Any], result: windows.Closed) -> list[Any]:
        s = self.rt.settings
        kind, term, label = state["kind"], state["term"], state["label"]
        key = term.encode()
        pending = []
        for window in result.windows:
            if window["type"] == "tumbling":
                self.remember_latest(state, window)
            if window["count"] < s.trend_min_count:
                continue
            record = windows.window_record(kind, term, label, window)
            pending.append(await self.windows_out.send(key=key, value=orjson.dumps(record)))
            self.metrics.trend_windows.labels(window["type"]).inc()
        for alert in result.alerts:
            record = windows.alert_record(kind, term, label, alert)
            pending.append(await self.alerts_out.send(key=key, value=orjson.dumps(record)))
            self.metrics.trend_alerts.labels(alert["severity"]).inc()
            log.info("trend alert: %s %r count %d, %.1fx its baseline", kind, term, alert["count"], alert["growth"])
        return pending

    def remember_latest(self, state: dict[str, Any], window: dict[str, Any]) -> None:
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

    def forget_idle(self, pstate: PartitionState, event: EventT) -> None:
        """Delete terms silent for FORGET_AFTER_WINDOWS windows: their baseline has decayed to nothing."""
        if pstate.current is None:
            return
        horizon = self.spec.boundary(pstate.current) - FORGET_AFTER_WINDOWS * self.spec.window_ms
        stale = [key for key, closed in pstate.idle.items() if closed <= horizon]
        with processing(event):
            for key in stale:
                del pstate.idle[key]
                kind, term = key.split(SEP, 1)
                self.latest[kind].pop(term, None)
                if self.table.get(key) is not None:
                    del self.table[key]

    # --- queries ---------------------------------------------------------------------

    def term_view(self, state: dict[str, Any]) -> dict[str, Any]:
        model = state["model"] or {}
        return {
            "term": state["term"],
            "kind": state["kind"],
            "label": state["label"],
            "windows": [{"start_ms": start, "count": count} for start, count in state["history"]],
            "open_panes": {start: pane[windows.COUNT] for start, pane in sorted(state["panes"].items())},
            "baseline": {"mean": round(model.get("mean", 0.0), 3), "var": round(model.get("var", 0.0), 3)},
            "alert_open": model.get("alert") is not None,
            "forecast": windows.detect.forecast(model, self.detector) if model else None,
        }

    def top(self, kind: str, k: int) -> list[dict[str, Any]]:
        """This worker's terms of the latest closed window, by count."""
        entries = list(self.latest.get(kind, {}).values())
        if not entries:
            return []
        newest = max(e["window_end"] for e in entries)
        current = [e for e in entries if e["window_end"] == newest]
        return sorted(current, key=lambda e: (-e["count"], e["term"]))[:k]


def install_trends(runtime: Runtime) -> TrendsAgent:
    agent = TrendsAgent(runtime)
    repairs = {"trends": GapRepair(runtime, "trends"), "topics": GapRepair(runtime, "trends-topics")}

    def batches(stream: StreamT, size: int) -> Any:
        # take_events is faust-streaming API that its StreamT interface does not declare.
        return stream.take_events(size, within=ROUTE_LINGER_S)  # type: ignore[attr-defined]

    # Each agent writes a table: concurrency stays 1.
    if agent.topics_on:

        @runtime.app.agent(agent.to_cluster, name="trends-topics", concurrency=1)
        async def topics(stream: StreamT) -> None:
            async for events in batches(stream, 50):
                batch = await repairs["topics"].fill(list(events))
                async with processed(runtime.commit_gate, stream, batch):
                    await agent.cluster(batch)
                    await repairs["topics"].done()

    @runtime.app.agent(agent.by_term, name="trends", concurrency=1)
    async def trends(stream: StreamT) -> None:
        async for events in batches(stream, ROUTE_BATCH):
            batch = await repairs["trends"].fill(list(events))
            async with processed(runtime.commit_gate, stream, batch):
                await agent.apply(batch)
                await repairs["trends"].done()

    @runtime.app.timer(IDLE_CHECK_S)
    async def close_idle_windows() -> None:
        # Windows closed here are published and marked closed in one transaction.
        async with gated(runtime.commit_gate):
            await agent.heartbeat()
            await agent.close_idle()

    return agent
