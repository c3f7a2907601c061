"""A topic's table schema, derived from its JSON Schema, and the rows of its records.

Scalars become typed columns (string, int64, float64, bool; date-time strings
stay strings, ISO 8601 in UTC, which DuckDB and Spark cast on read); arrays of
scalars become lists; objects and arrays of objects become JSON text, queried
with ``json_extract`` (their keys vary between records: score maps, privacy
notes). Every row also carries where it came from (``_topic``, ``_partition``,
``_offset``, ``_key``, ``_timestamp_ms``, ``_source_epoch``), ``event_date`` (the table's partition
column: the post's or window's UTC date) and ``_error`` (null; a record that is
not valid JSON, or whose field does not fit its column, is kept with the reason
and its raw text in ``_raw``, so nothing read is dropped). Fields the schema does
not name (a post's own extra fields) go to ``_extra`` as JSON. The fields inside objects that
people filter and group by (``FLAT_COLUMNS``: the sentiment label, the moderation action
and scores, the platform, the engagement counts) are typed columns of their own too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from streams.schemas import schema as topic_schema

SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}
LINEAGE = [
    pa.field("_topic", pa.string()),
    pa.field("_partition", pa.int32()),
    pa.field("_offset", pa.int64()),
    pa.field("_key", pa.string()),
    pa.field("_timestamp_ms", pa.int64()),
    pa.field("_error", pa.string()),
    pa.field("_raw", pa.string()),
    pa.field("_extra", pa.string()),
    # Which incarnation of the topic the row was read from: 0 for the first, one more each
    # time the topic was re-created and the sink told to go on (``--reset-source``).
    pa.field("_source_epoch", pa.int32()),
    pa.field("event_date", pa.string()),
]
PARTITION_COLUMN = "event_date"
# Fields inside objects that people filter and group by, as typed columns of their own beside
# the object's JSON text: (column, path in the record, type). A value that does not fit is null.
_POST_COLUMNS: tuple[tuple[str, tuple[str, ...], pa.DataType], ...] = (
    ("sentiment_label", ("sentiment", "label"), pa.string()),
    ("emotion_label", ("emotion", "label"), pa.string()),
    ("labels_supported", ("sentiment", "supported"), pa.bool_()),
    ("moderation_action", ("moderation", "action"), pa.string()),
    ("moderation_offensive", ("moderation", "scores", "offensive"), pa.float64()),
    ("moderation_hate", ("moderation", "scores", "hate"), pa.float64()),
    ("platform", ("platform",), pa.string()),
    ("likes", ("metrics", "likes"), pa.int64()),
    ("reposts", ("metrics", "reposts"), pa.int64()),
    ("replies", ("metrics", "replies"), pa.int64()),
    ("views", ("metrics", "views"), pa.int64()),
)
FLAT_COLUMNS: dict[str, tuple[tuple[str, tuple[str, ...], pa.DataType], ...]] = {
    "posts.enriched": _POST_COLUMNS,
    "posts.flagged": _POST_COLUMNS,
    "trends.windows": (("window_type", ("window", "type"), pa.string()),),
    "trends.alerts": (("window_type", ("window", "type"), pa.string()),),
}
# Where each topic's event time lives (milliseconds since the epoch).
EVENT_TIME: dict[str, tuple[str, ...]] = {
    "posts.enriched": ("created_at_ms",),
    "posts.flagged": ("created_at_ms",),
    "trends.windows": ("window", "start_ms"),
    "trends.alerts": ("window", "start_ms"),
}


def _types(prop: dict[str, Any]) -> list[str]:
    declared = prop.get("type")
    if declared is None and "enum" in prop:
        kinds = {type(v).__name__ for v in prop["enum"] if v is not None}
        declared = ["string" if kinds == {"str"} else "object"]
    if declared is None and "const" in prop:
        value = prop["const"]
        declared = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), "object")
    types = declared if isinstance(declared, list) else [declared or "object"]
    return [t for t in types if t != "null"]


def column_type(prop: dict[str, Any]) -> pa.DataType | None:
    """The Arrow type of a JSON Schema property; None means JSON text."""
    types = _types(prop)
    if len(types) == 1 and types[0] in SCALARS:
        return SCALARS[types[0]]
    if types == ["array"]:
        item = column_type(prop.get("items", {}))
        return pa.list_(item) if item is not None else None
    return None


@dataclass(frozen=True)
class TableSchema:
    topic: str
    arrow: pa.Schema
    typed: dict[str, pa.DataType]  # columns stored with their own type; the other declared ones as JSON text
    declared: frozenset[str]  # the topic's own fields (not lineage, not the partition column)

    @classmethod
    def of(cls, topic: str) -> TableSchema:
        props = topic_schema(topic).get("properties", {})
        fields, typed = [], {}
        for name, prop in props.items():
            kind = column_type(prop)
            fields.append(pa.field(name, kind if kind is not None else pa.string()))
            if kind is not None:
                typed[name] = kind
        flat = [pa.field(column, kind) for column, _, kind in FLAT_COLUMNS.get(topic, ()) if column not in props]
        return cls(topic, pa.schema(fields + flat + LINEAGE), typed, frozenset(props))

    def row(self, value: bytes | None, key: bytes | None, partition: int, offset: int, ts: int) -> dict[str, Any]:
        row: dict[str, Any] = {
            "_topic": self.topic,
            "_partition": partition,
            "_offset": offset,
            "_key": key.decode("utf-8", "replace") if key is not None else None,
            "_timestamp_ms": ts,
        }
        try:
            record = orjson.loads(value) if value is not None else None
            if not isinstance(record, dict):
                raise ValueError("not a JSON object" if value is not None else "a tombstone")
        except (orjson.JSONDecodeError, ValueError) as exc:
            text = value.decode("utf-8", "replace") if value is not None else None
            return {**row, "_error": f"undecodable record: {exc}"[:500], "_raw": text, "event_date": _date(ts)}
        for name in self.declared & record.keys():
            cell = self._cell(name, record[name])
            if cell is _MISFIT:
                text = value.decode("utf-8", "replace") if value is not None else None
                expected = self.typed[name]
                return {**row, "_error": f"field {name!r} is not {expected}", "_raw": text, "event_date": _date(ts)}
            row[name] = cell
        extra = {k: v for k, v in record.items() if k not in self.declared}
        row["_extra"] = orjson.dumps(extra).decode() if extra else None
        for column, path, kind in FLAT_COLUMNS.get(self.topic, ()):
            inner: Any = record
            for part in path:
                inner = inner.get(part) if isinstance(inner, dict) else None
            row[column] = inner if inner is not None and _fits(kind, inner) else None
        row[PARTITION_COLUMN] = _date(self._event_ms(record, ts))
        return row

    def _cell(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        kind = self.typed.get(name)
        if kind is not None:
            return value if _fits(kind, value) else _MISFIT
        return orjson.dumps(value).decode()

    def _event_ms(self, record: dict[str, Any], fallback: int) -> int:
        value: Any = record
        for part in EVENT_TIME.get(self.topic, ()):
            value = value.get(part) if isinstance(value, dict) else None
        return value if isinstance(value, int) else fallback

    def batch(self, rows: list[dict[str, Any]]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=self.arrow)


_MISFIT = object()


def _fits(kind: pa.DataType, value: Any) -> bool:
    if pa.types.is_list(kind):
        return isinstance(value, list) and all(v is None or _fits(kind.value_type, v) for v in value)
    if pa.types.is_boolean(kind):
        return isinstance(value, bool)
    if pa.types.is_integer(kind):
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    if pa.types.is_floating(kind):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _date(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).date().isoformat()
