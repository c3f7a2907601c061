"""Remember post ids for a while, so a replayed post is published once.

The table maps post id -> [first seen epoch ms, partition]. It lives in the
partition of the input message, so duplicates are caught when producers key
posts by id (the replay command does; Kafka's partitioner then sends every
copy to one partition). An id is remembered only after its outputs are
acknowledged: a crash between the two repeats a post, it never loses one.
"""

from __future__ import annotations

import faust
from faust.types import EventT

from streams.faust_compat import delete_from_partition, processing


def expired_ids(
    entries: list[tuple[str, list[int] | None]], now_ms: int, ttl_ms: int, partitions: set[int]
) -> list[tuple[str, int]]:
    """(post id, partition) of the entries of ``partitions`` first seen more than ``ttl_ms`` ago."""
    return [
        (key, value[1])
        for key, value in entries
        if value is not None and value[1] in partitions and now_ms - value[0] > ttl_ms
    ]


class SeenPosts:
    def __init__(self, app: faust.App, partitions: int, ttl_s: int, name: str = "seen-post-ids") -> None:
        self.ttl_ms = ttl_s * 1000
        self.table = app.Table(
            name,
            default=None,
            partitions=partitions,
            help="post id -> [first seen ms, partition], for de-duplication",
        )

    def seen(self, post_id: str) -> bool:
        return self.table.get(post_id) is not None

    def remember(self, event: EventT, post_id: str, now_ms: int) -> None:
        with processing(event):
            self.table[post_id] = [now_ms, event.message.partition]

    def purge(self, now_ms: int, partitions: set[int]) -> int:
        """Forget ids older than the time-to-live; return how many.

        Only the ``partitions`` this worker owns: the table also holds standby copies of
        others, whose changelog partitions are their owners' to write (and, in exactly-once
        mode, in their owners' transactions).
        """
        expired = expired_ids(list(self.table.data.items()), now_ms, self.ttl_ms, partitions)
        for key, partition in expired:
            # Outside any event: the tombstone goes to the partition the id was remembered in.
            delete_from_partition(self.table, key, partition)
        return len(expired)
