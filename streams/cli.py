"""The ``social-streams`` command.

    social-streams demo                 broker + workers + replay + live enriched stream
    social-streams worker               run one Faust worker
    social-streams replay [FILE]        send posts (JSONL, CSV, TSV, or synthetic) to posts.raw
    social-streams tail TOPIC           show a topic, pretty or --json
    social-streams topics create        create the pipeline's topics
    social-streams score [FILE]         score texts with the model, one JSON line each
    social-streams top                  live view: throughput, sentiment, top trends, alerts, flagged
    social-streams report               an HTML report and a PNG of a time range: trends, alerts, sentiment
    social-streams sink                 append the output topics to Delta Lake tables, exactly once
    social-streams sql QUERY            DuckDB over the sink's tables (or a named example query)
    social-streams settings             list every setting with its default

Invalid settings or arguments end with one line that says what to fix, and a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import orjson
from kafka.errors import KafkaError

from streams.clients import BootstrapFailures, unreachable
from streams.errors import StreamsError
from streams.settings import ENV, Settings

# Named here (not imported) so that --help does not load DuckDB.
EXAMPLE_NAMES = ("sentiment-per-hour", "top-trends-per-day", "moderation-rate-per-language")


def positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {raw}")
    return value


def positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {raw}")
    return value


def timestamp_ms(raw: str) -> int:
    from streams.errors import InvalidPost
    from streams.ingest.parse import parse_timestamp

    try:
        return parse_timestamp(int(raw) if raw.isdigit() else raw)
    except InvalidPost as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="social-streams", description="Real-time social-media insight engine.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run broker, workers, a replay and show the enriched stream")
    demo.add_argument("file", nargs="?", type=Path, help="posts to replay (default: synthetic)")
    demo.add_argument("--limit", type=positive_int, default=2000, help="posts to replay (default 2000)")
    demo.add_argument("--rate", type=positive_float, default=200.0, help="posts per second (default 200)")
    demo.add_argument("--workers", type=positive_int, default=None, help="worker processes (default: CPU cores)")
    demo.add_argument("--bad", type=int, default=20, help="malformed messages mixed in (default 20)")
    demo.add_argument(
        "--media", action="store_true", help="run the media agent too, and show what it finds in sample photos"
    )

    commands.add_parser("worker", help="run a Faust worker (settings from the environment)")

    replay = commands.add_parser("replay", help="send posts to the raw topic")
    replay.add_argument("file", nargs="?", type=Path, help="JSONL, CSV or TSV; default: synthetic posts")
    replay.add_argument("--limit", type=positive_int, help="at most this many posts (synthetic default 1000)")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=positive_float, help="posts per second")
    pace.add_argument("--speedup", type=positive_float, help="replay in the posts' own time, N times faster")
    replay.add_argument("--bad", type=int, default=0, help="malformed messages to mix in")
    replay.add_argument("--topic", help="target topic (default: STREAMS_TOPIC_RAW)")
    replay.add_argument("--seed", type=int, default=7, help="seed of the synthetic generator")
    replay.add_argument(
        "--start",
        type=timestamp_ms,
        help="synthetic posts' first time (RFC 3339 or epoch ms; default: dated so they arrive as they happen)",
    )

    tail = commands.add_parser("tail", help="show records of a topic")
    tail.add_argument("topic")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--limit", type=positive_int, help="stop after N records")
    tail.add_argument("--idle-timeout", type=positive_float, help="stop after N seconds without records")

    topics = commands.add_parser("topics", help="manage the pipeline's topics")
    topics.add_argument("action", choices=["create"])

    score = commands.add_parser("score", help="score texts: one per line, or JSONL with a text field")
    score.add_argument("file", nargs="?", type=Path, help="input file (default: stdin)")
    score.add_argument("--model", type=Path, help="model folder (default: STREAMS_MODEL_DIR)")
    score.add_argument("--batch", type=positive_int, default=32, help="texts per model batch")

    top = commands.add_parser("top", help="live view: throughput, sentiment, top trends, alerts, flagged posts")
    top.add_argument("--from-beginning", action="store_true", help="fold the topics from their oldest records")
    top.add_argument("--once", action="store_true", help="read what is there, print one snapshot and exit")
    top.add_argument("--duration", type=positive_float, help="stop after N seconds")
    top.add_argument("-k", type=positive_int, default=10, help="trends shown (default 10)")

    report = commands.add_parser("report", help="write an HTML report and a PNG of a time range: trends, sentiment")
    report.add_argument("--since", type=timestamp_ms, help="RFC 3339 or epoch ms (default: the data's first record)")
    report.add_argument("--until", type=timestamp_ms, help="RFC 3339 or epoch ms (default: the data's last record)")
    report.add_argument(
        "--out", type=Path, default=Path("social-streams-report.html"), help="output HTML file (the PNG beside it)"
    )
    report.add_argument("-k", type=positive_int, default=8, help="trends drawn (default 8)")

    sink = commands.add_parser("sink", help="append the output topics to Delta Lake tables (STREAMS_LAKE_URI)")
    sink.add_argument("--idle-exit", type=positive_float, help="stop after N seconds without records")
    sink.add_argument(
        "--reset-source",
        action="store_true",
        help="a topic re-created or truncated under its table: go on from its start, the old rows kept (_source_epoch)",
    )
    sink.add_argument("--compact", action="store_true", help="merge small files of every table, then exit")
    sink.add_argument("--vacuum-hours", type=int, help="with --compact: delete files older versions need, past N hours")

    sql = commands.add_parser("sql", help="run a DuckDB query over the sink's tables")
    sql.add_argument("query", help="SQL, or the name of an example: " + ", ".join(sorted(EXAMPLE_NAMES)))
    sql.add_argument("--json", action="store_true", help="one JSON object per row")

    commands.add_parser("settings", help="list every setting, its default and meaning")
    return root


def configure_logging(level: str, command: str) -> None:
    logging.basicConfig(level=level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    # The Kafka clients log every connection at INFO and every retry at ERROR:
    # a worker keeps their warnings, a command line tool says it in one line.
    quiet = logging.WARNING if command == "worker" else logging.CRITICAL
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(quiet, logging.getLogger().level))


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "worker":
        from streams.worker import run_worker

        return run_worker(settings)
    if args.command == "replay":
        from streams.replay.producer import ReplayOptions, replay

        if args.file is not None and not args.file.is_file():
            raise StreamsError(f"{args.file}: no such file")
        options = ReplayOptions(args.file, args.limit, args.rate, args.speedup, max(args.bad, 0), args.seed, args.start)
        summary = replay(settings.connection, args.topic or settings.topic_raw, options, progress=sys.stderr.isatty())
        print(summary.describe(args.topic or settings.topic_raw), file=sys.stderr)
        return 0
    if args.command == "tail":
        from streams.console import tail

        tail(settings.connection, args.topic, args.json, args.from_beginning, args.limit, args.idle_timeout)
        return 0
    if args.command == "topics":
        from streams.topics import ensure_topics

        created = ensure_topics(settings)
        print(f"created: {', '.join(created) or 'nothing, every topic exists'}")
        return 0
    if args.command == "score":
        from streams.inference.score import score_stream

        model_dir = args.model or settings.model_dir
        source = args.file.open(encoding="utf-8", errors="replace") if args.file else sys.stdin
        with source:
            return score_stream(source, sys.stdout, model_dir, settings, args.batch)
    if args.command == "settings":
        for _, var, default, meaning in ENV:
            print(f"{var:<28} {default:<24} {meaning}")
        return 0
    if args.command == "top":
        from streams.live import run_top

        return run_top(settings, args.from_beginning, args.duration, args.once, args.k)
    if args.command == "report":
        from streams.report import run_report

        return run_report(settings, args.since, args.until, args.out, args.k)
    if args.command in ("sink", "sql"):
        try:
            import deltalake  # noqa: F401
            import duckdb  # noqa: F401
        except ImportError:
            raise StreamsError("the sink needs the lake extra: pip install 'social-streams[lake]'") from None
    if args.command == "sink":
        return run_sink_command(args, settings)
    if args.command == "sql":
        from streams.sink.query import query

        columns, rows = query(settings.lake_uri, args.query)
        print_rows(columns, rows, args.json)
        return 0
    if args.command == "demo":
        from streams.demo import run_demo

        return run_demo(settings, args)
    raise AssertionError(args.command)


def run_sink_command(args: argparse.Namespace, settings: Settings) -> int:
    from streams.sink.run import SinkOptions, run_sink
    from streams.sink.schema import TableSchema
    from streams.sink.table import TopicTable

    group = f"{settings.app_id}-sink"
    if args.compact:
        for contract in settings.sink_sources.values():
            table = TopicTable(settings.lake_uri, TableSchema.of(contract), group)
            print(orjson.dumps(table.compact(args.vacuum_hours)).decode())
        return 0
    options = SinkOptions(
        settings.connection,
        group,
        settings.lake_uri,
        settings.sink_sources,
        batch_rows=settings.sink_batch_rows,
        batch_s=settings.sink_batch_s,
        idle_exit_s=args.idle_exit,
        reset_source=args.reset_source,
    )
    return run_sink(options)


def print_rows(columns: list[str], rows: list[tuple[object, ...]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(orjson.dumps(dict(zip(columns, row, strict=True)), default=str).decode())
        return
    print("\t".join(columns))
    for row in rows:
        print("\t".join("" if v is None else str(v) for v in row))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    failures = BootstrapFailures.watch() if args.command != "worker" else BootstrapFailures()
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level, args.command)
        return run(args, settings)
    except StreamsError as exc:
        print(f"social-streams: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"social-streams: {unreachable(settings.connection, exc, failures.last)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("social-streams: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
