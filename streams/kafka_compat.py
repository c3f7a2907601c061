"""Where kafka-python 3.0 needs a hand: a group member that never takes up its assignment,
and the topic ids it knows but does not publish (``topic_id``).

kafka-python 3.0's ``KafkaConsumer.poll(timeout_ms)`` runs the group join as a task it
re-awaits on the next poll when the timeout ends first. The loop that re-awaits it runs
only while ``need_rejoin()`` says so, and for a rejoin caused by new topic metadata
that answer turns False as soon as the leader has computed the assignment, while the
SyncGroup reply is still on its way. The next poll then skips the finished join: the
assignment is never applied, heartbeats stay off, and the consumer polls nothing, at
full CPU, until the broker expels it (and then again). It happens to a consumer that
subscribes before the broker has told it about its topics; measured here on 4 of 30
fresh groups. A join still owed to the caller is a rejoin needed: with that answer the
poll awaits the join task (or, when it finished unobserved, joins again).
"""

from __future__ import annotations

from typing import Any

from kafka.coordinator.consumer import ConsumerCoordinator

_PATCHED = "_streams_join_awaited"


def await_pending_joins() -> None:
    """Make every ConsumerCoordinator rejoin while a join task of its own is pending (idempotent)."""
    if getattr(ConsumerCoordinator, _PATCHED, False):
        return
    need_rejoin = ConsumerCoordinator.need_rejoin

    def need_rejoin_or_pending_join(self: Any) -> bool:
        return getattr(self, "_join_task", None) is not None or bool(need_rejoin(self))

    ConsumerCoordinator.need_rejoin = need_rejoin_or_pending_join
    setattr(ConsumerCoordinator, _PATCHED, True)


def topic_id(consumer: Any, topic: str) -> str | None:
    """The topic's id (a UUID, new each time a topic is created) from the consumer's cluster
    metadata, or None where this kafka-python or the broker does not give one. kafka-python
    keeps it only on its private client: re-check on every upgrade."""
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    found = cluster.topic_id(topic) if cluster is not None and hasattr(cluster, "topic_id") else None
    return None if found is None or int(found) == 0 else str(found)
