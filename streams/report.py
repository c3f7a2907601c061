"""``social-streams report``: an HTML report and a PNG of a time range, from the output topics.

Three charts drawn with matplotlib, on one UTC time axis: the top terms' counts
per tumbling window (a window without posts is a zero, not a line drawn across
it), with alerts circled and the forecast made at each alert dashed; posts per
time bin by sentiment (negative red, neutral grey, positive green); and posts
sent to review or block. The HTML embeds the charts and lists the alerts; the
PNG (same name, .png) is the same figure, for sharing. The default range is the
data's own.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from streams.records import iso_utc
from streams.settings import Settings
from streams.trends.lateness import LatePosts

SENTIMENT_COLORS = {"negative": "#d62728", "neutral": "#9e9e9e", "positive": "#2ca02c"}
ACTION_COLORS = {"review": "#ff9f1c", "block": "#7b2d26"}
TERM_COLORS = ("#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#393b79", "#637939")
BINS = 60
UTC = dt.UTC


@dataclass
class ReportData:
    since_ms: int | None = None  # None: from the data's first record
    until_ms: int | None = None  # None: to the data's last record
    posts: list[tuple[int, str, str]] = field(default_factory=list)  # (event ms, sentiment, action)
    windows: dict[tuple[str, str], dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    window_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    labels: dict[tuple[str, str], str] = field(default_factory=dict)  # topic id -> its label
    alerts: list[dict[str, Any]] = field(default_factory=list)
    late: LatePosts = field(default_factory=LatePosts)

    def inside(self, ts: int) -> bool:
        return (self.since_ms is None or ts >= self.since_ms) and (self.until_ms is None or ts < self.until_ms)

    def add(self, kind: str, value: dict[str, Any], record_ms: int = 0) -> None:
        """One record of the topic ``kind`` (``record_ms``: its Kafka timestamp, when it was written)."""
        if kind == "enriched":
            ts = value.get("created_at_ms", 0)
            if self.inside(ts):
                self.posts.append((ts, value["sentiment"]["label"], value["moderation"]["action"]))
                self.late.post(record_ms, ts)
        elif kind == "windows":
            self.add_window(value, record_ms)
        elif kind == "alerts" and self.inside(value["window"]["start_ms"]):
            self.alerts.append(value)

    def add_window(self, value: dict[str, Any], record_ms: int) -> None:
        if isinstance(value["window"].get("end_ms"), int):
            self.late.window(record_ms, value["window"]["end_ms"])
        if value["window"]["type"] == "tumbling" and self.inside(value["window"]["start_ms"]):
            key = (value["kind"], value["term"])
            self.windows[key][value["window"]["start_ms"]] = value["count"]
            self.window_ms[key] = int(value["window"]["size_s"] * 1000)
            if value.get("label"):
                self.labels[key] = value["label"]

    def span(self) -> tuple[int, int] | None:
        """(first, last) event time in the data, in ms."""
        times = [p[0] for p in self.posts] + [t for counts in self.windows.values() for t in counts]
        times += [a["window"]["start_ms"] for a in self.alerts]
        return (min(times), max(times)) if times else None

    def name(self, key: tuple[str, str]) -> str:
        kind, term = key
        if kind == "topic":
            return f"topic: {self.labels.get(key, term)}"
        return {"hashtag": f"#{term}", "cashtag": f"${term}"}.get(kind, term)


def read_topics(settings: Settings, data: ReportData, idle_s: float = 3.0) -> None:
    topics = {settings.topic_enriched: "enriched", settings.topic_trends: "windows", settings.topic_alerts: "alerts"}
    consumer = KafkaConsumer(**settings.connection.kafka_python(enable_auto_commit=False))
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        if not partitions:
            raise SystemExit(f"none of the topics {', '.join(topics)} exists on {settings.bootstrap}")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        last = time.monotonic()
        while any(consumer.position(tp) < end for tp, end in ends.items()) and time.monotonic() - last < idle_s:
            for messages in consumer.poll(timeout_ms=500).values():
                last = time.monotonic()
                for m in messages:
                    if m.value:
                        data.add(topics[m.topic], orjson.loads(m.value), m.timestamp)
    finally:
        consumer.close()


def zero_filled(counts: dict[int, int], window_ms: int, first: int, last: int) -> list[tuple[int, int]]:
    """(window start, count) for every window from ``first`` to ``last``: windows without posts count 0."""
    start = first - first % window_ms
    return [(t, counts.get(t, 0)) for t in range(start, last + 1, window_ms)]


def time_bins(first: int, last: int) -> tuple[list[int], int]:
    """BINS equal bins over [first, last]: their starts and their width in ms."""
    width = max(1, (last - first) // BINS + 1)
    return [first + i * width for i in range((last - first) // width + 1)], width


def _alert_kind(alert: dict[str, Any]) -> str:
    if alert.get("type") == "early_warning":
        return f"early warning, p={alert['prediction']['probability']:.2f}"
    return f"{alert['severity']} spike"


def _when(ms: int) -> float:
    """A time in matplotlib's date units (days since the epoch), from epoch ms."""
    return float(mdates.date2num(dt.datetime.fromtimestamp(ms / 1000, UTC)))


def _utc_axis(ax: Axes, bottom: bool) -> None:
    locator = mdates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if bottom:
        ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.3)


def _legend_outside(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)


