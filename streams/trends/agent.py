"""The trends agents: term windows, spike alerts and forecasts on event time.

The stages, each in its own module, in flow order:

``route``     (streams.trends.route; called by the fan-out agent on posts.enriched)
              mentions keyed by term to the internal ``trends-by-term`` topic, posts
              with an embedding to ``trends-to-cluster``, watermarks to every partition.
``cluster``   (streams.trends.cluster; agent ``trends-topics``, one partition)
              assigns each post a semantic topic and sends the topic mentions on.
``windows``   (here; agent ``trends``) adds mentions to the term's panes (table
              ``trend-terms``), and when the scheduler (streams.trends.scheduler)
              says the watermark has passed a window's end plus the grace, publishes
              the final window to trends.windows and any alert it opens to
              trends.alerts, then saves the term's state.
``query``     (streams.trends.query) what the web views read.

Every mention carries its source partition and offset, and a term's state
remembers the last offset applied per source, in the same table value as the
counts: a batch re-sent after a crash is not counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import orjson
from faust.types import EventT, StreamT, TopicT

from streams import faust_compat
from streams.batches import batch_loop
from streams.changelog import BatchedChangelog
from streams.commits import gated
from streams.faust_compat import processing
from streams.runtime import Runtime
from streams.topics import compaction_config, visual_by_term_topic
from streams.trends import windows
from streams.trends.cluster import CLUSTER_SOURCE, ClusterStage
from streams.trends.detect import DetectorSettings, tsb_smoothing
from streams.trends.policy import AlertPolicy, Budget
from streams.trends.query import LatestWindows, TrendClock, TrendsQuery
from streams.trends.route import TermSender, TrendsRouter
from streams.trends.scheduler import WindowScheduler
from streams.trends.state import Mention, TermState, decode_by_term, is_terms, is_watermark, new_state, split_key
from streams.trends.windows import WindowSpec

log = logging.getLogger(__name__)
ROUTE_BATCH = 500
ROUTE_LINGER_S = 0.2
CLUSTER_BATCH = 50
# Terms counted, saved, closed or forgotten between two turns of the event loop: a few ms of work.
CLOSE_CHUNK = 64
IDLE_CHECK_S = 1.0
# A caught-up claim older than this no longer counts: the heartbeat renews it every few seconds.
CAUGHT_UP_TTL_S = 5.0


def window_spec(runtime: Runtime) -> WindowSpec:
    s = runtime.settings
    return WindowSpec(s.trend_window_s * 1000, s.trend_hop_size_s * 1000, s.trend_hop_s * 1000, s.trend_grace_s * 1000)


def detector_settings(runtime: Runtime) -> DetectorSettings:
    s = runtime.settings
    tsb_size, tsb_probability = tsb_smoothing(s.trend_window_s)
    return DetectorSettings(
        alpha=s.trend_alpha,
        z=s.trend_alert_z,
        z_sustained=s.trend_alert_z_sustained,
        ratio=s.trend_alert_ratio,
        min_count=s.trend_alert_min_count,
        horizon=s.trend_forecast_windows,
        tsb_size=tsb_size,
        tsb_probability=tsb_probability,
    )


def alert_policy(runtime: Runtime) -> AlertPolicy:
    s = runtime.settings
    return AlertPolicy(
        min_users=s.trend_alert_min_users,
        warning_min_count=s.trend_warning_min_count,
        warning_threshold=s.trend_warning_threshold,
        common_growth=s.trend_common_growth,
        spikes_per_hour=s.trend_spikes_per_hour,
        warnings_per_hour=s.trend_warnings_per_hour,
        partitions=s.partitions,
    )


class WindowsStage:
    """The ``trends`` agent's work: mentions into panes, final windows out.

    Two instances run: the text terms' (sources: the posts.enriched partitions and the topic
    clusterer) and the image tags' (``visual``; sources: the media agents' input partitions),
    each with its own input, table and watermarks, so slow images never hold text windows back.
    """

    def __init__(
        self, runtime: Runtime, by_term: TopicT, latest: LatestWindows, sources: list[str], table: str = "trend-terms"
    ) -> None:
        s = runtime.settings
        self.rt = runtime
        self.metrics = runtime.metrics
        self.spec = window_spec(runtime)
        self.detector = detector_settings(runtime)
        self.policy = alert_policy(runtime)
        self.budgets: dict[int, Budget] = {}  # per trends partition, for the hours of event time it sends in
        self.by_term = by_term
        self.latest = latest
        self.table = runtime.app.Table(
            table,
            default=None,
            partitions=s.partitions,
            extra_topic_configs=compaction_config(s),
            help="kind+term -> panes, applied offsets, detector and history",
        )
        # One changelog batch per partition for a batch's writes: one write per term it touches.
        self.changelog = BatchedChangelog(runtime, self.table)
        self.windows_out = runtime.raw_topic(s.topic_trends)
        self.alerts_out = runtime.raw_topic(s.topic_alerts)
        self.sources = sources
        self.schedulers: dict[int, WindowScheduler] = {}
        # The latest watermark event of each partition: table writes of closes go to its partition.
        self.marks: dict[int, EventT] = {}
        self.lock = asyncio.Lock()  # the agent and the idle timer both close windows
        self.clock = TrendClock(lambda: {p: sched.current for p, sched in self.schedulers.items()})
        runtime.on_roll_back.append(self.forget_schedules)

    def scheduler(self, partition: int) -> WindowScheduler:
        scheduler = self.schedulers.get(partition)
        if scheduler is None:
            s = self.rt.settings
            scheduler = WindowScheduler.start(self.spec, self.sources, s.trend_idle_s, time.monotonic())
            self.schedulers[partition] = scheduler
            self.reindex(partition, scheduler)
        return scheduler

    def reindex(self, partition: int, scheduler: WindowScheduler) -> None:
        """Schedule the terms of a partition taken up (their state came from the changelog)."""
        terms = 0
        for key, value in list(self.table.data.items()):
            if value is not None and value["p"] == partition:
                scheduler.on_batch(key, value)
                terms += 1
        log.info("%s partition %d taken up: %d term(s) scheduled from the table", self.table.name, partition, terms)

    def forget_schedules(self, partitions: set[int]) -> None:
        """Exactly-once aborted these partitions' work: schedule them again from their recovered terms."""
        for partition in partitions:
            self.schedulers.pop(partition, None)
            self.marks.pop(partition, None)

    def drop_revoked(self) -> None:
        name = self.by_term.get_topic_name()
        assigned = {tp.partition for tp in self.rt.app.consumer.assignment() if tp.topic == name}
        for partition in set(self.schedulers) - assigned:
            del self.schedulers[partition]
            self.marks.pop(partition, None)

    def caught_up_since(self) -> float:
        # Claims made before the latest rebalance are void: the partition may have moved since.
        return max(time.time() - CAUGHT_UP_TTL_S, self.rt.rebalances.started_at)

    async def apply(self, events: list[Any]) -> None:
        async with self.lock, self.changelog.batch():
            await self._apply(events)

    async def close_idle(self) -> None:
        """Close what a paused stream lets close: the watermark moves when every source is idle."""
        async with self.lock, self.changelog.batch():
            self.drop_revoked()
            now = time.monotonic()
            for partition, scheduler in list(self.schedulers.items()):
                mark = self.marks.get(partition)
                if mark is not None:
                    scheduler.advance(now, self.caught_up_since())
                    await self.close_due(partition, mark)

    async def _apply(self, events: list[Any]) -> None:
        self.drop_revoked()
        touched: dict[str, tuple[TermState, EventT]] = {}
        marked: set[int] = set()
        late: Counter[int] = Counter()
        repeats: Counter[int] = Counter()
        now = time.monotonic()
        work = 0  # terms since the event loop last ran: a batch holds thousands
        for event in events:
            if work >= CLOSE_CHUNK:
                work = 0
                await asyncio.sleep(0)
            partition = event.message.partition
            scheduler = self.scheduler(partition)
            message = decode_by_term(event.value)
            if is_watermark(message):
                scheduler.on_watermark(message, now, self.caught_up_since())
                self.marks[partition] = event
                marked.add(partition)
                continue
            # Combined terms (the route), or one term keyed (the topic clusterer).
            terms = message["t"] if is_terms(message) else {(event.key or b"").decode(): message["m"]}
            work += len(terms)
            for key, mentions in terms.items():
                state = touched[key][0] if key in touched else self.table.get(key)
                if state is None:
                    state = new_state(*split_key(key), partition)
                if not is_terms(message) and "label" in message:
                    state["label"] = message["label"]
                outcomes = self.add_mentions(state, mentions, scheduler.current)
                late[partition] += outcomes["late"]
                repeats[partition] += outcomes["duplicate"]
                touched[key] = (state, event)
        self.report(late, repeats, events)
        for index, (key, (state, event)) in enumerate(touched.items()):
            if index and index % CLOSE_CHUNK == 0:
                await asyncio.sleep(0)
            with processing(event):
                self.table[key] = state
            owner = self.schedulers.get(event.message.partition)
            if owner is not None:  # None: rolled back meanwhile, scheduled again from the table
                owner.on_batch(key, state)
        for partition in marked:
            mark = self.marks.get(partition)
            if mark is not None and partition in self.schedulers:
                await self.close_due(partition, mark)

    def add_mentions(self, state: TermState, mentions: list[list[Any]], watermark: int | None) -> Counter[str]:
        """Add the mentions to the term's panes; how many were added, late (their window had
        closed) and repeats (their source offset was applied already)."""
        outcomes: Counter[str] = Counter(windows.add(state, Mention.from_wire(raw), self.spec, watermark)
                                         for raw in mentions)  # fmt: skip
        for outcome, count in outcomes.items():
            self.metrics.trend_mentions.labels(outcome).inc(count)
        self.clock.count(outcomes)
        return outcomes

    def report(self, late: Counter[int], repeats: Counter[int], events: list[Any]) -> None:
        """Say what a batch did not count. Late mentions: their windows were published without
        them. Repeats are expected after an at-least-once restart; with exactly-once a
        read_committed reader never sees a mention twice, so a repeat there means a term's
        state went ahead of its committed input and is worth a warning."""
        for partition, count in late.items():
            if count:
                log.warning("%d mention(s) on trends partition %d came after their window closed (watermark %s)",
                            count, partition, self.schedulers[partition].current)  # fmt: skip
        level = logging.WARNING if self.rt.settings.guarantee == "exactly_once" else logging.INFO
        for partition, count in repeats.items():
            if count:
                offsets = [e.message.offset for e in events if e.message.partition == partition]
                tp = events[0].message.tp._replace(partition=partition)
                log.log(level, "%d mention(s) on trends partition %d (offsets %d-%d) were repeats of source "
                        "offsets already counted, not counted again; consumer: %s", count, partition,
                        min(offsets), max(offsets), faust_compat.acked_offsets(self.rt.app.consumer, tp))  # fmt: skip

    async def close_due(self, partition: int, event: EventT) -> None:
        """Close and publish the windows the partition's watermark has passed.

        A watermark that jumps (a replay of old posts followed by live ones, or a source
        idle for hours) closes every term at once: tens of thousands of them. They are
        closed ``CLOSE_CHUNK`` at a time, letting the event loop run between chunks, so
        the other agents (enrichment first) are not held back for seconds. The alerts
        of all of them go through the budget together (the strongest first), and are
        sent before any term's state is saved: a crash in between sends them again,
        never loses them.
        """
        scheduler = self.schedulers[partition]
        watermark = scheduler.current
        if watermark is None:
            return
        self.metrics.trend_watermark_lag.labels(str(partition)).set(max(0.0, time.time() - watermark / 1000))
        due = scheduler.on_notify()
        try:
            closed = await self.close_terms(scheduler, watermark, due)
            windows.share_of_voice([(state, result) for _, state, result in closed])
            with processing(event):  # exactly-once: alerts go out in the transaction of their partition
                await asyncio.gather(*await self.send_alerts(partition, closed))
            for start in range(0, len(closed), CLOSE_CHUNK):
                await self.save_closed(scheduler, closed[start : start + CLOSE_CHUNK], event)
                if start + CLOSE_CHUNK < len(closed):
                    await asyncio.sleep(0)
        except BaseException:
            self.reschedule(scheduler, due)  # taken off the schedule: due again from their saved state
            raise
        await self.forget_idle(scheduler, event)

    async def close_terms(
        self, scheduler: WindowScheduler, watermark: int, keys: list[str]
    ) -> list[tuple[str, TermState, windows.Closed]]:
        """Close these terms' due windows (in memory: nothing is sent or saved yet)."""
        closed = []
        for start in range(0, len(keys), CLOSE_CHUNK):
            for key in keys[start : start + CLOSE_CHUNK]:
                state = self.table.get(key)
                if state is not None:
                    result = windows.close(state, watermark, self.spec, self.detector, scheduler.warm, self.policy)
                    closed.append((key, state, result))
            if start + CLOSE_CHUNK < len(keys):
                await asyncio.sleep(0)
        return closed

    async def save_closed(
        self, scheduler: WindowScheduler, closed: list[tuple[str, TermState, windows.Closed]], event: EventT
    ) -> None:
        """Publish these terms' final windows, then save each term's state."""
        pending: list[Any] = []
        with processing(event):  # exactly-once: windows go out in the transaction of their partition
            for _, state, result in closed:
                pending += await self.publish_windows(state, result)
        await asyncio.gather(*pending)
        with processing(event):
            for key, state, _ in closed:
                self.table[key] = state
        for key, state, _ in closed:
            scheduler.on_batch(key, state)

    def reschedule(self, scheduler: WindowScheduler, keys: list[str]) -> None:
        for key in keys:
            state = self.table.get(key)
            if state is not None:
                scheduler.on_batch(key, state)

    async def publish_windows(self, state: TermState, result: windows.Closed) -> list[Any]:
        s = self.rt.settings
        kind, term, label = state["kind"], state["term"], state["label"]
        pending = []
        for window in result.windows:
            if window["type"] == "tumbling":
                self.latest.remember(state, window)
            least = s.trend_min_count if window["type"] == "tumbling" else s.trend_hop_min_count
            if window["count"] < least and kind != "entity":  # a watched entity: every window
                continue
            record = windows.window_record(kind, term, label, window)
            pending.append(await self.windows_out.send(key=term.encode(), value=orjson.dumps(record)))
            self.metrics.trend_windows.labels(window["type"]).inc()
        return pending

    async def send_alerts(self, partition: int, closed: list[tuple[str, TermState, windows.Closed]]) -> list[Any]:
        """The alerts the budget lets through, strongest first; the others counted."""
        states = {}
        candidates = []
        for _, state, result in closed:
            for alert in result.alerts:
                states[id(alert)] = state
                candidates.append(alert)
        budget = self.budgets.setdefault(partition, self.policy.new_budget())
        sent, suppressed = budget.admit(candidates)
        for alert in suppressed:
            self.metrics.trend_alerts_suppressed.labels(alert["type"], alert["kind"]).inc()
        pending = []
        for alert in sent:
            state = states[id(alert)]
            kind, term, label = state["kind"], state["term"], state["label"]
            record = windows.alert_record(kind, term, label, alert)
            pending.append(await self.alerts_out.send(key=term.encode(), value=orjson.dumps(record)))
            if alert["type"] == "early_warning":
                self.metrics.trend_warnings.inc()
                log.info("early warning: %s %r, p=%.2f it trends within the hour", kind, term,
                         alert["prediction"]["probability"])  # fmt: skip
                continue
            self.metrics.trend_alerts.labels(alert["severity"], kind).inc()
            log.info("trend alert: %s %r count %d, %.1fx its baseline", kind, term, alert["count"], alert["growth"])
        return pending

    async def forget_idle(self, scheduler: WindowScheduler, event: EventT) -> None:
        """Delete terms silent for a long time: their baseline has decayed to nothing."""
        stale = scheduler.stale()
        for start in range(0, len(stale), CLOSE_CHUNK):
            with processing(event):
                for key in stale[start : start + CLOSE_CHUNK]:
                    self.latest.forget(*split_key(key))
                    if self.table.get(key) is not None:
                        del self.table[key]
            if start + CLOSE_CHUNK < len(stale):
                try:
                    await asyncio.sleep(0)
                except BaseException:
                    self.reschedule(scheduler, stale[start + CLOSE_CHUNK :])  # still idle: forgotten next time
                    raise


