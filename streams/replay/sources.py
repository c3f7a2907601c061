"""Read posts from JSONL, CSV or TSV files for replay.

JSONL: one post object per line. CSV/TSV with a header row: columns named as
the post fields (``id``, ``user_id``, ``text``, ``created_at``, ...). TSV
without a header is read as the SemEval layout ``tweet_id<TAB>label<TAB>text``;
a tweet id is a Twitter snowflake, which carries its creation time.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

TWITTER_EPOCH_MS = 1288834974657
csv.field_size_limit(sys.maxsize)


def snowflake_ms(tweet_id: int) -> int:
    return (tweet_id >> 22) + TWITTER_EPOCH_MS


def read_jsonl(path: Path) -> Iterator[bytes]:
    """Each non-empty line as it is: a malformed line is replayed too, to be dead-lettered."""
    with path.open("rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line


def _semeval_row(fields: list[str]) -> dict[str, Any]:
    tweet_id = int(fields[0])
    text = fields[2].strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return {
        "id": fields[0],
        "user_id": f"semeval-{tweet_id % 9973}",  # the dump has no authors: a stable stand-in
        "text": text,
        "created_at": snowflake_ms(tweet_id),
        "platform": "twitter",
        "label": fields[1],
    }


def read_table(path: Path, delimiter: str) -> Iterator[bytes]:
    with path.open(encoding="utf-8", newline="") as handle:
        first = handle.readline()
        handle.seek(0)
        has_header = "text" in [column.strip().lower() for column in first.split(delimiter)]
        if has_header:
            for row in csv.DictReader(handle, delimiter=delimiter):
                yield orjson.dumps({k: v for k, v in row.items() if k is not None and v not in (None, "")})
            return
        for fields in csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE):
            if len(fields) >= 3 and fields[0].isdigit():
                yield orjson.dumps(_semeval_row(fields))


def read_posts(path: Path) -> Iterator[bytes]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path)
    if suffix == ".csv":
        return read_table(path, ",")
    if suffix in (".tsv", ".txt"):
        return read_table(path, "\t")
    raise ValueError(f"{path}: unknown format {suffix!r}; use .jsonl, .csv or .tsv")


def created_at_ms(value: bytes) -> int | None:
    """The post's own time, for ``--speedup`` ordering; None when unreadable."""
    try:
        raw = orjson.loads(value).get("created_at")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    from streams.errors import InvalidPost
    from streams.ingest.parse import parse_timestamp

    try:
        return parse_timestamp(raw)
    except InvalidPost:
        return None
