"""``social-streams report``: an HTML report of a time range, from the output topics.

Trend curves of the top terms with their alerts and forecasts marked, the
sentiment mix over time and the moderation rates, drawn as inline SVG (one
self-contained file, no plotting library).
"""

from __future__ import annotations

import html
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from streams.records import iso_utc
from streams.settings import Settings

WIDTH, HEIGHT, PAD = 900, 260, 40
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
BINS = 60


@dataclass
class ReportData:
    since_ms: int
    until_ms: int
    posts: list[tuple[int, str, str]] = field(default_factory=list)  # (event ms, sentiment, action)
    windows: dict[tuple[str, str], dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, value: dict[str, Any]) -> None:
        if kind == "enriched":
            ts = value.get("created_at_ms", 0)
            if self.since_ms <= ts < self.until_ms:
                self.posts.append((ts, value["sentiment"]["label"], value["moderation"]["action"]))
        elif kind == "windows" and value["window"]["type"] == "tumbling":
            if self.since_ms <= value["window"]["start_ms"] < self.until_ms:
                self.windows[(value["kind"], value["term"])][value["window"]["start_ms"]] = value["count"]
        elif kind == "alerts" and self.since_ms <= value["window"]["start_ms"] < self.until_ms:
            self.alerts.append(value)


def read_topics(settings: Settings, data: ReportData, idle_s: float = 3.0) -> None:
    topics = {settings.topic_enriched: "enriched", settings.topic_trends: "windows", settings.topic_alerts: "alerts"}
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap.split(","), enable_auto_commit=False)
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
                        data.add(topics[m.topic], orjson.loads(m.value))
    finally:
        consumer.close()


def _scale(values: list[float], low: float, high: float, out_low: float, out_high: float) -> list[float]:
    span = (high - low) or 1.0
    return [out_low + (v - low) / span * (out_high - out_low) for v in values]


def svg_chart(title: str, series: dict[str, list[tuple[float, float]]], marks: list[tuple[float, float, str]],
              dashed: dict[str, list[tuple[float, float]]] | None = None) -> str:  # fmt: skip
    """A line chart: solid series, dashed series (forecasts), circles with titles (alerts)."""
    dashed = dashed or {}
    points = [p for s in (*series.values(), *dashed.values()) for p in s] + [(x, y) for x, y, _ in marks]
    if not points:
        return f"<h3>{html.escape(title)}</h3><p>no data in this range</p>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y1 = min(xs), max(xs), max(max(ys), 1e-9)

    def path(line: list[tuple[float, float]]) -> str:
        px = _scale([p[0] for p in line], x0, x1, PAD, WIDTH - PAD)
        py = _scale([p[1] for p in line], 0, y1, HEIGHT - PAD, PAD)
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(px, py, strict=True))

    parts = [f'<svg width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg" font-size="11">',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>',
             f'<text x="{PAD}" y="{PAD - 8}">max {y1:.3g}</text>',
             f'<text x="{PAD}" y="{HEIGHT - 10}">{iso_utc(int(x0))}</text>',
             f'<text x="{WIDTH - PAD - 150}" y="{HEIGHT - 10}">{iso_utc(int(x1))}</text>']  # fmt: skip
    for i, (name, line) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path(line)}"/>')
        parts.append(f'<text x="{WIDTH - PAD + 4 - 120}" y="{PAD + 14 * i}" fill="{color}">{html.escape(name)}</text>')
        if name in dashed:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-dasharray="4 3" points="{path(dashed[name])}"/>'
            )
    for x, y, label in marks:
        cx, cy = _scale([x], x0, x1, PAD, WIDTH - PAD)[0], _scale([y], 0, y1, HEIGHT - PAD, PAD)[0]
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="none" stroke="red" stroke-width="2">'
                     f"<title>{html.escape(label)}</title></circle>")  # fmt: skip
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def render_html(data: ReportData, top_k: int) -> str:
    totals = Counter({key: sum(counts.values()) for key, counts in data.windows.items()})
    top = [key for key, _ in totals.most_common(top_k)]
    names = {key: f"{key[0]}:{key[1]}" for key in top}
    trend_series = {names[k]: [(float(x), float(y)) for x, y in sorted(data.windows[k].items())] for k in top}
    forecasts: dict[str, list[tuple[float, float]]] = {}
    marks = []
    for alert in data.alerts:
        key = (alert["kind"], alert["term"])
        start, size = alert["window"]["start_ms"], alert["window"]["size_s"] * 1000
        marks.append(
            (
                float(start),
                float(alert["count"]),
                f"{names.get(key, alert['term'])} x{alert['growth']} {alert['severity']}",
            )
        )
        if key in names:
            steps = [(start + size * (i + 1), f) for i, f in enumerate(alert["forecast"])]
            forecasts[names[key]] = forecasts.get(names[key], []) + [(float(start), float(alert["count"]))] + steps
    sentiment, moderation = _binned(data)
    alert_rows = "".join(
        f"<tr><td>{html.escape(a['window']['start'])}</td><td>{html.escape(a['kind'])}</td>"
        f"<td>{html.escape(a.get('label') or a['term'])}</td><td>{a['count']}</td><td>{a['baseline']['mean']}</td>"
        f"<td>x{a['growth']}</td><td>{a['severity']}</td><td>{', '.join(f'{f:.0f}' for f in a['forecast'])}</td></tr>"
        for a in sorted(data.alerts, key=lambda a: a["window"]["start_ms"])
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Social Streams report</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>Social Streams report</h1>
<p>{iso_utc(data.since_ms)} to {iso_utc(data.until_ms)}: {len(data.posts)} enriched posts,
{len(data.alerts)} trend alerts, {sum(1 for p in data.posts if p[2] != 'allow')} posts flagged for review or block.</p>
{svg_chart(f"Top {len(top)} trends, count per tumbling window (circles: alerts; dashed: forecasts at the alert)",
           trend_series, marks, forecasts)}
{svg_chart("Sentiment over time (share of posts)", sentiment, [])}
{svg_chart("Moderation over time (share of posts)", moderation, [])}
<h3>Alerts</h3><table><tr><th>window</th><th>kind</th><th>term</th><th>count</th><th>baseline</th><th>growth</th>
<th>severity</th><th>forecast</th></tr>{alert_rows}</table></body></html>
"""  # fmt: skip


def _binned(data: ReportData) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    if not data.posts:
        return {}, {}
    low, high = min(p[0] for p in data.posts), max(p[0] for p in data.posts) + 1
    width = max(1, (high - low) // BINS + 1)
    bins: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for post in data.posts:
        bins[(post[0] - low) // width].append(post)
    sentiment: dict[str, list[tuple[float, float]]] = defaultdict(list)
    moderation: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for index in sorted(bins):
        posts, x = bins[index], float(low + index * width)
        for label in ("positive", "neutral", "negative"):
            sentiment[label].append((x, sum(1 for p in posts if p[1] == label) / len(posts)))
        for action in ("review", "block"):
            moderation[action].append((x, sum(1 for p in posts if p[2] == action) / len(posts)))
    return dict(sentiment), dict(moderation)


def run_report(settings: Settings, since_ms: int, until_ms: int, out: Path, top_k: int) -> int:
    data = ReportData(since_ms, until_ms)
    read_topics(settings, data)
    out.write_text(render_html(data, top_k), encoding="utf-8")
    print(f"{out}: {len(data.posts)} posts, {len(data.windows)} terms, {len(data.alerts)} alerts")
    return 0