class Trends:
    """The trends stages of one worker, wired: what the app installs and the views query."""

    def __init__(self, runtime: Runtime) -> None:
        s = runtime.settings
        topics_on = "topic" in s.trend_kind_names
        by_term = runtime.internal_topic(f"{s.app_id}-trends-by-term", s.partitions)
        to_cluster = runtime.internal_topic(f"{s.app_id}-trends-to-cluster", 1) if topics_on else None
        sender = TermSender(by_term, s.partitions, runtime.metrics.limits_hit.labels("internal_message").inc)
        self.latest = LatestWindows()
        self.route = TrendsRouter(runtime.app, s, runtime.metrics, runtime.progress, sender, to_cluster)
        runtime.on_roll_back.append(self.route.forget)
        self.cluster = ClusterStage(runtime.app, s, to_cluster, sender) if to_cluster is not None else None
        if self.cluster is not None:
            runtime.on_roll_back.append(self.cluster.forget)
        sources = [str(p) for p in range(s.partitions)]
        self.windows = WindowsStage(runtime, by_term, self.latest, sources + ([CLUSTER_SOURCE] if topics_on else []))
        self.visual: WindowsStage | None = None
        if "visual" in s.trend_kind_names:  # image tags from the media agents, wherever they run
            visual_topic = runtime.topics[visual_by_term_topic(s.app_id)]
            self.visual = WindowsStage(runtime, visual_topic, self.latest, sources, "trend-visual")
        self.by_term = by_term
        tables = {"visual": self.visual.table} if self.visual is not None else {}
        self.query = TrendsQuery(self.windows.table, self.latest, self.windows.detector, tables, self.windows.clock)


