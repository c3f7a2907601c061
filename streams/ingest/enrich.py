"""Enrichment of a batch of valid posts: one model pass, then the records.

Runs in the inference thread, off the event loop, in two steps: ``score_batch``
(the model on every post, moderation's decision, the records of the posts it
allows) and ``explained`` (one flagged post's occlusion explanation, then its
records). The agent runs the second step after the batch's other posts are
published, so a flagged post's extra model rows hold back no other post;
``enrich_batch`` runs both at once. A model failure on a batch is retried post
by post, so one poisonous post is dead-lettered (reason ``model_failure``) and
the rest of the batch is still enriched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from streams.errors import InvalidPost, Reason, Stage
from streams.inference.language import detect_language, is_supported
from streams.inference.moderation import ALLOW, Decision, Thresholds, decide, explain_flag
from streams.inference.session import Prediction, TextModel
from streams.ingest.parse import RawPost
from streams.privacy.policy import PrivacyPolicy
from streams.records import enriched

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


@dataclass(frozen=True)
class Scored:
    """A post scored and decided; when moderation flags it, it waits here for the words behind the flag."""

    post: RawPost
    prediction: Prediction
    decision: Decision
    language: str
    timing: dict[str, float]


def score_batch(
    model: TextModel, posts: list[RawPost], thresholds: Thresholds, privacy: PrivacyPolicy
) -> tuple[list[Enriched | Scored], float]:
    """In input order: each post's records (or model error), or, when moderation
    flags it, its ``Scored`` (its records wait for ``explained``); and the model's seconds."""
    started = time.perf_counter()
    predictions = predict_batch(model, [post.text for post in posts]) if posts else []
    model_seconds = time.perf_counter() - started
    timing = {"model_ms_per_post": round(1000 * model_seconds / max(len(posts), 1), 3), "batch_size": len(posts)}
    results: list[Enriched | Scored] = []
    for post, prediction in zip(posts, predictions, strict=True):
        if isinstance(prediction, InvalidPost):
            results.append(Enriched(None, prediction))
            continue
        language = detect_language(post.text)
        scores = {head: result.scores for head, result in prediction.heads.items()}
        decision = decide(scores, thresholds, is_supported(language))
        scored = Scored(post, prediction, decision, language, timing)
        results.append(scored if decision.action != ALLOW else records_of(model, scored, privacy))
    return results, model_seconds


def explained(model: TextModel, flagged: Scored, privacy: PrivacyPolicy) -> Enriched:
    """A flagged post's records, its decision explained (occlusion rows of its strongest words)."""
    decision = explain_flag(model, flagged.post.text, flagged.decision, flagged.prediction)
    return records_of(model, replace(flagged, decision=decision), privacy)


def records_of(model: TextModel, scored: Scored, privacy: PrivacyPolicy) -> Enriched:
    """The post's ``posts.enriched`` record, and its ``posts.flagged`` one unless allowed."""
    post = scored.post
    user = privacy.pseudonymize(post.user_id)
    record = enriched(
        post, user, scored.prediction, scored.decision, model.manifest.tag, scored.timing, scored.language
    )
    flagged = None
    if scored.decision.action != ALLOW:
        flagged = privacy.published(record, post.text, privacy.flagged_kinds)
    return Enriched(privacy.published(record, post.text, privacy.enriched_kinds), None, flagged)


def enrich_batch(
    model: TextModel, posts: list[RawPost], thresholds: Thresholds, privacy: PrivacyPolicy
) -> tuple[list[Enriched], float]:
    """Both steps at once: enriched records (or model errors) in input order, and the model's seconds."""
    results, model_seconds = score_batch(model, posts, thresholds, privacy)
    return [explained(model, r, privacy) if isinstance(r, Scored) else r for r in results], model_seconds
