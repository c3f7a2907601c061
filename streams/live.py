"""``social-streams top``: a live view of the output topics for people at a terminal.

Throughput and model time of posts.enriched, the sentiment mix, the top trends of
the latest closed windows with a sparkline of their recent counts, the latest
spike alerts and the latest flagged posts, refreshed every second.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.console import ACTION_STYLE, SENTIMENT_STYLE
from streams.settings import Settings
from streams.trends.lateness import LatePosts

BARS = "▁▂▃▄▅▆▇█"
RATE_WINDOW_S = 10.0
SPARK_WINDOWS = 20


def sparkline(values: Iterable[float]) -> str:
    values = list(values)
    top = max(values, default=0) or 1
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1)))] for v in values)


@dataclass
class LiveState:
    """What the view shows, folded from the records as they arrive."""

    top_k: int = 10
    arrivals: deque[float] = field(default_factory=deque)  # wall times of enriched records
    model_ms: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    sentiment: Counter[str] = field(default_factory=Counter)
    posts: int = 0
    series: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)  # (kind, term) -> start -> count
    labels: dict[tuple[str, str], str] = field(default_factory=dict)
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=6))
    flagged: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=6))
    step_ms: int = 60_000  # the tumbling window size, from the records
    late: LatePosts = field(default_factory=LatePosts)

    def add(self, kind: str, value: Any, now: float, record_ms: int = 0) -> None:
        """One record of the topic ``kind`` (``record_ms``: its Kafka timestamp, when it was written)."""
        if not isinstance(value, dict):
            return
        if kind == "enriched":
            self.posts += 1
            if isinstance(value.get("created_at_ms"), int):
                self.late.post(record_ms, value["created_at_ms"])
            self.arrivals.append(now)
            self.sentiment[value.get("sentiment", {}).get("label", "?")] += 1
            self.model_ms.append(float(value.get("timing", {}).get("model_ms_per_post", 0.0)))
        elif kind == "windows" and value.get("window", {}).get("type") == "tumbling":
            key = (value["kind"], value["term"])
            self.series.setdefault(key, {})[value["window"]["start_ms"]] = value["count"]
            self.labels[key] = value.get("label") or value["term"]
            self.step_ms = int(value["window"]["size_s"] * 1000)
            if isinstance(value["window"].get("end_ms"), int):
                self.late.window(record_ms, value["window"]["end_ms"])
        elif kind == "alerts":
            self.alerts.appendleft(value)
        elif kind == "flagged":
            self.flagged.appendleft(value)

    def rate(self, now: float) -> float:
        while self.arrivals and now - self.arrivals[0] > RATE_WINDOW_S:
            self.arrivals.popleft()
        return len(self.arrivals) / RATE_WINDOW_S

    def top_trends(self) -> list[tuple[tuple[str, str], list[int]]]:
        if not self.series:
            return []
        latest = max(start for counts in self.series.values() for start in counts)
        starts = [latest - self.step_ms * i for i in reversed(range(SPARK_WINDOWS))]
        ranked = sorted(self.series.items(), key=lambda item: -item[1].get(latest, 0))[: self.top_k]
        return [(key, [counts.get(s, 0) for s in starts]) for key, counts in ranked if counts.get(latest)]

    def render(self, now: float) -> Group:
        mean_ms = sum(self.model_ms) / len(self.model_ms) if self.model_ms else 0.0
        total = sum(self.sentiment.values()) or 1
        head = Text(f"{self.rate(now):.0f} posts/s   {self.posts} posts   model {mean_ms:.1f} ms/post   ")
        for label in ("positive", "neutral", "negative"):
            head.append(f"{label} {100 * self.sentiment[label] / total:.0f}%  ", style=SENTIMENT_STYLE[label])
        trends = Table(title="Top trends (latest closed window)", expand=True)
        for column in ("kind", "term", "count", f"last {SPARK_WINDOWS} windows"):
            trends.add_column(column)
        for (kind, term), counts in self.top_trends():
            trends.add_row(kind, self.labels.get((kind, term), term)[:40], str(counts[-1]), sparkline(counts))
        alerts = Table(title="Latest alerts", expand=True)
        for column in ("window", "term", "count", "baseline", "growth", "alert", "forecast"):
            alerts.add_column(column)
        for a in self.alerts:
            alerts.add_row(a["window"]["start"][11:16], a.get("label") or a["term"], str(a["count"]),
                           f"{a['baseline']['mean']:.1f}", f"x{a['growth']:.1f}",
                           f"warning p={a['prediction']['probability']:.2f}" if a.get("type") == "early_warning"
                           else a["severity"],
                           " ".join(f"{f:.0f}" for f in a["forecast"]))  # fmt: skip
        flagged = Table(title="Latest flagged posts", expand=True)
        for column in ("action", "reasons", "text"):
            flagged.add_column(column)
        for post in self.flagged:
            action = post.get("moderation", {}).get("action", "?")
            reasons = ", ".join(post.get("moderation", {}).get("reasons", []))
            flagged.add_row(Text(action, style=ACTION_STYLE.get(action, "")), reasons, post.get("text", "")[:80])
        note = self.late.note()
        return Group(head, *([Text(note, style="yellow")] if note else []), trends, alerts, flagged)


def consumer_for(settings: Settings, topics: dict[str, str], from_beginning: bool) -> KafkaConsumer:
    consumer = KafkaConsumer(**settings.connection.kafka_python(enable_auto_commit=False))
    partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
    if not partitions:
        raise SystemExit(f"none of the topics {', '.join(topics)} exists on {settings.bootstrap}")
    consumer.assign(partitions)
    (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*partitions)
    return consumer


def run_top(settings: Settings, from_beginning: bool, duration_s: float | None, once: bool, top_k: int) -> int:
    """Refresh the view every second; ``once``: read what is there and print one snapshot."""
    topics = {
        settings.topic_enriched: "enriched",
        settings.topic_trends: "windows",
        settings.topic_alerts: "alerts",
        settings.topic_flagged: "flagged",
    }
    consumer = consumer_for(settings, topics, from_beginning or once)
    state = LiveState(top_k=top_k)
    started = time.monotonic()
    try:
        with Live(state.render(time.monotonic()), refresh_per_second=2, transient=once) as live:
            while duration_s is None or time.monotonic() - started < duration_s:
                batch = consumer.poll(timeout_ms=500)
                now = time.monotonic()
                for message in (m for msgs in batch.values() for m in msgs):
                    value = orjson.loads(message.value) if message.value else None
                    state.add(topics[message.topic], value, now, message.timestamp)
                live.update(state.render(now))
                if once and not batch:
                    break
        if once:
            live.console.print(state.render(time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0
