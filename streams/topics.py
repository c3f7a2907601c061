"""Every topic of the pipeline, in flow order, and their creation on the broker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from aiokafka.partitioner import murmur2
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.settings import Settings

log = logging.getLogger(__name__)
# Topics may carry a 1 MiB post and its enrichment; Kafka's default is 1 MiB. Set on every
# topic the app creates, so a broker with the default message.max.bytes takes them.
MAX_RECORD_BYTES = 8 * 1024 * 1024
# What one message between two agents may weigh: the internal topics Faust creates keep the
# broker's default message.max.bytes (1 MiB), so a message is split well before it.
INTERNAL_MESSAGE_BYTES = 512 * 1024
T = TypeVar("T")


def fitted(
    items: list[T], encode: Callable[[list[T]], bytes], max_bytes: int = INTERNAL_MESSAGE_BYTES
) -> list[tuple[list[T], bytes]]:
    """``encode(items)``, split into as many messages as it takes for each to weigh at most
    ``max_bytes``: (the items, their message) in order. One item heavier than that stays a
    message of its own."""
    value = encode(items)
    if len(value) <= max_bytes or len(items) <= 1:
        return [(items, value)]
    half = len(items) // 2
    return fitted(items[:half], encode, max_bytes) + fitted(items[half:], encode, max_bytes)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False


def key_partition(key: bytes, partitions: int) -> int:
    """The partition the producer's default partitioner gives a message with this key: a
    stage that sends many keys' records in one message sends it there."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def media_requests_topic(app_id: str) -> str:
    """The enrich agent's posts with media, for the media agents (wherever they run)."""
    return f"{app_id}-media-requests"


def profiles_by_user_topic(app_id: str) -> str:
    """The profiles agents' input: the fan-out's posts and erasures, the media agent's image tags."""
    return f"{app_id}-profiles-by-user"


def visual_by_term_topic(app_id: str) -> str:
    """The media agents' image-tag mentions and watermarks, for the visual trends stage."""
    return f"{app_id}-trends-visual-by-term"


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    return [
        TopicSpec(settings.topic_raw),
        TopicSpec(settings.topic_enriched),
        TopicSpec(settings.topic_flagged),
        TopicSpec(settings.topic_deadletter),
        TopicSpec(settings.topic_trends),
        TopicSpec(settings.topic_alerts),
        TopicSpec(settings.topic_profiles, compacted=True),
        TopicSpec(settings.topic_erasure),
        TopicSpec(settings.topic_media),
    ]


def compaction_config(settings: Settings) -> dict[str, str]:
    return {
        "cleanup.policy": "compact",
        "segment.ms": str(settings.compacted_segment_ms),
        "delete.retention.ms": str(settings.tombstone_retention_ms),
        "min.cleanable.dirty.ratio": "0.01",
    }


def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing pipeline topics; return the names created."""
    admin = KafkaAdminClient(**settings.connection.kafka_python(client_id=f"{settings.app_id}-admin"))
    try:
        existing = set(admin.list_topics())
        wanted = [spec for spec in pipeline_topics(settings) if spec.name not in existing]
        created: list[str] = []
        for spec in wanted:
            config = {"max.message.bytes": str(MAX_RECORD_BYTES)}
            config.update(compaction_config(settings) if spec.compacted else {})
            topic = NewTopic(spec.name, settings.partitions, settings.replication, topic_configs=config)
            try:
                admin.create_topics([topic])
                created.append(spec.name)
            except TopicAlreadyExistsError:  # another worker won the race
                pass
        if created:
            log.info("created topics %s with %d partition(s)", ", ".join(created), settings.partitions)
            wait_until_described(admin, created)
        return created
    finally:
        admin.close()


def wait_until_described(admin: KafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Wait until the broker lists every partition of the new topics.

    A consumer that joins its group before then is assigned nothing from them, and
    Faust does not rejoin when they appear: the worker would sit idle.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = admin.describe_topics(names)
        if all(not t.get("error_code") and t.get("partitions") for t in described):
            return
        time.sleep(0.2)
    log.warning("topics %s not fully visible after %ss", ", ".join(names), timeout_s)
