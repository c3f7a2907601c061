"""Images in posts, analysed on the stream: a text worker and a media worker apart, the real
broker, real photos from a local HTTP server, the real models."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import orjson

from tests.schema import validate_all
from tests.support import Pipeline


def post(post_id: str, media: list[dict[str, str]], text: str = "look at this") -> tuple[bytes, bytes]:
    value = {"id": post_id, "user_id": "u1", "text": text, "created_at": int(time.time() * 1000), "media": media}
    return post_id.encode(), orjson.dumps(value)


def test_a_media_worker_apart_from_the_text_worker_analyses_every_image_and_flags_a_meme(
    pipeline: Pipeline, media_server: str
) -> None:
    pipeline.extra_env = {"STREAMS_MEDIA_ALLOW_HOSTS": "127.0.0.1", "STREAMS_PROFILE_PUBLISH_INTERVAL_S": "0"}
    pipeline.start_worker({"STREAMS_AGENTS": "enrich,profiles,trends"})
    pipeline.start_worker({"STREAMS_AGENTS": "media"}, consuming=f"{pipeline.name}-media-requests")
    image = lambda name: {"type": "image", "url": f"{media_server}/{name}"}  # noqa: E731
    posts = [
        post("cat", [image("chelsea.jpg")]),
        post("cat-again", [image("chelsea.jpg"), image("coffee.jpg")]),  # the same bytes: from the cache
        post("meme", [image("meme.png")]),
        post("gone", [image("missing.jpg")]),
        post("clip", [{"type": "video", "url": f"{media_server}/clip.mp4"}]),
    ]
    # The author's profile first: pictures add interests to a profile, they start none.
    first = post("text-only", [], "no pictures today")
    pipeline.produce([first])
    pipeline.read(f"{pipeline.name}.profiles", lambda records: len(records) >= 1, 120)
    pipeline.produce(posts)
    posts.append(first)

    with_media = {b"cat", b"cat-again", b"meme", b"gone", b"clip"}
    media = dict(pipeline.consume_keys("media", with_media, timeout_s=120))
    enriched = pipeline.consume_keys("enriched", {key for key, _ in posts})
    assert {key for key, _ in enriched} == {key for key, _ in posts}  # the text path carries on as before
    assert set(media) == with_media  # no record for a post without media
    validate_all("posts.media", list(media.values()))

    cat, cat_again = media[b"cat"]["items"][0], media[b"cat-again"]["items"]
    assert "cat" in {t["tag"] for t in cat["tags"]} and cat["nsfw"] < 0.2
    assert cat_again[0]["sha256"] == cat["sha256"] and cat_again[0]["cached"] is True
    assert cat_again[1]["tags"][0]["tag"] == "drink"
    assert media[b"gone"]["items"][0]["error"]["type"] == "http_status"
    clip = media[b"clip"]["items"][0]
    assert clip["frames"] >= 4 and "cat" in {t["tag"] for t in clip["tags"]} and clip["people"] == 1
    assert "video-text:offensive" in media[b"clip"]["moderation"]["reasons"]  # the meme is one of its scenes

    meme = media[b"meme"]
    assert "stupid idiot" in meme["items"][0]["text"].lower()
    assert "image-text:offensive" in meme["moderation"]["reasons"]
    flagged = dict(pipeline.consume_keys("flagged", {b"meme", b"clip"}))
    assert flagged[b"meme"]["flagged_by"] == "media" and flagged[b"meme"]["items"] == meme["items"]
    validate_all("posts.flagged", [flagged[b"meme"], flagged[b"clip"]])

    def visual(records: list[tuple[bytes | None, Any]]) -> set[str]:
        latest = [value for _, value in records if value is not None][-1:]
        return {t["tag"] for profile in latest for t in profile.get("top_visual_tags", [])}

    profiles = pipeline.read(f"{pipeline.name}.profiles", lambda records: {"cat", "drink"} <= visual(records), 120)
    assert {"cat", "drink"} <= visual(profiles)  # what the author's pictures show
    validate_all("users.profiles", [value for _, value in profiles if value is not None])

    metrics = pipeline.metrics(1)
    assert 'streams_media_items_total{outcome="cached"} 1.0' in metrics
    assert 'streams_media_items_total{outcome="analysed"} 4.0' in metrics


def test_what_pictures_show_trends_as_visual_terms_counted_per_window(pipeline: Pipeline, media_server: str) -> None:
    pipeline.extra_env = {
        "STREAMS_MEDIA_ALLOW_HOSTS": "127.0.0.1",
        "STREAMS_AGENTS": "enrich,profiles,trends,media",
        "STREAMS_TREND_KINDS": "hashtag,visual",
        "STREAMS_TREND_HOP_SIZE_S": "0",
        "STREAMS_TREND_IDLE_S": "5",  # a media partition with no post stops holding the watermark soon
    }
    pipeline.start_worker()
    start = (int(time.time() * 1000) - 3_600_000) // 60_000 * 60_000
    image = lambda name: [{"type": "image", "url": f"{media_server}/{name}"}]  # noqa: E731

    def at(post_id: str, ms: int, media: list[dict[str, str]]) -> tuple[bytes, bytes]:
        value = {"id": post_id, "user_id": f"u-{post_id}", "text": "look", "created_at": ms, "media": media}
        return post_id.encode(), orjson.dumps(value)

    posts = [at(f"cat-{i}", start + i * 1000, image("chelsea.jpg")) for i in range(4)]
    posts += [at(f"coffee-{i}", start + 5000 + i, image("coffee.jpg")) for i in range(2)]
    posts.append(at("later", start + 600_000, image("chelsea.jpg")))  # moves the watermark past the first window
    pipeline.produce(posts)

    def first_window(records: list[tuple[bytes | None, Any]]) -> dict[str, int]:
        windows = [r for _, r in records if r["kind"] == "visual" and r["window"]["type"] == "tumbling"]
        return {r["term"]: r["count"] for r in windows if r["window"]["start_ms"] == start}

    wanted = {"cat", "drink", "animal"}  # each its own record: wait for all
    trends = pipeline.read(f"{pipeline.name}.trends", lambda rs: wanted <= set(first_window(rs)), 180)
    counts = first_window(trends)
    assert counts["cat"] == 4 and counts["drink"] == 2 and counts["animal"] == 4
    validate_all("trends.windows", [r for _, r in trends])
    top = orjson.loads(
        urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[0]}/trends/top?kind=visual&k=5").read()
    )
    assert "cat" in {entry["term"] for entry in top["top"]}


def test_a_killed_media_worker_loses_no_post(pipeline: Pipeline, media_server: str) -> None:
    pipeline.extra_env = {"STREAMS_MEDIA_ALLOW_HOSTS": "127.0.0.1", "STREAMS_TREND_KINDS": "hashtag"}
    pipeline.start_worker({"STREAMS_AGENTS": "enrich"})
    consuming = f"{pipeline.name}-media-requests"
    media_worker = pipeline.start_worker({"STREAMS_AGENTS": "media"}, consuming=consuming)
    names = ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg", "meme.png", "clip.mp4"]
    posts = [
        post(f"p{i}", [{"type": "video" if n.endswith(".mp4") else "image", "url": f"{media_server}/{n}?{i}"}])
        for i, n in enumerate(names * 10)
    ]
    pipeline.produce(posts)
    pipeline.read("media", lambda records: len(records) >= 5, 120)
    pipeline.kill(media_worker)  # SIGKILL mid-stream: what it had not committed is analysed again
    pipeline.start_worker({"STREAMS_AGENTS": "media"}, consuming=consuming)
    media = pipeline.consume_keys("media", {key for key, _ in posts}, timeout_s=240)
    assert {key for key, _ in media} == {key for key, _ in posts}
    assert all("error" not in item for _, record in media for item in record["items"])
