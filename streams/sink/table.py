"""One Delta Lake table per topic, appended exactly once per Kafka offset.

Each append is one Delta commit that holds the rows and, for every source
partition in the batch, an application transaction (``txn``) whose app id names
the partition and whose version is the last offset written. The table is its
own offset store: after a crash the sink resumes each partition after the
version the table records, so a batch is either in the table with its offsets
or not at all. Before it commits, the writer checks that the recorded version
is still the one it resumed from (a sink worker that lost a partition while
paused must not write it again).

A table also knows its source: the Kafka topic id its offsets belong to and an epoch,
kept as two more application transactions (``<app>/<topic>/source-id``, whose version is
63 bits of the topic id, and ``<app>/<topic>/source-epoch``), committed with the rows.
When the topic was re-created (another id), or holds fewer records than the table has
written, or retention deleted records the table never got, the offsets no longer mean
what the table says: ``check_source`` raises ``SourceChanged`` rather than skip or mix
rows. ``reset_source`` is the way on that keeps the old rows: a new epoch, whose transactions start from the new topic's
beginning and whose rows carry ``_source_epoch``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from streams.errors import StreamsError
from streams.sink.schema import PARTITION_COLUMN, TableSchema

log = logging.getLogger(__name__)


def id_version(topic_id: str) -> int:
    """A topic id (a UUID) as a transaction version: its low 63 bits."""
    return uuid.UUID(topic_id).int & (2**63 - 1)


class PartitionMoved(Exception):
    """The table records a later offset for a partition than this writer resumed from."""


class SourceChanged(StreamsError):
    """The topic a table's offsets belong to is no longer the topic the sink reads."""


@dataclass(frozen=True)
class LiveSource:
    """What the broker says of a partition now: the topic's id (None when the broker gives
    none) and the partition's first and next offsets."""

    topic_id: str | None
    beginning: int
    end: int


def table_name(topic: str) -> str:
    return topic.replace(".", "_").replace("-", "_")


def table_uri(root: str, topic: str) -> str:
    return f"{root.rstrip('/')}/{table_name(topic)}"


