"""``social-streams sql``: DuckDB over the sink's Delta tables.

Each table is registered under its name (``posts_enriched``, ``posts_flagged``,
``trends_windows``, ``trends_alerts``) as the Arrow dataset of its latest
version, which DuckDB scans in place, with filter and column pushdown. DuckDB's
own ``delta`` extension would do the same but is downloaded at first use; this
works offline.
"""

from __future__ import annotations

from typing import Any

import duckdb
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from streams.errors import StreamsError
from streams.settings import SINKABLE
from streams.sink.table import table_name, table_uri

# The README's queries, run by the test suite against a real replay.
EXAMPLES: dict[str, str] = {
    "sentiment-per-hour": (
        "SELECT date_trunc('hour', to_timestamp(created_at_ms / 1000)) AS hour, "
        "sentiment_label AS sentiment, count(*) AS posts "
        "FROM posts_enriched WHERE _error IS NULL GROUP BY ALL ORDER BY hour, sentiment"
    ),
    "top-trends-per-day": (
        "SELECT event_date AS day, term, kind, any_value(label) AS label, sum(count) AS mentions "
        "FROM trends_windows WHERE window_type = 'tumbling' AND _error IS NULL "
        "GROUP BY event_date, term, kind "
        "QUALIFY row_number() OVER (PARTITION BY day ORDER BY mentions DESC, term) <= 5 "
        "ORDER BY day, mentions DESC, term"
    ),
    "moderation-rate-per-language": (
        "SELECT language, count(*) AS posts, "
        "avg(CASE WHEN moderation_action <> 'allow' THEN 1 ELSE 0 END) AS flagged_rate "
        "FROM posts_enriched WHERE _error IS NULL GROUP BY language ORDER BY posts DESC"
    ),
}


def connect(root: str, storage_options: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per existing table."""
    connection = duckdb.connect()
    for topic in SINKABLE:
        try:
            table = DeltaTable(table_uri(root, topic), storage_options=storage_options)
        except TableNotFoundError:
            continue
        connection.register(table_name(topic), table.to_pyarrow_dataset())
    return connection


def query(root: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of a query; a name of EXAMPLES runs that example."""
    connection = connect(root)
    try:
        relation = connection.sql(EXAMPLES.get(sql, sql))
    except duckdb.Error as exc:
        tables = ", ".join(name for (name,) in connection.sql("SHOW TABLES").fetchall()) or f"none under {root}"
        first = str(exc).splitlines()[0]
        raise StreamsError(f"query failed: {first} (tables: {tables}; examples: {', '.join(EXAMPLES)})") from None
    if relation is None:  # a statement without a result
        return [], []
    return list(relation.columns), relation.fetchall()
