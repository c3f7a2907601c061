"""``social-streams demo``: the whole pipeline on this machine, in one command.

Starts the local broker unless KAFKA_BOOTSTRAP names one, one worker process
per CPU core (one ONNX thread each: the fastest layout on few cores), replays
sample posts with some malformed ones mixed in, and shows the enriched stream.
With ``--media`` the workers run the media agent too, and posts linking to the
sample photos (served from a local HTTP server) show what the image models found.
Ctrl-C, or the end of the replay, stops everything it started.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer
from rich.console import Console

from streams.console import records, render
from streams.errors import StreamsError
from streams.replay.producer import ReplayOptions, key_of, replay, source_values
from streams.settings import PACKAGE_DIR, Settings
from streams.topics import ensure_topics

KAFKA_SCRIPT = PACKAGE_DIR.parent / "deploy" / "local" / "kafka"
LOG_DIR = Path(os.environ.get("SOCIAL_STREAMS_CACHE", Path.home() / ".cache" / "social-streams")) / "demo"
STATE_DIR = LOG_DIR.parent / "state"
SAMPLE_MEDIA = PACKAGE_DIR.parent / "samples" / "media"


def broker_env(port: int | None) -> dict[str, str]:
    return {**os.environ, "KAFKA_PORT": str(port)} if port is not None else dict(os.environ)


def start_broker(port: int | None = None) -> tuple[str, bool]:
    """(bootstrap, whether this call started the broker); ``port``: KAFKA_PORT of the local broker."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        if os.environ.get("KAFKA_PORT"):
            raise StreamsError(
                f"KAFKA_BOOTSTRAP ({os.environ['KAFKA_BOOTSTRAP']}) names a broker that runs already and KAFKA_PORT "
                f"({os.environ['KAFKA_PORT']}) the port of a local one to start: unset one of them"
            )
        return os.environ["KAFKA_BOOTSTRAP"], False
    env = broker_env(port)
    was_running = subprocess.run([str(KAFKA_SCRIPT), "status"], env=env, capture_output=True).returncode == 0
    started = subprocess.run([str(KAFKA_SCRIPT), "start"], env=env, stdout=subprocess.PIPE, text=True)
    if started.returncode != 0:
        raise StreamsError("the local Kafka broker did not start (see the line above)")
    return started.stdout.strip().splitlines()[-1], not was_running


def stop_broker(started: bool, port: int | None = None) -> None:
    """Stop the local broker if ``start_broker`` started it (leave one someone else runs)."""
    if started:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], env=broker_env(port), check=False)