@dataclass
class TopicTable:
    root: str
    schema: TableSchema
    app: str  # the sink's name: txn app ids are "<app>/<topic>/<partition>"
    storage_options: dict[str, str] | None = None
    written: dict[int, int] = field(default_factory=dict)  # partition -> last offset in the table
    epoch: int = 0  # the source's incarnation the offsets belong to
    source_id: int | None = None  # its topic id as ``id_version``; None when not recorded

    @property
    def uri(self) -> str:
        return table_uri(self.root, self.schema.topic)

    def app_id(self, partition: int) -> str:
        base = f"{self.app}/{self.schema.topic}/{partition}"
        return base if self.epoch == 0 else f"{base}/epoch-{self.epoch}"

    def _open(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def resume_offset(self, partition: int) -> int | None:
        """The next offset to read for a partition, or None when the table has none of it."""
        table = self._open()
        version = table.transaction_version(self.app_id(partition)) if table is not None else None
        if version is None:
            self.written.pop(partition, None)
            return None
        self.written[partition] = int(version)
        return int(version) + 1

    def load_source(self) -> None:
        """The recorded source (none for a table not yet written, or written before sources were)."""
        table = self._open()
        base = f"{self.app}/{self.schema.topic}"
        self.source_id = table.transaction_version(f"{base}/source-id") if table is not None else None
        epoch = table.transaction_version(f"{base}/source-epoch") if table is not None else None
        self.epoch = int(epoch or 0)

    def source_transactions(self) -> list[Transaction]:
        base = f"{self.app}/{self.schema.topic}"
        recorded = [Transaction(f"{base}/source-epoch", self.epoch)]
        return recorded + ([Transaction(f"{base}/source-id", self.source_id)] if self.source_id is not None else [])

    def check_source(self, partition: int, live: LiveSource) -> int | None:
        """The offset to resume ``partition`` at, or SourceChanged saying why the table's offsets
        do not belong to the topic as it is now (one line, naming the ways on)."""
        self.load_source()
        resume = self.resume_offset(partition)
        where = f"{self.uri} (from {self.schema.topic}[{partition}])"
        ways = "start a new table (another STREAMS_LAKE_URI) or run the sink with --reset-source to {}"
        if self.recreated(live):
            raise SourceChanged(
                f"{where}: the topic was re-created (its id is now {live.topic_id}, the table's offsets are of "
                "another): " + ways.format("go on from the new topic's start, the old rows kept")
            )
        if resume is not None and resume > live.end:
            raise SourceChanged(
                f"{where}: the table has offsets up to {resume - 1} but the topic ends at {live.end} (re-created "
                "or truncated): " + ways.format("go on from the topic's start, the old rows kept")
            )
        if resume is not None and resume < live.beginning:
            raise SourceChanged(
                f"{where}: offsets {resume}..{live.beginning - 1} were deleted by retention before the sink "
                "wrote them: " + ways.format(f"go on from offset {live.beginning}, the gap left as it is")
            )
        return resume

    def recreated(self, live: LiveSource) -> bool:
        return self.source_id is not None and live.topic_id is not None and self.source_id != id_version(live.topic_id)

    def reset_source(self, live: LiveSource, partitions: list[int]) -> None:
        """Go on with the topic as it is now: a new epoch (whose offsets start afresh) when it is
        another topic or shorter than the table says; else only past what retention deleted."""
        self.load_source()
        beyond = any((r := self.resume_offset(p)) is not None and r > live.end for p in partitions)
        if self.recreated(live) or beyond:
            self.epoch += 1
        self.source_id = id_version(live.topic_id) if live.topic_id else self.source_id
        self._record_source()
        self.written.clear()

    def adopt_source(self, live: LiveSource) -> None:
        """Record the topic id on a table that has none (written before sources were recorded);
        a new table records it with its first rows."""
        if live.topic_id is None or self.source_id is not None:
            return
        self.source_id = id_version(live.topic_id)
        if self._open() is not None:
            self._record_source()

    def _record_source(self) -> None:
        """A commit of no rows that records the source (its transactions only)."""
        if self._open() is None:
            return
        write_deltalake(
            self.uri,
            self.schema.batch([]),
            mode="append",
            partition_by=[PARTITION_COLUMN],
            storage_options=self.storage_options,
            commit_properties=CommitProperties(app_transactions=self.source_transactions()),
            schema_mode="merge",
        )

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Append rows read from any partitions in one commit with their offsets; returns rows written."""
        if not rows:
            return 0
        last: dict[int, int] = {}
        first: dict[int, int] = {}
        for row in rows:
            last[row["_partition"]] = max(last.get(row["_partition"], -1), row["_offset"])
            first[row["_partition"]] = min(first.get(row["_partition"], row["_offset"]), row["_offset"])
        self._check_continues(first)
        self._check_not_moved(last)
        transactions = [Transaction(self.app_id(p), offset) for p, offset in sorted(last.items())]
        transactions += self.source_transactions()
        for row in rows:
            row["_source_epoch"] = self.epoch
        write_deltalake(
            self.uri,
            self.schema.batch(rows),
            mode="append",
            partition_by=[PARTITION_COLUMN],
            storage_options=self.storage_options,
            commit_properties=CommitProperties(app_transactions=transactions),
            # A table written before rows carried their source epoch gains the column (null in old rows).
            schema_mode="merge",
        )
        self.written.update(last)
        return len(rows)

    def _check_continues(self, first: dict[int, int]) -> None:
        """Offsets only go forward within a source: records at or below what the table holds mean
        the consumer was reset onto another incarnation of the topic, whose rows must not mix in."""
        for partition, offset in first.items():
            written = self.written.get(partition)
            if written is not None and offset <= written:
                raise SourceChanged(
                    f"{self.uri} (from {self.schema.topic}[{partition}]): offsets went back from {written} to "
                    f"{offset}: the topic was re-created or truncated; start a new table (another STREAMS_LAKE_URI) "
                    "or run the sink with --reset-source to go on from its start, the old rows kept"
                )

    def _check_not_moved(self, last: dict[int, int]) -> None:
        table = self._open()
        if table is None:
            return
        for partition in last:
            recorded = table.transaction_version(self.app_id(partition))
            if recorded is not None and recorded != self.written.get(partition):
                raise PartitionMoved(
                    f"{self.uri}: partition {partition} is at offset {recorded} in the table, "
                    f"this writer resumed from {self.written.get(partition)}"
                )

    def compact(self, vacuum_hours: int | None) -> dict[str, Any]:
        """Merge small files (one new version); optionally delete files no version needs any more."""
        table = self._open()
        if table is None:
            return {"table": self.uri, "missing": True}
        metrics = dict(table.optimize.compact())
        if vacuum_hours is not None:
            metrics["vacuumed"] = len(
                table.vacuum(retention_hours=vacuum_hours, dry_run=False, enforce_retention_duration=False)
            )
        return {"table": self.uri, **metrics}
