"""Read an output topic and show it: pretty for people, JSON lines for machines."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.text import Text

SENTIMENT_STYLE = {"positive": "green", "neutral": "white", "negative": "red"}
ACTION_STYLE = {"allow": "dim", "review": "yellow", "block": "bold red"}


def records(
    bootstrap: str,
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
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            raise SystemExit(f"topic {topic!r} does not exist on {bootstrap}")
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


def render(key: bytes | None, value: Any) -> Text:
    """One line per record, in the record's own terms."""
    key_text = key.decode("utf-8", "replace") if key else "-"
    line = Text(f"{key_text[:24]:<24} ", style="cyan")
    if not isinstance(value, dict):
        return line.append("tombstone" if value is None else str(value)[:120])
    if "sentiment" in value:
        label = value["sentiment"]["label"]
        action = value.get("moderation", {}).get("action", "?")
        line.append(f"{label:<8} ", style=SENTIMENT_STYLE.get(label, ""))
        line.append(f"{value.get('emotion', {}).get('label', ''):<9} ")
        line.append(f"{action:<6} ", style=ACTION_STYLE.get(action, ""))
        line.append(f"{value.get('language', ''):<4}")
        words = ", ".join(c["token"] for c in value.get("explanation", [])[:3])
        line.append(value.get("text", "")[:80].replace("\n", " "))
        return line.append(f"  [{words}]", style="dim")
    if "error" in value:
        error = value["error"]
        line.append(f"{error['stage']}/{error['type']} ", style="red")
        return line.append(error["message"][:100])
    return line.append(orjson.dumps(value).decode()[:160])


def tail(bootstrap: str, topic: str, as_json: bool, from_beginning: bool, limit: int | None, idle: float | None) -> int:
    console = Console(highlight=False)
    count = 0
    for key, value in records(bootstrap, topic, from_beginning, limit, idle):
        count += 1
        if as_json:
            sys.stdout.write(
                orjson.dumps({"key": key.decode("utf-8", "replace") if key else None, "value": value}).decode() + "\n"
            )
            sys.stdout.flush()
        else:
            console.print(render(key, value), no_wrap=True, overflow="ellipsis")
    return count
