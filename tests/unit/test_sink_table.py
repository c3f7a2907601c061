"""A Delta table knows which incarnation of its topic its offsets belong to."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("deltalake")

from streams.sink.schema import TableSchema  # noqa: E402
from streams.sink.table import LiveSource, SourceChanged, TopicTable  # noqa: E402

FIRST, SECOND = str(uuid.uuid4()), str(uuid.uuid4())


def rows(table: TopicTable, partition: int, offsets: range) -> list[dict[str, Any]]:
    return [table.schema.row(orjson.dumps({"id": f"p{o}"}), b"k", partition, o, 0) for o in offsets]


def written_table(tmp_path: Path) -> TopicTable:
    table = TopicTable(str(tmp_path), TableSchema.of("posts.enriched"), "sink")
    assert table.check_source(0, LiveSource(FIRST, 0, 10)) is None  # nothing written: from the start
    table.adopt_source(LiveSource(FIRST, 0, 10))
    table.append(rows(table, 0, range(10)))
    return table


def test_the_same_topic_resumes_after_the_last_offset_written(tmp_path: Path) -> None:
    table = written_table(tmp_path)
    assert TopicTable(str(tmp_path), table.schema, "sink").check_source(0, LiveSource(FIRST, 0, 25)) == 10


@pytest.mark.parametrize(
    ("live", "said"),
    [
        (LiveSource(SECOND, 0, 25), "the topic was re-created"),
        (LiveSource(None, 0, 4), "the table has offsets up to 9 but the topic ends at 4"),
        (LiveSource(FIRST, 15, 25), "offsets 10..14 were deleted by retention"),
    ],
)
def test_a_topic_that_is_not_the_one_the_offsets_belong_to_is_refused(
    tmp_path: Path, live: LiveSource, said: str
) -> None:
    written_table(tmp_path)
    with pytest.raises(SourceChanged) as caught:
        TopicTable(str(tmp_path), TableSchema.of("posts.enriched"), "sink").check_source(0, live)
    assert said in str(caught.value) and "--reset-source" in str(caught.value)


def test_offsets_that_go_back_are_refused_at_append(tmp_path: Path) -> None:
    table = written_table(tmp_path)
    with pytest.raises(SourceChanged, match="offsets went back from 9 to 0"):
        table.append(rows(table, 0, range(5)))


def test_a_reset_source_starts_a_new_epoch_from_the_topic_start_and_keeps_the_old_rows(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    table = written_table(tmp_path)
    fresh = TopicTable(str(tmp_path), table.schema, "sink")
    fresh.reset_source(LiveSource(SECOND, 0, 5), [0])
    assert fresh.epoch == 1 and fresh.check_source(0, LiveSource(SECOND, 0, 5)) is None
    fresh.append(rows(fresh, 0, range(5)))
    data = DeltaTable(table.uri).to_pyarrow_table().to_pylist()
    assert sorted((r["_source_epoch"], r["_offset"]) for r in data) == [(0, o) for o in range(10)] + [
        (1, o) for o in range(5)
    ]


def test_the_fields_people_filter_by_are_typed_columns_of_their_own() -> None:
    schema = TableSchema.of("posts.enriched")
    record = {
        "id": "p1",
        "sentiment": {"label": "positive", "scores": {}, "supported": True},
        "moderation": {"action": "review", "scores": {"offensive": 0.8, "hate": 0.1}, "reasons": [], "supported": True},
        "platform": "mastodon",
        "metrics": {"likes": 3, "views": "many"},
    }
    row = schema.row(orjson.dumps(record), b"p1", 0, 7, 0)
    assert (row["sentiment_label"], row["moderation_action"], row["moderation_offensive"]) == (
        "positive",
        "review",
        0.8,
    )
    assert (row["platform"], row["likes"], row["views"], row["labels_supported"]) == ("mastodon", 3, None, True)
    assert schema.batch([row]).schema.field("likes").type == "int64"
    assert "platform" in orjson.loads(row["_extra"])  # still whole in _extra: nothing is lost