def start_workers(
    settings: Settings, count: int, first_index: int = 0, extra_env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    """Worker processes numbered from ``first_index``: web port and log file follow the number."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    workers = []
    for index in range(first_index, first_index + count):
        env = {**os.environ, "KAFKA_BOOTSTRAP": settings.bootstrap, "STREAMS_WEB_PORT": str(settings.web_port + index)}
        env.setdefault("STREAMS_STATE_DIR", str(STATE_DIR))  # not the caller's working directory
        env.update(extra_env or {})
        if not (settings.pseudonym_secret or settings.pseudonym_secret_file):
            env["STREAMS_DEV_MODE"] = "1"  # the demo runs without a key; workers log that it protects nothing
        with (LOG_DIR / f"worker-{index}.log").open("wb") as log:  # the child keeps its own handle
            workers.append(
                subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log, stderr=log)
            )
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]], timeout_s: float = 30) -> None:
    """SIGTERM, then SIGKILL whatever has not exited within the timeout, and reap all."""
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def wait_healthy(
    settings: Settings, workers: list[subprocess.Popen[bytes]], timeout_s: float = 120, first_index: int = 0
) -> None:
    deadline = time.monotonic() + timeout_s
    for index, worker in enumerate(workers, start=first_index):
        url = f"http://127.0.0.1:{settings.web_port + index}/health"
        while True:
            if worker.poll() is not None:
                raise StreamsError(f"worker {index} exited with {worker.returncode}: see {LOG_DIR}/worker-{index}.log")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StreamsError(f"worker {index} not healthy after {timeout_s:.0f}s: see {LOG_DIR}")
            time.sleep(0.5)


def _raw_partitions(settings: Settings, port: int) -> list[str] | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/health")
    if settings.web_token:  # the details of /health need it
        request.add_header("Authorization", f"Bearer {settings.web_token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            assigned = orjson.loads(response.read()).get("assigned")
    except OSError:
        return None
    if assigned is None:
        return None
    return [tp for tp in assigned if tp.startswith(settings.topic_raw + "[")]


def wait_assigned(settings: Settings, ports: list[int], timeout_s: float = 120) -> None:
    """Wait until the workers on ``ports`` share every partition of posts.raw between them.

    A worker answers /health before the group has settled; a replay started after
    this meets no rebalance (fewer duplicates, and fewer records for
    ``streams.gaps`` to read back: see the README's delivery section).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shares = [_raw_partitions(settings, port) for port in ports]
        owned = [tp for share in shares if share is not None for tp in share]
        settled = all(share for share in shares) or settings.partitions < len(ports)
        if None not in shares and settled and len(owned) == len(set(owned)) == settings.partitions:
            return
        time.sleep(0.5)
    raise StreamsError(f"the workers did not share the partitions of {settings.topic_raw} within {timeout_s:.0f}s")


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    bootstrap, started_broker = start_broker()
    settings = dataclasses.replace(settings, bootstrap=bootstrap)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        ensure_topics(settings)
        with serving(SAMPLE_MEDIA if args.media else None) as media_url:
            extra = media_env(settings) if media_url else {}
            workers = start_workers(settings, args.workers or os.cpu_count() or 1, extra_env=extra)
            console.print(f"[bold]broker[/] {bootstrap}  [bold]workers[/] {len(workers)}  logs {LOG_DIR}")
            wait_healthy(settings, workers)
            wait_assigned(settings, [settings.web_port + i for i in range(len(workers))])
            status = show_replay(console, settings, args)
            return show_media(console, settings, media_url) or status if media_url else status
    finally:
        stop_workers(workers)
        stop_broker(started_broker)


def media_env(settings: Settings) -> dict[str, str]:
    agents = settings.agent_names + ([] if "media" in settings.agent_names else ["media"])
    return {"STREAMS_AGENTS": ",".join(agents), "STREAMS_MEDIA_ALLOW_HOSTS": "127.0.0.1"}


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(folder: Path | None) -> Iterator[str | None]:
    """The base URL of a loopback HTTP server of ``folder`` (None: no server)."""
    if folder is None:
        yield None
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def show_media(console: Console, settings: Settings, base_url: str) -> int:
    """Post each sample image and clip; show its tags, NSFW score, people, text read and moderation."""
    kinds = {".jpg": "image", ".png": "image", ".mp4": "video"}
    samples = sorted(p.name for p in SAMPLE_MEDIA.iterdir() if p.suffix in kinds)
    stamp = int(time.time() * 1000)
    posts: dict[str, dict[str, Any]] = {}
    for name in samples:
        post_id = f"media-demo-{stamp}-{name}"
        media = [{"type": kinds[Path(name).suffix], "url": f"{base_url}/{name}"}]
        posts[post_id] = {"id": post_id, "user_id": "demo", "text": f"look: {name}", "created_at": stamp}
        posts[post_id]["media"] = media
    ready = threading.Event()

    def produce() -> None:
        ready.wait()
        producer = KafkaProducer(**settings.connection.kafka_python(acks="all"))
        for post_id, post in posts.items():
            producer.send(settings.topic_raw, key=post_id.encode(), value=orjson.dumps(post))
        producer.flush()
        producer.close()

    threading.Thread(target=produce, daemon=True).start()
    shown = 0
    for key, value in records(settings.connection, settings.topic_media, False, len(posts), 120, ready):
        if key is None or key.decode() not in posts:
            continue
        shown += 1
        console.print(media_line(value))
    console.print(
        f"[bold green]{shown} of {len(posts)} images and clips analysed[/] (social-streams tail {settings.topic_media})"
    )
    return 0 if shown == len(posts) else 1


def media_line(record: dict[str, Any]) -> str:
    """One line per post: the first image's file, tags, NSFW score, text read, and the moderation."""
    item: dict[str, Any] = (record.get("items") or [{}])[0]
    name = str(item.get("url") or "").rsplit("/", 1)[-1]
    if "error" in item:
        return f"[bold]{name}[/]  error: {item['error']['type']} ({item['error']['message']})"
    tags = ", ".join(f"{t['tag']} {t['score']:.2f}" for t in item.get("tags") or []) or "no tag"
    text = str(item.get("text") or "-").replace("\n", " / ")
    moderation = record.get("moderation") or {}
    flag = moderation.get("action", "allow") + "".join(f" {r}" for r in moderation.get("reasons", []))
    found = f"tags: {tags}  nsfw: {item.get('nsfw', 0):.3f}  people: {item.get('people', 0)}  text: {text}"
    return f"[bold]{name}[/]  {found}  moderation: {flag}"


def show_replay(console: Console, settings: Settings, args: argparse.Namespace) -> int:
    """Replay in a thread once the tail is positioned; show every enriched post."""
    ready = threading.Event()
    options = ReplayOptions(args.file, args.limit, args.rate, None, args.bad, seed=int(time.time()))

    def produce() -> None:
        ready.wait()
        replay(settings.connection, settings.topic_raw, options, progress=False)

    # Only this run's posts: a run stopped early leaves posts in posts.raw that the workers
    # enrich now, and they are not this replay's.
    mine = {key for value in source_values(options) if (key := key_of(value)) is not None}
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    started = time.monotonic()
    count = 0
    for key, value in records(settings.connection, settings.topic_enriched, False, None, 60, ready):
        if key not in mine:
            continue
        count += 1
        console.print(render(key, value, console.width), overflow="ellipsis")
        if count == len(mine):
            break
    elapsed = time.monotonic() - started
    console.print(
        f"[bold green]{count} enriched posts[/] in {elapsed:.1f}s ({count / elapsed:.0f} posts/s end to end); "
        f"{args.bad} malformed messages were sent to {settings.topic_deadletter} "
        f"(social-streams tail {settings.topic_deadletter} --from-beginning)"
    )
    return 0 if count == len(mine) else 1
