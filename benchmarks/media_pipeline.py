"""The text path's posts/s with and without images in the stream, in one run on the real broker.

    python benchmarks/media_pipeline.py [--posts 5000] [--every 10] [--workers 2]

The same real tweets (SemEval-2017, ../shared/data) are replayed twice into fresh topics:
first as they are, through ``--workers`` text workers (STREAMS_AGENTS=enrich,profiles,trends);
then with an image on every ``--every``-th post (the sample photos and meme of samples/media,
each post's bytes distinct so none comes from the cache, served by a loopback HTTP server),
through the same text workers plus one media worker (STREAMS_AGENTS=media) on the same cores.
Printed per run: posts/s until every post is enriched, and in the second run the images/s
until every posts.media record is out, with the counts checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from pipeline_throughput import count_records, real_tweets  # noqa: E402

from streams import demo  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

IMAGES = ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg", "meme.png"]


def with_images(posts: list[bytes], every: int, folder: Path, base: str) -> tuple[list[bytes], int]:
    """Every ``every``-th post with one image of its own bytes (a trailing byte apart)."""
    out, images = [], 0
    for index, value in enumerate(posts):
        if index % every == 0:
            name = IMAGES[images % len(IMAGES)]
            copy = f"{images}-{name}"
            (folder / copy).write_bytes((demo.SAMPLE_MEDIA / name).read_bytes() + images.to_bytes(4, "big"))
            post = orjson.loads(value)
            post["media"] = [{"type": "image", "url": f"{base}/{copy}"}]
            value = orjson.dumps(post)
            images += 1
        out.append(value)
    return out, images


def run(bootstrap: str, posts: list[bytes], workers: int, media_workers: int, images: int) -> None:
    name = f"bench{uuid.uuid4().hex[:6]}"
    settings = dataclasses.replace(
        Settings.from_env(), bootstrap=bootstrap, app_id=name,
        topic_raw=f"{name}.raw", topic_enriched=f"{name}.enriched", topic_flagged=f"{name}.flagged",
        topic_deadletter=f"{name}.deadletter", topic_media=f"{name}.media",
    )  # fmt: skip
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    for value in posts:
        producer.send(settings.topic_raw, key=orjson.loads(value)["id"].encode(), value=value)
    producer.flush()
    env = {
        "STREAMS_APP_ID": name, "STREAMS_PARTITIONS": str(settings.partitions),
        "STREAMS_TOPIC_RAW": settings.topic_raw, "STREAMS_TOPIC_ENRICHED": settings.topic_enriched,
        "STREAMS_TOPIC_FLAGGED": settings.topic_flagged, "STREAMS_TOPIC_DEADLETTER": settings.topic_deadletter,
        "STREAMS_TOPIC_MEDIA": settings.topic_media, "STREAMS_MEDIA_ALLOW_HOSTS": "127.0.0.1",
    }  # fmt: skip
    text, media = {**env, "STREAMS_AGENTS": "enrich,profiles,trends"}, {**env, "STREAMS_AGENTS": "media"}
    running = demo.start_workers(settings, workers, extra_env=text)
    running += demo.start_workers(settings, media_workers, first_index=workers, extra_env=media)
    try:
        demo.wait_healthy(settings, running)
        started = time.monotonic()
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        enriched, done = count_records(consumer, settings.topic_enriched, len(posts), timeout_s=1800)
        line = (
            f"{workers} text + {media_workers} media worker(s): {len(posts) / (done - started):.0f} posts/s enriched "
        )
        line += f"({len(enriched)} of {len(posts)})"
        if images:
            media, media_done = count_records(consumer, settings.topic_media, images, timeout_s=1800)
            line += f"; {images / (media_done - started):.1f} images/s analysed ({len(media)} of {images} posts)"
        print(line, flush=True)
    finally:
        demo.stop_workers(running)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    posts = real_tweets(args.posts)
    bootstrap, started_broker = demo.start_broker()
    folder = Path(tempfile.mkdtemp(prefix="media-pipeline-"))
    try:
        with demo.serving(folder) as base:
            print(f"{len(posts)} SemEval tweets; run 1: text only; run 2: an image on every {args.every}th post")
            run(bootstrap, posts, args.workers, 0, 0)
            posts_with_media, images = with_images(posts, args.every, folder, str(base))
            run(bootstrap, posts_with_media, args.workers, 1, images)
    finally:
        shutil.rmtree(folder)
        demo.stop_broker(started_broker)


if __name__ == "__main__":
    main()
