"""The Faust app built from settings, with the runtime its agents share.

``build_runtime`` creates the app, the topics, the metrics and loads the model
once; ``install_agents`` registers every agent. Nothing here runs on import,
so tests and the CLI build apps with their own settings.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import EventT, TopicT

from streams.commits import CommitGate, anchor_output_topics, guard_commits
from streams.errors import InvalidPost
from streams.inference.moderation import Thresholds
from streams.inference.session import TextModel
from streams.metrics import Metrics
from streams.privacy.policy import PrivacyPolicy
from streams.rebalance import RebalanceTimer
from streams.records import Source, dead_letter
from streams.settings import Settings

log = logging.getLogger(__name__)

# Topics may carry a 1 MB post and its enrichment; Kafka's default is 1 MB.
MAX_RECORD_BYTES = 8 * 1024 * 1024


@dataclass
class Runtime:
    """What the agents share: settings, app, topics, model, metrics."""

    settings: Settings
    app: faust.App
    model: TextModel
    metrics: Metrics
    privacy: PrivacyPolicy
    topics: dict[str, TopicT] = field(default_factory=dict)
    profiles: Any = None  # the ProfilesAgent, for the web views
    trends: Any = None  # the TrendsAgent, for the web views
    last_batch_at: float = 0.0  # epoch seconds of the last finished batch, for /health
    enriched_offsets: dict[int, int] = field(default_factory=dict)  # posts.raw partition -> last offset enriched
    rebalance_started_at: float = 0.0  # epoch seconds the latest rebalance began
    commit_gate: CommitGate | None = None  # exactly-once: commits wait for whole batches
    # One inference thread per worker: ONNX Runtime parallelises inside a
    # batch, and a second concurrent batch would only compete for the cores.
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "inference"))

    def dead_letter_for(self, event: EventT, error: InvalidPost) -> dict[str, Any]:
        """The dead-letter record of an input event (counted; user id pseudonymised)."""
        self.metrics.dead_letters.labels(error.reason.value).inc()
        original, altered = self.privacy.dead_letter_original(event.value)
        message = event.message
        source = Source(message.topic, message.partition, message.offset, int(message.timestamp * 1000))
        return dead_letter(error, source, original, int(time.time() * 1000), altered)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.settings.review_threshold, self.settings.block_threshold)


def create_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{host.strip()}" for host in settings.bootstrap.split(",")],
        store=settings.store,
        processing_guarantee=settings.guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # A killed worker's partitions wait this long before they move: heartbeats
        # go ten times per timeout so a live but busy worker is never taken for dead.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 10,
        producer_max_request_size=MAX_RECORD_BYTES,
        # A batch's outputs are sent together and awaited together: a few ms of
        # linger packs them into a few requests instead of one request each.
        producer_linger=0.005,
        consumer_max_fetch_size=MAX_RECORD_BYTES,
        web_port=settings.web_port,
        web_host="0.0.0.0",
        autodiscover=False,
    )


def raw_topic(app: faust.App, name: str, settings: Settings) -> TopicT:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        replicas=settings.replication,
        config={"max.message.bytes": str(MAX_RECORD_BYTES)},
    )


def internal_topic(app: faust.App, name: str, partitions: int) -> TopicT:
    """A topic between two agents of the app, of raw bytes, created by Faust."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=True,
    )


def build_runtime(settings: Settings, model: TextModel | None = None) -> Runtime:
    app = create_app(settings)
    privacy = PrivacyPolicy.create(settings.pseudonym_key(), settings.redact_enriched, settings.redact_flagged)
    if settings.dev_mode and not (settings.pseudonym_secret or settings.pseudonym_secret_file):
        log.warning("development mode: user ids are pseudonymised with a public key, which protects nothing")
    model = model or TextModel(settings.model_dir, settings.model_threads, settings.max_text_chars)
    runtime = Runtime(settings, app, model, Metrics(), privacy)
    for name in (settings.topic_raw, *settings.output_topics):
        runtime.topics[name] = raw_topic(app, name, settings)
    runtime.metrics.model_info.info({"text": model.manifest.tag})
    app.sensors.add(RebalanceTimer(runtime))
    if settings.guarantee == "exactly_once":
        gate = runtime.commit_gate = CommitGate()

        @app.task
        async def gate_commits() -> None:
            guard_commits(app, gate)

    install_agents(runtime)
    return runtime


def install_agents(runtime: Runtime) -> None:
    from streams.fanout import install_fanout
    from streams.ingest.agent import install_enrich
    from streams.profiles.agent import install_profiles
    from streams.trends.agent import install_trends
    from streams.web.views import install_views

    if "enrich" in runtime.settings.agent_names:
        install_enrich(runtime)
    if "profiles" in runtime.settings.agent_names:
        runtime.profiles = install_profiles(runtime)
    if "trends" in runtime.settings.agent_names:
        runtime.trends = install_trends(runtime)
    install_fanout(runtime)
    if runtime.commit_gate is not None:
        anchor_output_topics(runtime)
    install_views(runtime)