def install_windows_agent(runtime: Runtime, stage: WindowsStage, name: str) -> None:
    """The agent that feeds a windows stage its input (it writes the stage's table: concurrency 1)."""
    loop = batch_loop(runtime, name)

    @runtime.agent(stage.by_term, name=name)
    async def windows_agent(stream: StreamT) -> None:
        await loop.run(stream, ROUTE_BATCH, ROUTE_LINGER_S, stage.apply)


def install_trends(runtime: Runtime) -> Trends:
    trends = Trends(runtime)
    app, gate = runtime.app, runtime.commit_gate

    # Each agent writes a table: concurrency stays 1.
    cluster = trends.cluster
    if cluster is not None:
        cluster_loop = batch_loop(runtime, "trends-topics")

        @runtime.agent(cluster.topic, name="trends-topics")
        async def topics(stream: StreamT) -> None:
            await cluster_loop.run(stream, CLUSTER_BATCH, ROUTE_LINGER_S, cluster.cluster)

    install_windows_agent(runtime, trends.windows, "trends")
    visual = trends.visual
    if visual is not None:
        install_windows_agent(runtime, visual, "trends-visual")

    @app.timer(IDLE_CHECK_S)
    async def close_idle_windows() -> None:
        # Windows closed here are published and marked closed in one transaction.
        async with gated(gate):
            await trends.route.heartbeat()
            if cluster is not None:
                await cluster.heartbeat()
            await trends.windows.close_idle()
            if visual is not None:
                await visual.close_idle()

    return trends
