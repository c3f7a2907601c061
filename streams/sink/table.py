"""One Delta Lake table per topic, appended exactly once per Kafka offset.

Each append is one Delta commit that holds the rows and, for every source
partition in the batch, an application transaction (``txn``) whose app id names
the partition and whose version is the last offset written. The table is its
own offset store: after a crash the sink resumes each partition after the
version the table records, so a batch is either in the table with its offsets
or not at all. Before it commits, the writer checks that the recorded version
is still the one it resumed from (a sink worker that lost a partition while
paused must not write it again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from streams.sink.schema import PARTITION_COLUMN, TableSchema

log = logging.getLogger(__name__)


class PartitionMoved(Exception):
    """The table records a later offset for a partition than this writer resumed from."""


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

    @property
    def uri(self) -> str:
        return table_uri(self.root, self.schema.topic)

    def app_id(self, partition: int) -> str:
        return f"{self.app}/{self.schema.topic}/{partition}"

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

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Append rows read from any partitions in one commit with their offsets; returns rows written."""
        if not rows:
            return 0
        last: dict[int, int] = {}
        for row in rows:
            last[row["_partition"]] = max(last.get(row["_partition"], -1), row["_offset"])
        self._check_not_moved(last)
        transactions = [Transaction(self.app_id(p), offset) for p, offset in sorted(last.items())]
        write_deltalake(
            self.uri,
            self.schema.batch(rows),
            mode="append",
            partition_by=[PARTITION_COLUMN],
            storage_options=self.storage_options,
            commit_properties=CommitProperties(app_transactions=transactions),
        )
        self.written.update(last)
        return len(rows)

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
