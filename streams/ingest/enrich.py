"""Enrichment of a batch of valid posts: one model pass, then the records.

Runs in the inference thread, off the event loop. A model failure on a batch
is retried post by post, so one poisonous post is dead-lettered (reason
``model_failure``) and the rest of the batch is still enriched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from streams.errors import InvalidPost, Reason, Stage
from streams.inference.language import detect_language, is_supported
from streams.inference.moderation import ALLOW, Thresholds, decide, explain_flag
from streams.inference.session import Prediction, TextModel
from streams.ingest.parse import RawPost
from streams.privacy.policy import PrivacyPolicy
from streams.records import enriched
from streams.terms import mentioned_handles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enriched:
    record: dict[str, Any] | None  # for posts.enriched
    error: InvalidPost | None
    flagged: dict[str, Any] | None = None  # for posts.flagged, when moderation says review or block


def _predict_each(model: TextModel, texts: list[str]) -> list[Prediction | InvalidPost]:
    results: list[Prediction | InvalidPost] = []
    for text in texts:
        try:
            results.append(model.predict([text])[0])
        except Exception as exc:  # noqa: BLE001 - any model failure becomes a dead letter
            results.append(InvalidPost(Reason.MODEL_FAILURE, f"model failed: {exc!r}"[:500], Stage.INFERENCE))
    return results


def predict_batch(model: TextModel, texts: list[str]) -> list[Prediction | InvalidPost]:
    try:
        return list(model.predict(texts))
    except Exception as exc:  # noqa: BLE001 - isolate the failing post(s)
        log.warning("model failed on a batch of %d, retrying one by one: %r", len(texts), exc)
        return list(_predict_each(model, texts))


def enrich_batch(
    model: TextModel, posts: list[RawPost], thresholds: Thresholds, privacy: PrivacyPolicy
) -> tuple[list[Enriched], float]:
    """Enriched records (or model errors) in input order, and the model's seconds."""
    started = time.perf_counter()
    predictions = predict_batch(model, [post.text for post in posts]) if posts else []
    model_seconds = time.perf_counter() - started
    per_post_ms = round(1000 * model_seconds / max(len(posts), 1), 3)
    results: list[Enriched] = []
    for post, prediction in zip(posts, predictions, strict=True):
        if isinstance(prediction, InvalidPost):
            results.append(Enriched(None, prediction))
            continue
        try:
            results.append(enrich_one(model, post, prediction, thresholds, privacy, len(posts), per_post_ms))
        except Exception as exc:  # noqa: BLE001 - a post that breaks a step is dead-lettered, not the batch
            message = f"enrichment failed: {exc!r}"[:500]
            results.append(Enriched(None, InvalidPost(Reason.PROCESSING_FAILURE, message, Stage.ENRICH)))
    return results, model_seconds


def enrich_one(
    model: TextModel,
    post: RawPost,
    prediction: Prediction,
    thresholds: Thresholds,
    privacy: PrivacyPolicy,
    batch_size: int,
    per_post_ms: float,
) -> Enriched:
    """One post's records, from its prediction: moderation, language, privacy."""
    language = detect_language(post.text)
    scores = {head: result.scores for head, result in prediction.heads.items()}
    decision = explain_flag(model, post.text, decide(scores, thresholds, is_supported(language)), prediction)
    timing = {"model_ms_per_post": per_post_ms, "batch_size": batch_size}
    user = privacy.pseudonymize(post.user_id)
    record = enriched(post, user, prediction, decision, model.manifest.tag, timing, language)
    # A mentioned handle is pseudonymised as an author id is: where user ids are handles, edges join up.
    record["mentions"] = [privacy.pseudonymize(handle) for handle in mentioned_handles(post.text)]
    flagged = None
    if decision.action != ALLOW:
        flagged = privacy.published(record, post.text, privacy.flagged_kinds)
    return Enriched(privacy.published(record, post.text, privacy.enriched_kinds), None, flagged)