def draw_trends(ax: Axes, data: ReportData, top_k: int, first: int, last: int) -> None:
    totals = Counter({key: sum(counts.values()) for key, counts in data.windows.items()})
    top = [key for key, _ in totals.most_common(top_k)]
    for i, key in enumerate(top):
        color = TERM_COLORS[i % len(TERM_COLORS)]
        series = zero_filled(data.windows[key], data.window_ms[key], first, last)
        ax.step([_when(t) for t, _ in series], [c for _, c in series], where="post", color=color, lw=1.4,
                label=data.name(key))  # fmt: skip
        for alert in (a for a in data.alerts if (a["kind"], a["term"]) == key):
            start, size = alert["window"]["start_ms"], int(alert["window"]["size_s"] * 1000)
            marker = "^" if alert.get("type") == "early_warning" else "o"
            ax.plot([_when(start)], [alert["count"]], marker, mfc="none", mec="red", mew=2, ms=9)
            ahead = [(start + size * (j + 1), f) for j, f in enumerate(alert["forecast"])]
            points = [(start, alert["count"]), *ahead]
            ax.plot([_when(t) for t, _ in points], [f for _, f in points], ls="--", color=color, lw=1)
    ax.plot([], [], "o", mfc="none", mec="red", mew=2, label="spike alert")
    ax.plot([], [], "^", mfc="none", mec="red", mew=2, label="early warning")
    ax.plot([], [], ls="--", color="black", lw=1, label="forecast at the alert")
    ax.set_title(f"Top {len(top)} trends: posts per tumbling window (windows without posts are 0)", fontsize=10)
    ax.set_ylabel("posts")
    ax.set_ylim(bottom=0)


def draw_posts(ax: Axes, data: ReportData, first: int, last: int, by: int, colors: dict[str, str], title: str) -> None:
    """Posts per time bin, stacked by the value at index ``by`` of each post (sentiment or action)."""
    starts, width = time_bins(first, last)
    counts = {label: [0] * len(starts) for label in colors}
    for post in data.posts:
        value = str(post[by])
        if value in counts:
            counts[value][min((post[0] - first) // width, len(starts) - 1)] += 1
    bottom = [0] * len(starts)
    days = width / 86_400_000
    for label, color in colors.items():
        ax.bar([_when(t) for t in starts], counts[label], width=days, bottom=bottom, align="edge", color=color,
               label=label)  # fmt: skip
        bottom = [b + c for b, c in zip(bottom, counts[label], strict=True)]
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("posts")


def figure(data: ReportData, top_k: int) -> Figure:
    fig = Figure(figsize=(11, 10), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    span = data.span()
    if span is None:
        for ax in axes:
            ax.text(0.5, 0.5, "no data in this range", ha="center", va="center", transform=ax.transAxes)
        return fig
    first, last = data.since_ms or span[0], data.until_ms or span[1]
    first, last = max(first, span[0]), min(last, span[1])
    draw_trends(axes[0], data, top_k, first, last)
    draw_posts(axes[1], data, first, last, 1, SENTIMENT_COLORS, "Posts by sentiment")
    review = {"review": ACTION_COLORS["review"], "block": ACTION_COLORS["block"]}
    draw_posts(axes[2], data, first, last, 2, review, "Posts sent to moderation (review or block)")
    for ax in axes:
        _utc_axis(ax, bottom=ax is axes[-1])
        _legend_outside(ax)
    return fig


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def render_html(data: ReportData, png: bytes) -> str:
    span = data.span()
    first = iso_utc(data.since_ms or span[0]) if span else "-"
    last = iso_utc(data.until_ms or span[1]) if span else "-"
    alert_rows = "".join(
        f"<tr><td>{html.escape(a['window']['start'])}</td><td>{html.escape(a['kind'])}</td>"
        f"<td>{html.escape(data.name((a['kind'], a['term'])))}</td><td>{a['count']}</td>"
        f"<td>{a['baseline']['mean']}</td><td>x{a['growth']}</td><td>{_alert_kind(a)}</td>"
        f"<td>{', '.join(f'{f:.0f}' for f in a['forecast'])}</td></tr>"
        for a in sorted(data.alerts, key=lambda a: a["window"]["start_ms"])
    )
    flagged = sum(1 for p in data.posts if p[2] != "allow")
    note = data.late.note()
    late = f'\n<p id="late"><b>{html.escape(note)}</b></p>' if note else ""
    image = base64.b64encode(png).decode()
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Social Streams report</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>Social Streams report</h1>
<p>{first} to {last} (UTC): {len(data.posts)} enriched posts, {len(data.alerts)} trend alerts,
{flagged} posts flagged for review or block.</p>{late}
<img id="charts" alt="trends, sentiment and moderation over time" src="data:image/png;base64,{image}">
<h3>Alerts</h3><table><tr><th>window</th><th>kind</th><th>term</th><th>count</th><th>baseline</th><th>growth</th>
<th>alert</th><th>forecast</th></tr>{alert_rows}</table></body></html>
"""


def run_report(settings: Settings, since_ms: int | None, until_ms: int | None, out: Path, top_k: int) -> int:
    data = ReportData(since_ms, until_ms)
    read_topics(settings, data)
    png = png_bytes(figure(data, top_k))
    out.write_text(render_html(data, png), encoding="utf-8")
    out.with_suffix(".png").write_bytes(png)
    print(f"{out} and {out.with_suffix('.png')}: {len(data.posts)} posts, {len(data.windows)} terms, "
          f"{len(data.alerts)} alerts")  # fmt: skip
    note = data.late.note()
    if note:
        print(note)
    return 0
