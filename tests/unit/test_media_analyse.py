"""A post's media items through fetch, cache and the models, against a local HTTP server of
real photos; and the posts.media record with its moderation, through the real text model."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

from streams.inference.moderation import Thresholds
from streams.inference.session import TextModel
from streams.media.agent import MediaAgent, media_request
from streams.media.analyse import MediaAnalyser
from streams.media.fetch import FetchLimits
from streams.media.vision import VisionModels
from streams.metrics import Metrics
from streams.settings import Settings
from streams.trends.visual import visual_mentions
from tests.conftest import MEDIA
from tests.schema import validate_all

LOCAL = FetchLimits(allow_hosts=frozenset({"127.0.0.1"}))


def test_an_image_is_fetched_analysed_once_and_then_served_from_the_cache(
    vision_models: VisionModels, media_server: str
) -> None:
    analyser = MediaAnalyser(vision_models, LOCAL, max_items=4, cache_ttl_s=60)
    first, again = analyser.items([{"type": "image", "url": f"{media_server}/chelsea.jpg"}] * 2)
    assert first.outcome == "analysed" and again.outcome == "cached"
    assert (
        first.result["sha256"] == again.result["sha256"]
        and first.fetched_bytes == (MEDIA / "chelsea.jpg").stat().st_size
    )
    assert first.result["media_type"] == "image/jpeg" and first.result["width"] == 400
    assert "cat" in {t["tag"] for t in first.result["tags"]}
    assert set(first.result["timing"]) == {"fetch_s", "nsfw_s", "tags_s", "ocr_s", "faces_s"}
    assert again.result["cached"] is True and first.result["people"] == 0


def test_a_bad_item_gets_an_error_and_never_fails_the_post(vision_models: VisionModels, media_server: str) -> None:
    analyser = MediaAnalyser(vision_models, LOCAL, max_items=6, cache_ttl_s=60)
    inline = base64.b64encode((MEDIA / "coffee.jpg").read_bytes()).decode()
    truncated = base64.b64encode((MEDIA / "meme.png").read_bytes()[:200]).decode()  # a header over a cut body
    items = [
        {"type": "image", "url": f"{media_server}/missing.jpg"},
        {"type": "image", "url": "http://10.0.0.1/private.jpg"},  # not on the allow-list
        {"type": "video", "url": f"{media_server}/chelsea.jpg"},  # a video was promised
        {"type": "gif", "url": f"{media_server}/chelsea.jpg"},
        {"type": "image", "data": inline},
        {"type": "image", "data": truncated},
        {"type": "image", "url": f"{media_server}/rocket.jpg"},  # past max_items
    ]
    outcomes = [o.outcome for o in analyser.items(items)]
    assert outcomes == ["http_status", "blocked_address", "unsupported_type", "invalid_item", "analysed",
                        "undecodable", "too_many_items"]  # fmt: skip
    results = [o.result for o in analyser.items(items[:1])]
    assert results[0]["error"]["type"] == "http_status" and "404" in results[0]["error"]["message"]


def agent(text_model: TextModel, vision_models: VisionModels) -> MediaAgent:
    # The record alone: no visual trends (their router needs the app's topics; tested apart).
    settings = Settings.from_env({"STREAMS_MEDIA_ALLOW_HOSTS": "127.0.0.1", "STREAMS_TREND_KINDS": "hashtag"})
    thresholds = Thresholds.resolve(text_model.manifest.thresholds, None, None)
    runtime: Any = SimpleNamespace(settings=settings, metrics=Metrics(), model=text_model, thresholds=thresholds)
    return MediaAgent(runtime, vision_models)


def test_a_meme_that_says_something_offensive_is_flagged_like_a_post_that_says_it(
    text_model: TextModel, vision_models: VisionModels, media_server: str
) -> None:
    media = agent(text_model, vision_models)
    request = media_request({"id": "p1", "user_id": "u", "created_at_ms": 1, "media": [
        {"type": "image", "url": f"{media_server}/meme.png"}, {"type": "image", "url": f"{media_server}/coffee.jpg"},
    ]})  # fmt: skip
    assert request is not None
    items = media.analyser.items(request["media"])
    texts = [o.result.get("text") or "" for o in items]
    record = media.record(request, items, media.text_scores(texts))
    assert record["moderation"]["action"] != "allow"
    assert "image-text:offensive" in record["moderation"]["reasons"]
    meme, coffee = record["items"]
    assert meme["text_analysis"]["moderation"]["reasons"] and "text_analysis" not in coffee
    assert record["models"]["vision"].startswith("vision@") and record["id"] == "p1"
    validate_all("posts.media", [record])
    validate_all("posts.flagged", [{**record, "flagged_by": "media"}])
    # Trend terms: the tags a picture shows clearly, once per post, toxic as the post was moderated.
    mentions = visual_mentions({**record, "created_at_ms": 5}, 1, 41)
    assert [key.split("\x1f")[1] for key, _ in mentions] == ["drink"]  # the coffee; the meme shows no object
    assert all(m.partition == 1 and m.offset == 41 and m.toxic == 1 for _, m in mentions)


def test_photos_without_anything_to_flag_are_allowed(
    text_model: TextModel, vision_models: VisionModels, media_server: str
) -> None:
    media = agent(text_model, vision_models)
    items = [{"type": "image", "url": f"{media_server}/{n}"} for n in ("chelsea.jpg", "astronaut.jpg", "missing.png")]
    request: dict[str, Any] = {"id": "p2", "media": items}
    record = media.record(request, media.analyser.items(items), {})
    assert record["moderation"] == {"action": "allow", "reasons": []}
    validate_all("posts.media", [record])
    assert media_request({"id": "p3", "user_id": "u", "created_at_ms": 1}) is None  # no media: no request


def test_a_batch_of_big_images_is_decoded_in_groups_under_the_memory_cap() -> None:
    from streams.media.analyse import FetchedItem, decode_groups
    from streams.media.fetch import Fetched

    def item(index: int, width: int, height: int) -> FetchedItem:
        return FetchedItem(index, {"type": "image"}, Fetched("data:", b"", "image/png", width, height), str(index), 0.0)

    big = [item(i, 6000, 6000) for i in range(4)]  # 36 Mpx each: ~108 MB decoded as RGB
    groups = decode_groups(big, 256 << 20)
    assert [[i.index for i in g] for g in groups] == [[0, 1], [2, 3]]
    assert all(sum(i.fetched.width * i.fetched.height * 3 for i in g) <= 256 << 20 for g in groups)  # type: ignore[operator]
    small = [item(i, 640, 480) for i in range(64)]
    assert len(decode_groups(small, 256 << 20)) == 1
    assert [len(g) for g in decode_groups([item(0, 9000, 9000)], 16 << 20)] == [1]  # alone over the cap: its own group
