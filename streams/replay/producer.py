"""Send posts to ``posts.raw``: from a file, or from the synthetic generator.

Keys are post ids, so Kafka's partitioner puts every copy of a post on one
partition (where the de-duplication table finds it).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streams.clients import KafkaConnection
from streams.errors import InvalidPost
from streams.ingest.parse import parse_post
from streams.replay.malformed import malformed
from streams.replay.sources import created_at_ms, read_posts
from streams.replay.synthetic import SyntheticPosts
from streams.settings import MAX_INPUT_BYTES

MAX_REQUEST_BYTES = 8 * 1024 * 1024
SYNTHETIC_DEFAULT_COUNT = 1000
SYNTHETIC_STEP_MS = 250


@dataclass(frozen=True)
class ReplayOptions:
    file: Path | None
    limit: int | None
    rate: float | None  # posts per second, None = as fast as possible
    speedup: float | None  # replay in the posts' own time, this many times faster
    bad: int  # malformed messages mixed in evenly
    seed: int = 7
    start_ms: int | None = None  # synthetic posts' first time; None: dated so they arrive as they happen


def synthetic_dates(options: ReplayOptions, count: int, now_ms: int) -> tuple[int, int]:
    """(first post's time, step between posts), both ms, so synthetic windows fill now: at a
    rate, one step a post's share of a second from now (the posts are dated as they are sent);
    as fast as possible, the whole run in the recent past, ending now. A fixed date would
    fall behind the windows a broker has already closed, and nothing would count."""
    step_ms = max(1, round(1000 / options.rate)) if options.rate else SYNTHETIC_STEP_MS
    if options.start_ms is not None:
        return options.start_ms, step_ms
    return (now_ms, step_ms) if options.rate else (now_ms - count * step_ms, step_ms)


def key_of(value: bytes) -> bytes | None:
    try:
        post_id = orjson.loads(value).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return str(post_id).encode() if isinstance(post_id, str | int) and not isinstance(post_id, bool) else None


def source_values(options: ReplayOptions) -> Iterator[bytes]:
    if options.file is None:
        count = options.limit or SYNTHETIC_DEFAULT_COUNT
        start_ms, step_ms = synthetic_dates(options, count, int(time.time() * 1000))
        synthetic = (orjson.dumps(p) for p in SyntheticPosts(seed=options.seed, start_ms=start_ms, step_ms=step_ms))
        return itertools.islice(synthetic, count)
    values: Iterable[bytes] = read_posts(options.file)
    if options.speedup:  # own time order needs the whole file: sort by created_at
        values = sorted(values, key=lambda v: created_at_ms(v) or 0)
    return itertools.islice(iter(values), options.limit)


def with_malformed(values: list[bytes], bad: int) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) pairs: the posts keyed by id, ``bad`` malformed ones spread evenly."""
    every = max(1, len(values) // bad) if bad else 0
    sent_bad = 0
    for index, value in enumerate(values):
        if bad and index % every == 0 and sent_bad < bad:
            _, payload = malformed(sent_bad)
            yield f"bad-{sent_bad}".encode(), payload
            sent_bad += 1
        yield key_of(value), value
    while sent_bad < bad:
        _, payload = malformed(sent_bad)
        yield f"bad-{sent_bad}".encode(), payload
        sent_bad += 1


class Pacer:
    """Sleeps to keep a fixed rate, or the posts' own spacing divided by speedup."""

    def __init__(self, rate: float | None, speedup: float | None) -> None:
        self.rate, self.speedup = rate, speedup
        self.started = time.monotonic()
        self.first_ms: int | None = None
        self.count = 0

    def wait(self, value: bytes) -> None:
        self.count += 1
        target: float | None = None
        if self.rate:
            target = self.count / self.rate
        elif self.speedup:
            created = created_at_ms(value)
            if created is not None:
                self.first_ms = self.first_ms if self.first_ms is not None else created
                target = (created - self.first_ms) / 1000 / self.speedup
        if target is not None:
            delay = target - (time.monotonic() - self.started)
            if delay > 0:
                time.sleep(delay)


@dataclass(frozen=True)
class ReplaySummary:
    sent: int
    invalid: Counter[str]  # of the source's own posts, those the pipeline will dead-letter, by reason

    def describe(self, topic: str) -> str:
        """One line for the person who ran the replay."""
        line = f"sent {self.sent} messages to {topic}"
        if self.invalid:
            reasons = ", ".join(f"{reason} {count}" for reason, count in self.invalid.most_common())
            total = sum(self.invalid.values())
            line += f"; {total} of the source's lines are not valid posts ({reasons}): they go to the dead-letter topic"
        return line


def invalid_reasons(values: list[bytes]) -> Counter[str]:
    """Why each value that is no valid post will be refused (the pipeline's own rules)."""
    reasons: Counter[str] = Counter()
    for value in values:
        try:
            parse_post(value, MAX_INPUT_BYTES)
        except InvalidPost as error:
            reasons[error.reason.value] += 1
    return reasons


def replay(connection: KafkaConnection, topic: str, options: ReplayOptions, progress: bool = True) -> ReplaySummary:
    values = list(source_values(options))
    invalid = invalid_reasons(values)
    pairs = list(with_malformed(values, options.bad))
    producer = KafkaProducer(**connection.kafka_python(acks="all", linger_ms=5, max_request_size=MAX_REQUEST_BYTES))
    pacer = Pacer(options.rate, options.speedup)
    columns = (TextColumn("replay → " + topic), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("replay", total=len(pairs))
            for key, value in pairs:
                pacer.wait(value)
                producer.send(topic, key=key, value=value)
                bar.advance(task)
        producer.flush()
    finally:
        producer.close()
    return ReplaySummary(len(pairs), invalid)
