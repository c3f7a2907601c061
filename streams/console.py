"""Read an output topic and show it: pretty for people, JSON lines for machines."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.text import Text

from streams.clients import KafkaConnection

SENTIMENT_STYLE = {"positive": "green", "neutral": "white", "negative": "red"}
ACTION_STYLE = {"allow": "dim", "review": "yellow", "block": "bold red"}


def records(
    connection: KafkaConnection,
    topic: str,
    from_beginning: bool,
    limit: int | None,
    idle_timeout_s: float | None,
    ready: threading.Event | None = None,
) -> Iterator[tuple[bytes | None, Any]]:
    """(key, decoded value) of each record; stops after ``limit`` or when idle that long.

    ``ready`` is set once the consumer is positioned, so a caller can start
    producing without missing records.
    """
    consumer = KafkaConsumer(**connection.kafka_python(enable_auto_commit=False))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            raise SystemExit(f"topic {topic!r} does not exist on {connection.bootstrap}")
        consumer.assign(partitions)
        (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*partitions)
        for partition in partitions:
            consumer.position(partition)  # resolve the seek now, not at the first poll
        if ready is not None:
            ready.set()
        seen, last = 0, time.monotonic()
        while limit is None or seen < limit:
            batch = consumer.poll(timeout_ms=500)
            if not batch:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            for message in (m for msgs in batch.values() for m in msgs):
                yield message.key, decode(message.value)
                seen += 1
                if limit is not None and seen >= limit:
                    return
    finally:
        consumer.close()


def decode(value: bytes | None) -> Any:
    if value is None:
        return None  # a tombstone
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"undecodable": value[:200].decode("utf-8", "replace")}


def _words(items: list[dict[str, Any]], limit: int = 4) -> str:
    return ", ".join(str(item["token"]) for item in items[:limit]) or "(no single word stands out)"


def _post(key_text: str, value: dict[str, Any], width: int) -> Text:
    """A post in a few lines: labels, the text wrapped to the width, the words behind the label and the flag."""
    sentiment, moderation = value["sentiment"], value.get("moderation", {})
    label, action = sentiment["label"], moderation.get("action", "?")
    supported = sentiment.get("supported", True)
    block = Text(f"{key_text[:24]} ", style="cyan")
    block.append(f"{label} ", style=SENTIMENT_STYLE.get(label, "") if supported else "dim")
    block.append(f"{value.get('emotion', {}).get('label', '')} ")
    block.append(action, style=ACTION_STYLE.get(action, ""))
    language = value.get("language", "")
    block.append(f" {language}" if supported else f" {language}: not English, labels not valid", style="dim")
    indent = "  "
    text = " ".join(str(value.get("text", "")).split())
    for line in textwrap.wrap(text, max(width - len(indent), 20)) or [""]:
        block.append(f"\n{indent}{line}")
    if supported:
        block.append(f"\n{indent}why {label}: {_words(value.get('explanation', []))}", style="dim")
    flag = moderation.get("explanation")
    if action != "allow" and flag:
        score = moderation.get("scores", {}).get(flag["head"], 0.0)
        block.append(f"\n{indent}why {action} ({flag['head']} {score:.2f}): ", style=ACTION_STYLE.get(action, ""))
        block.append(_words(flag.get("words", [])))
    return block


def _term(value: dict[str, Any]) -> str:
    term = f"{value.get('kind', '?')} {value.get('term', '?')}"
    return f"{term} ({value['label']})" if value.get("label") else term


def _window(line: Text, value: dict[str, Any]) -> Text:
    """A trend window on one line: the term, its window, count, users and mood."""
    window = value.get("window") or {}
    mix = value.get("sentiment") or {}
    mood = " ".join(f"{name[:3]} {share:.0%}" for name, share in mix.items() if isinstance(share, int | float))
    line.append(f"{_term(value)} ", style="bold")
    line.append(f"{window.get('start', '?')} +{window.get('size_s', '?')}s ", style="dim")
    line.append(f"count {value.get('count')} users {value.get('unique_users')} {mood}")
    return line.append("" if value.get("final", True) else " (open)", style="dim")


def _alert(line: Text, value: dict[str, Any]) -> Text:
    """A trend alert on one line: its type and severity, the term, and how far it is above its baseline."""
    baseline = value.get("baseline") or {}
    line.append(f"{value.get('type', 'alert')} {value.get('severity', '')} ", style="bold red")
    line.append(f"{_term(value)} ", style="bold")
    line.append(f"count {value.get('count')} vs {baseline.get('mean', 0):.1f} (score {value.get('score', 0):.1f})")
    return line.append(f" at {(value.get('window') or {}).get('start', '?')}", style="dim")


def render(key: bytes | None, value: Any, width: int = 80) -> Text:
    """A record in its own terms: an enriched post in a few lines that fit ``width``
    columns, a trend window or alert on one line, anything else as its whole JSON."""
    key_text = key.decode("utf-8", "replace") if key else "-"
    if isinstance(value, dict) and isinstance(value.get("sentiment"), dict) and "label" in value["sentiment"]:
        return _post(key_text, value, width)
    line = Text(f"{key_text[:24]:<24} ", style="cyan")
    if not isinstance(value, dict):
        return line.append("tombstone" if value is None else str(value)[:120])
    if isinstance(value.get("error"), dict) and "stage" in value["error"]:
        error = value["error"]
        line.append(f"{error['stage']}/{error['type']} ", style="red")
        return line.append(str(error["message"])[:100])
    if "term" in value and "window" in value:
        return _alert(line, value) if "severity" in value else _window(line, value)
    return line.append(orjson.dumps(value).decode())  # whole: the console folds it


def tail(
    connection: KafkaConnection, topic: str, as_json: bool, from_beginning: bool, limit: int | None, idle: float | None
) -> int:
    console = Console(highlight=False)
    count = 0
    for key, value in records(connection, topic, from_beginning, limit, idle):
        count += 1
        if as_json:
            sys.stdout.write(
                orjson.dumps({"key": key.decode("utf-8", "replace") if key else None, "value": value}).decode() + "\n"
            )
            sys.stdout.flush()
        else:
            console.print(render(key, value, console.width), overflow="fold")
    return count
