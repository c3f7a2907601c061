"""The media agent: reads the posts with media, writes ``posts.media`` and ``posts.flagged``.

The enrich agent passes each valid post that carries ``media`` to the internal
``{app}-media-requests`` topic (keyed by post id). Only workers that run this agent
(``STREAMS_AGENTS`` with ``media``) subscribe to it, so media workers scale apart from
text workers: a slow image never holds back a text post.

Per batch: each post's items are fetched and analysed in a thread pool (fetching
blocks; the models run there too), the text found in images goes through the text
model like a post's own text, and one ``posts.media`` record per post is published.
A post whose images or clips are NSFW, or say something the text heads flag, goes
to ``posts.flagged`` with reasons such as ``image:nsfw``, ``image-text:offensive``,
``video:nsfw``.
The tags of a post's pictures also go to its author's profile (``profiles-by-user``,
as the fan-out sends posts: ``top_visual_tags``). Offsets advance once every output of
the batch is acknowledged (the batch loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from faust.types import EventT, StreamT

from streams.batches import batch_loop
from streams.commits import gated
from streams.errors import InvalidPost, Reason, Stage
from streams.faust_compat import processing
from streams.inference.language import detect_language, is_supported, load_identifier
from streams.inference.moderation import decide
from streams.inference.session import Prediction, TextModel
from streams.media.analyse import ItemOutcome, MediaAnalyser
from streams.media.fetch import FetchLimits
from streams.media.vision import VisionModels
from streams.profiles import envelopes
from streams.records import SCHEMA_VERSION
from streams.runtime import Runtime
from streams.topics import media_requests_topic, profiles_by_user_topic, visual_by_term_topic
from streams.trends.visual import VisualRouter

log = logging.getLogger(__name__)
BATCH = 8
LINGER_S = 0.2
FETCH_THREADS = 8  # fetching waits on the network: more threads than cores
HEARTBEAT_S = 1.0  # the visual trends' watermark reports while the stream is paused
ACTIONS = ("allow", "review", "block")


def media_request(record: dict[str, Any]) -> dict[str, Any] | None:
    """What the media agent needs of an enriched post with media (None: it has none)."""
    media = record.get("media")
    if not isinstance(media, list) or not media:
        return None
    return {"id": record["id"], "user_id": record["user_id"], "created_at_ms": record["created_at_ms"], "media": media}


def stricter(a: str, b: str) -> str:
    return a if ACTIONS.index(a) >= ACTIONS.index(b) else b


class MediaAgent:
    def __init__(self, runtime: Runtime, vision: VisionModels) -> None:
        s = runtime.settings
        self.rt = runtime
        self.metrics = runtime.metrics
        self.vision = vision
        limits = FetchLimits(
            deadline_s=s.media_deadline_s,
            max_decoded_bytes=s.media_max_decoded_bytes,
            allow_hosts=s.media_allow_host_names,
        )
        split = self.metrics.limits_hit.labels("decoded_image_bytes").inc
        self.analyser = MediaAnalyser(
            vision, limits, s.media_max_items, s.media_cache_ttl_s, s.media_video_frames, split
        )
        self.fetchers = ThreadPoolExecutor(FETCH_THREADS, "media-fetch")
        # The image models run in a thread of their own: the text model's thread stays free for posts.
        self.models_thread = ThreadPoolExecutor(1, "vision")
        self.models = {"vision": vision.tag, "text": runtime.model.manifest.tag}
        self.by_user = profiles_by_user_topic(s.app_id)
        self.visual: VisualRouter | None = None
        if "visual" in s.trend_kind_names:  # the pictures' tags as trend terms
            visual_topic = runtime.topics[visual_by_term_topic(s.app_id)]
            self.visual = VisualRouter(runtime.app, visual_topic, s.partitions, media_requests_topic(s.app_id))
            runtime.on_roll_back.append(self.visual.forget)

    async def process(self, events: list[EventT]) -> None:
        loop = asyncio.get_running_loop()
        outputs: list[tuple[str, bytes | None, dict[str, Any], EventT]] = []
        requests: list[tuple[EventT, dict[str, Any]]] = []
        for event in events:
            try:
                requests.append((event, self.parsed(event.value)))
            except InvalidPost as error:
                outputs.append(
                    (self.rt.settings.topic_deadletter, event.key, self.rt.dead_letter_for(event, error), event)
                )
        published: list[tuple[EventT, dict[str, Any]]] = []
        fetched = await asyncio.gather(
            *(loop.run_in_executor(self.fetchers, self.analyser.fetch_all, request["media"]) for _, request in requests)
        )
        analysed = await loop.run_in_executor(self.models_thread, self.analyser.analyse, fetched)
        texts = [o.result.get("text") or "" for items in analysed for o in items]
        scores = await loop.run_in_executor(self.rt.executor, self.text_scores, texts)
        for (event, request), items in zip(requests, analysed, strict=True):
            record = self.record(request, items, scores)
            key = request["id"].encode()
            outputs.append((self.rt.settings.topic_media, key, record, event))
            published.append((event, record))
            if record["moderation"]["action"] != "allow":
                outputs.append((self.rt.settings.topic_flagged, key, {**record, "flagged_by": "media"}, event))
            envelope = self.interests(record, event)
            if envelope is not None:  # to the author's profile, by pseudonym, as the fan-out sends posts
                outputs.append((self.by_user, record["user_id"].encode(), dict(envelope), event))
        await self.publish(outputs)
        if self.visual is not None:
            await self.visual.route(published)

    def interests(self, record: dict[str, Any], event: EventT) -> envelopes.MediaEnvelope | None:
        """The post's image tags (each at its best item's score) for its author's profile."""
        tags: dict[str, float] = {}
        for item in record["items"]:
            for tag in item.get("tags", []):
                tags[tag["tag"]] = max(tags.get(tag["tag"], 0.0), tag["score"])
        if not tags or not isinstance(record.get("user_id"), str) or not isinstance(record.get("created_at_ms"), int):
            return None
        return envelopes.media_envelope(tags, record["created_at_ms"], event.message.partition, event.message.offset)

    def parsed(self, value: bytes | None) -> dict[str, Any]:
        try:
            request = orjson.loads(value or b"")
        except orjson.JSONDecodeError as exc:
            raise InvalidPost(Reason.INVALID_JSON, f"media request is not JSON: {exc}", Stage.PARSE) from None
        if (
            not isinstance(request, dict)
            or not isinstance(request.get("id"), str)
            or not isinstance(request.get("media"), list)
        ):
            raise InvalidPost(Reason.MISSING_FIELD, "media request needs an id and a media list", Stage.PARSE)
        return request

    def text_scores(self, texts: list[str]) -> dict[str, dict[str, Any]]:
        """The text heads on each distinct OCR text (a repost's meme is scored once per batch)."""
        distinct = sorted({t for t in texts if t})
        if not distinct:
            return {}
        model: TextModel = self.rt.model
        started = time.perf_counter()
        predictions = model.predict(distinct)
        self.metrics.media_model_seconds.labels("ocr-text").observe((time.perf_counter() - started) / len(distinct))
        return {text: self.scored(text, p) for text, p in zip(distinct, predictions, strict=True)}

    def scored(self, text: str, prediction: Prediction) -> dict[str, Any]:
        """Like a post's text: in a language the model was not trained on (``supported`` false)
        the text can go to review, never to block."""
        language = detect_language(text)
        supported = is_supported(language)
        scores = {head: result.scores for head, result in prediction.heads.items()}
        decision = decide(scores, self.rt.thresholds, supported)
        return {
            "language": language,
            "sentiment": {"label": prediction.heads["sentiment"].label, "scores": scores["sentiment"]},
            "moderation": {"scores": decision.scores, "action": decision.action, "reasons": decision.reasons},
            "supported": supported,
        }

    def record(self, request: dict[str, Any], items: list[ItemOutcome], scores: dict[str, Any]) -> dict[str, Any]:
        s = self.rt.settings
        action, reasons = "allow", []
        results = []
        for outcome in items:
            self.count(outcome)
            result = dict(outcome.result)
            kind = result.get("type")  # image or video: the reasons say which
            nsfw = result.get("nsfw")
            if nsfw is not None and nsfw >= s.media_nsfw_review:
                action = stricter(action, "block" if nsfw >= s.media_nsfw_block else "review")
                reasons.append(f"{kind}:nsfw")
            text = result.get("text")
            if text:
                result["text_analysis"] = scores[text]
                text_moderation = scores[text]["moderation"]
                action = stricter(action, text_moderation["action"])
                reasons += [f"{kind}-text:{reason}" for reason in text_moderation["reasons"]]
            results.append(result)
        return {
            "schema_version": SCHEMA_VERSION,
            "id": request["id"],
            "user_id": request.get("user_id"),
            "created_at_ms": request.get("created_at_ms"),
            "items": results,
            "moderation": {"action": action, "reasons": sorted(set(reasons))},
            "models": self.models,
        }

    def count(self, outcome: ItemOutcome) -> None:
        self.metrics.media_items.labels(outcome.outcome).inc()
        self.metrics.media_bytes.inc(outcome.fetched_bytes)
        if outcome.outcome == "analysed":
            for step, seconds in outcome.result["timing"].items():
                if step != "fetch_s":
                    self.metrics.media_model_seconds.labels(step.removesuffix("_s")).observe(seconds)

    async def publish(self, outputs: list[tuple[str, bytes | None, dict[str, Any], EventT]]) -> None:
        pending = []
        for topic, key, value, event in outputs:
            with processing(event):  # exactly-once: in the transaction of the request's partition
                pending.append(await self.rt.topics[topic].send(key=key, value=orjson.dumps(value)))
        await asyncio.gather(*pending)
        for topic, *_ in outputs:
            self.metrics.posts_out.labels(topic).inc()


def install_media(runtime: Runtime) -> MediaAgent:
    s = runtime.settings
    vision = VisionModels(s.vision_model_dir, s.model_threads)
    runtime.metrics.model_info.info({"text": runtime.model.manifest.tag, "vision": vision.tag})
    agent = MediaAgent(runtime, vision)
    load_identifier()  # for OCR texts: loaded before the first request, not in its time
    source = runtime.topics[media_requests_topic(s.app_id)]
    loop = batch_loop(runtime, "media")

    @runtime.agent(source, name="media")
    async def media(stream: StreamT) -> None:
        await loop.run(stream, BATCH, LINGER_S, agent.process)

    visual = agent.visual
    if visual is not None:

        @runtime.app.timer(HEARTBEAT_S)
        async def visual_heartbeat() -> None:
            async with gated(runtime.commit_gate):  # exactly-once: in the transactions of the partitions
                await visual.heartbeat()

    return agent
