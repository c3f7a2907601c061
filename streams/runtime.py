"""What the agents share, typed: settings, app, topics, model, metrics, and the seams between them.

``streams.app`` (the composition root) builds one ``Runtime`` and hands it to
each agent; agents import this module, never ``streams.app``. Where one part
reads what another does, it goes through a named interface here:

- ``EnrichProgress``  written by the enrich agent; read by the trends router
                      (is posts.raw enriched to its end?) and by /health.
- ``RebalanceClock``  written by the rebalance sensor; read by gap repair and
                      the trends watermark (claims older than a rebalance are void).
- ``TrendQueries`` and ``ProfileQueries``: what the web views ask of the agents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
from faust.types import EventT, TopicT

from streams import faust_compat
from streams.commits import CommitGate
from streams.errors import InvalidPost
from streams.inference.moderation import Thresholds
from streams.inference.session import TextModel
from streams.metrics import Metrics
from streams.privacy.policy import PrivacyPolicy
from streams.records import Source, dead_letter
from streams.settings import Settings
from streams.topics import MAX_RECORD_BYTES
from streams.transactions import SourceTransactions

log = logging.getLogger(__name__)
# Keys and values stay bytes: the agents encode and decode JSON themselves (orjson).
RAW_BYTES: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


@dataclass
class EnrichProgress:
    """How far the enrich agent of this worker has got, per posts.raw partition."""

    offsets: dict[int, int] = field(default_factory=dict)  # partition -> last offset enriched
    last_batch_at: float = 0.0  # epoch seconds of the last finished batch

    def record(self, partition: int, offset: int) -> None:
        self.offsets[partition] = offset

    def enriched_through(self, partition: int) -> int:
        """The last offset of ``partition`` enriched here, -1 when none."""
        return self.offsets.get(partition, -1)

    def forget(self, partitions: set[int]) -> None:
        """Exactly-once aborted these partitions' work: they are enriched again from their last commit."""
        for partition in partitions:
            self.offsets.pop(partition, None)


@dataclass
class AgentCrashes:
    """Agents that raised: Faust restarts them, which must not pass for health (metric, log, /health)."""

    metrics: Metrics
    counts: dict[str, int] = field(default_factory=dict)
    last_at: float = 0.0  # epoch seconds of the latest crash

    async def on_error(self, agent: Any, exc: BaseException) -> None:
        """Faust's ``on_error`` hook of every agent."""
        name = str(getattr(agent, "name", agent)).rsplit(".", 1)[-1]
        self.counts[name] = self.counts.get(name, 0) + 1
        self.last_at = time.time()
        self.metrics.agent_crashes.labels(name).inc()
        log.error("agent %s crashed (%d so far): %r; Faust restarts it", name, self.counts[name], exc)

    def recent(self, now: float, within_s: float) -> bool:
        return self.last_at > 0 and now - self.last_at <= within_s


@dataclass
class RebalanceClock:
    """When the latest rebalance of this worker's group began (epoch seconds; 0 before any)."""

    started_at: float = 0.0

    def mark(self, now: float) -> None:
        self.started_at = now


class TableView(Protocol):
    """The part of a Faust table the views use."""

    name: str

    def get(self, key: Any, /) -> Any: ...


class TrendQueries(Protocol):
    table: TableView

    def top(self, kind: str, k: int) -> list[dict[str, Any]]: ...

    def term(self, kind: str, term: str) -> dict[str, Any] | None: ...

    def health(self) -> dict[str, Any]: ...

    def empty_note(self) -> str | None: ...


class ProfileQueries(Protocol):
    table: Any  # the Faust table, for app.table_route

    def profile(self, user: str) -> dict[str, Any] | None: ...


@dataclass
class Runtime:
    """What the agents share. Built once by ``streams.app.build_runtime``."""

    settings: Settings
    app: faust.App
    model: TextModel
    metrics: Metrics
    privacy: PrivacyPolicy
    topics: dict[str, TopicT] = field(default_factory=dict)
    progress: EnrichProgress = field(default_factory=EnrichProgress)
    rebalances: RebalanceClock = field(default_factory=RebalanceClock)
    commit_gate: CommitGate | None = None  # exactly-once: commits wait for whole batches
    transactions: SourceTransactions | None = None  # exactly-once, once the worker has started
    # Run by the worker once Faust knows it runs in a worker, before the consumer starts.
    on_worker_start: list[Callable[[], None]] = field(default_factory=list)
    # Exactly-once: called with the partitions whose aborted work was dropped from the tables;
    # state kept in memory for those partitions (progress, schedules) is forgotten or rebuilt.
    on_roll_back: list[Callable[[set[int]], None]] = field(default_factory=list)
    crashes: AgentCrashes = field(init=False)
    # The model's per-head thresholds with the settings' in their place; resolved
    # at start, so a pair that contradicts the model fails before any post is read.
    thresholds: Thresholds = field(init=False)
    # One inference thread per worker: ONNX Runtime parallelises inside a
    # batch, and a second concurrent batch would only compete for the cores.
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "inference"))

    def __post_init__(self) -> None:
        self.thresholds = Thresholds.resolve(
            self.model.manifest.thresholds, self.settings.review_threshold, self.settings.block_threshold
        )
        self.crashes = AgentCrashes(self.metrics)
        self.on_roll_back.append(self.progress.forget)
        faust_compat.on_agent_error(self.app, self.crashes.on_error)

    def agent(self, channel: Any, name: str) -> Any:
        """``app.agent`` with one actor: our agents write tables, and with more Faust may
        commit past an in-flight event."""
        return self.app.agent(channel, name=name, concurrency=1)

    def assigned_partitions(self, topic: str) -> set[int]:
        """The partitions of ``topic`` this worker is assigned now."""
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}

    def dead_letter_for(self, event: EventT, error: InvalidPost) -> dict[str, Any]:
        """The dead-letter record of an input event (counted; user id pseudonymised)."""
        self.metrics.dead_letters.labels(error.reason.value).inc()
        original, altered = self.privacy.dead_letter_original(event.value)
        message = event.message
        source = Source(message.topic, message.partition, message.offset, int(message.timestamp * 1000))
        cut = original is not None and len(original) > self.settings.deadletter_original_bytes
        if cut:
            self.metrics.limits_hit.labels("dead_letter_original").inc()
        return dead_letter(
            error, source, original, int(time.time() * 1000), altered, self.settings.deadletter_original_bytes
        )

    def raw_topic(self, name: str) -> TopicT:
        """A pipeline topic of raw bytes (JSON written and read by the agents)."""
        s = self.settings
        config = {"max.message.bytes": str(MAX_RECORD_BYTES)}
        return self.app.topic(name, partitions=s.partitions, replicas=s.replication, config=config, **RAW_BYTES)

    def internal_topic(self, name: str, partitions: int) -> TopicT:
        """A topic between two agents of the app, of raw bytes, created by Faust."""
        return self.app.topic(name, partitions=partitions, internal=True, **RAW_BYTES)
