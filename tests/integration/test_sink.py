"""The data-lake sink on a real broker: Delta tables written exactly once through SIGKILLs,
read back with DuckDB, and the README's example queries."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from streams.sink.query import EXAMPLES, query
from streams.trends import evaluation as ev
from streams.trends.windows import WindowSpec
from tests.support import ROOT, Pipeline, bad_messages, hashtag_windows

SPEC = WindowSpec(window_ms=60_000, hop_size_ms=0, hop_ms=60_000, grace_ms=10_000)


def start_sink(pipeline: Pipeline, lake: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **pipeline.env(6066),  # the sink serves no HTTP; any valid port
        "STREAMS_LAKE_URI": str(lake),
        "STREAMS_SINK_BATCH_ROWS": "40",
        "STREAMS_SINK_BATCH_S": "0.5",
    }
    with (pipeline.log_dir / "sink.log").open("ab") as log:
        sink = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "sink", *args], env=env, stdout=log, stderr=log, cwd=ROOT
        )
    pipeline.others.append(sink)  # stopped when the test ends, however it ends
    return sink


def rows_in(lake: Path, table: str) -> int:
    try:
        return int(DeltaTable(str(lake / table)).to_pyarrow_dataset().count_rows())
    except TableNotFoundError:
        return 0


def wait_rows(lake: Path, table: str, at_least: int, sink: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while rows_in(lake, table) < at_least:
        assert sink.poll() is None, f"sink exited with {sink.returncode}"
        assert time.monotonic() < deadline, f"{table} stayed below {at_least} rows"
        time.sleep(0.2)


def chromium_screenshot(page: Path, out: Path) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the report test opens the HTML in Chromium: apt-get install chromium"
    command = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--window-size=1300,1400", f"--screenshot={out}", page.as_uri()]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    return out


def pixels_of(png: Path, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    from matplotlib.image import imread

    image = (imread(png)[:, :, :3] * 255).astype(int)
    return int((abs(image - rgb) <= tolerance).all(axis=2).sum())


def sql(lake: Path, statement: str) -> list[tuple[Any, ...]]:
    return query(str(lake), statement)[1]


@pytest.mark.timeout(600)
def test_the_sink_writes_every_record_once_through_two_sigkills(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.extra_env = {"STREAMS_TREND_KINDS": "hashtag", "STREAMS_TREND_HOP_SIZE_S": "0"}
    start = (int(time.time() * 1000) - 3_600_000) // SPEC.window_ms * SPEC.window_ms
    stream = ev.generate(ev.StreamShape(hours=0.15, posts_per_minute=100, bursts=1), start, SPEC.window_ms, seed=5)
    posts = stream.posts + ev.sentinels(pipeline.partitions, stream.end_ms + 2 * SPEC.window_ms)
    ids = {p["id"] for p in posts}
    lake = tmp_path / "lake"

    pipeline.start_worker()
    sink = start_sink(pipeline, lake)
    bad, _ = bad_messages(5)
    pipeline.produce([(p["id"].encode(), orjson.dumps(p)) for p in posts] + bad)
    for reached in (150, 500):  # SIGKILL mid-stream, between and during appends
        wait_rows(lake, "posts_enriched", reached, sink)
        sink.send_signal(signal.SIGKILL)
        sink.wait()
        sink = start_sink(pipeline, lake)

    enriched = pipeline.consume_keys("enriched", {i.encode() for i in ids}, 240)
    reference = ev.reference_counts(ev.hashtag_mentions(stream.posts), SPEC, stream.end_ms)
    wanted = set(ev.publishable(reference))
    trends = f"{pipeline.name}.trends"
    pipeline.read(trends, lambda rs: wanted <= {k for k, _ in hashtag_windows(rs, stream.end_ms)}, 180)
    windows = pipeline.read(trends, lambda rs: False, 3)  # all there is now
    wait_rows(lake, "posts_enriched", len(enriched), sink, 180)
    wait_rows(lake, "trends_windows", len(windows), sink, 180)
    sink.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0

    copies = Counter(i for (i,) in sql(lake, "SELECT id FROM posts_enriched WHERE _error IS NULL"))
    assert set(copies) == ids, f"{len(ids - set(copies))} posts missing from the table"
    assert max(copies.values()) == 1, f"written twice: {[i for i, c in copies.items() if c > 1][:5]}"
    positions = sql(lake, "SELECT _partition, _offset, count(*) FROM posts_enriched GROUP BY ALL HAVING count(*) > 1")
    assert positions == []

    table_windows = Counter(
        (term, start_ms)
        for term, start_ms in sql(
            lake, "SELECT term, CAST(json_extract(\"window\", '$.start_ms') AS BIGINT) FROM trends_windows"
        )
    )
    topic_windows = Counter((k[0], k[2]) for k, _ in hashtag_windows(windows, 2**62))
    assert table_windows == topic_windows and max(table_windows.values()) == 1

    # The README's queries, on the same tables.
    per_hour = sql(lake, EXAMPLES["sentiment-per-hour"])
    assert sum(posts for _, _, posts in per_hour) == len(ids)
    assert {label for _, label, _ in per_hour} <= {"negative", "neutral", "positive"}
    top = sql(lake, EXAMPLES["top-trends-per-day"])
    assert top and all(mentions >= 1 for *_, mentions in top)
    per_language = sql(lake, EXAMPLES["moderation-rate-per-language"])
    assert sum(n for _, n, _ in per_language) == len(ids)
    assert all(0 <= rate <= 1 for *_, rate in per_language)

    check_report(pipeline, tmp_path / "report.html", len(ids))


def check_report(pipeline: Pipeline, out: Path, posts: int) -> None:
    """The report of the same replay: its PNG, and its HTML as headless Chromium renders it."""
    command = [sys.executable, "-m", "streams.cli", "report", "--out", str(out)]
    result = subprocess.run(command, env=pipeline.env(6066), capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert f"{posts} posts" in result.stdout
    page = out.read_text(encoding="utf-8")
    assert f"{posts} enriched posts" in page and "1970" not in page
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    shot = chromium_screenshot(out, out.with_name("screenshot.png"))
    # The charts' own colours on screen: the page decoded and drew its image.
    for name, colour in (("trend line", (31, 119, 180)), ("positive bars", (44, 160, 44))):
        assert pixels_of(shot, colour) > 200, f"no {name} in Chromium's rendering of {out}"


def test_sql_names_the_tables_when_a_query_fails(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "sql", "SELECT * FROM nowhere"],
        env={**os.environ, "STREAMS_LAKE_URI": str(tmp_path)},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "query failed" in result.stderr and "examples:" in result.stderr


def test_a_topic_recreated_under_a_running_sink_stops_it_and_reset_source_goes_on(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    lake = tmp_path / "lake"
    topic = pipeline.topics["enriched"]
    pipeline.extra_env["STREAMS_SINK_TOPICS"] = "posts.enriched"
    admin = KafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])

    def posts(prefix: str, count: int) -> list[tuple[bytes, bytes]]:
        return [
            (f"{prefix}{i}".encode(), orjson.dumps({"id": f"{prefix}{i}", "created_at_ms": i})) for i in range(count)
        ]

    pipeline.produce(posts("old", 40), "enriched")
    sink = start_sink(pipeline, lake)
    wait_rows(lake, "posts_enriched", 40, sink)
    admin.delete_topics([topic])
    while topic in admin.list_topics():
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the deletion completes in the background
        try:
            admin.create_topics([NewTopic(topic, 2, 1)])
            break
        except TopicAlreadyExistsError:
            time.sleep(0.5)
    admin.close()
    pipeline.produce(posts("new", 30), "enriched")  # offsets from 0 again: under the table's, on the same partitions

    assert sink.wait(timeout=120) == 2  # stopped rather than skip or mix the new records in
    said = (pipeline.log_dir / "sink.log").read_text().strip().splitlines()[-1]
    assert "re-created" in said and "--reset-source" in said, said
    assert rows_in(lake, "posts_enriched") == 40

    sink = start_sink(pipeline, lake, "--reset-source")
    wait_rows(lake, "posts_enriched", 70, sink)
    by_epoch = dict(sql(lake, "SELECT _source_epoch, count(*) FROM posts_enriched GROUP BY 1"))
    assert by_epoch == {0: 40, 1: 30}  # the old rows kept and told apart
    assert {row[0][:3] for row in sql(lake, "SELECT _key FROM posts_enriched WHERE _source_epoch = 1")} == {"new"}
