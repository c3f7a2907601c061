"""The records of each topic contract, built as plain dicts for orjson.

Every output carries ``schema_version``. Builders are pure functions: the
agents call them, the tests call them without a broker.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from streams.errors import InvalidPost
from streams.inference.moderation import Decision
from streams.inference.session import Prediction
from streams.ingest.parse import RawPost
from streams.terms import post_terms

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Source:
    """Where a message was read: for dead letters and end-to-end timing."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None


def iso_utc(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hashtags_of(post: RawPost) -> list[str]:
    """Hashtags given with the post, else found in its text; case-folded, unique, in order, capped
    (``streams.ingest.parse.InputLimits``)."""
    return list(post.hashtags)


def normalised_post(post: RawPost, user: str) -> dict[str, Any]:
    """The input with its core fields normalised and ``user_id`` replaced by ``user``
    (its pseudonym); unknown fields are kept as they came."""
    record = dict(post.fields)
    record.update(
        id=post.id,
        user_id=user,
        text=post.text,
        created_at=iso_utc(post.created_at_ms),
        created_at_ms=post.created_at_ms,
        hashtags=hashtags_of(post),
    )
    return record


def enriched(
    post: RawPost,
    user: str,
    prediction: Prediction,
    decision: Decision,
    model_tag: str,
    timing: dict[str, float],
    language: str,
) -> dict[str, Any]:
    heads = prediction.heads
    record = normalised_post(post, user)
    supported = decision.supported
    record.update(
        schema_version=SCHEMA_VERSION,
        sentiment={"label": heads["sentiment"].label, "scores": heads["sentiment"].scores, "supported": supported},
        moderation=moderation_of(decision),
        emotion={"label": heads["emotion"].label, "scores": heads["emotion"].scores, "supported": supported},
        language=language,
        terms=post_terms(post.text, record["hashtags"]),
        embedding=prediction.embedding,
        explanation=[{"token": c.token, "weight": c.weight} for c in prediction.explanation],
        models={"text": model_tag},
        model_input={"tokens": prediction.tokens, "truncated": prediction.truncated},
        timing=timing,
    )
    return record


def moderation_of(decision: Decision) -> dict[str, Any]:
    """The ``moderation`` field: scores, action, reasons; for a flagged post the words behind the flag."""
    field: dict[str, Any] = {
        "scores": decision.scores,
        "action": decision.action,
        "reasons": decision.reasons,
        "supported": decision.supported,
    }
    if decision.explanation:
        field["explanation"] = decision.explanation
    return field


def dead_letter(
    error: InvalidPost,
    source: Source,
    original: bytes | None,
    received_ms: int,
    user_id_pseudonymised: bool = False,
    max_original_bytes: int = 1 << 20,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "error": {"stage": error.stage.value, "type": error.reason.value, "message": error.message},
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp": source.timestamp_ms,
        },
        "received_at": iso_utc(received_ms),
    }
    record.update(original_payload(original, max_original_bytes))
    if user_id_pseudonymised:
        record["original_altered"] = "user_id pseudonymised"
    return record


def original_payload(original: bytes | None, max_bytes: int = 1 << 20) -> dict[str, Any]:
    """The original bytes: as text when they are UTF-8, else base64; cut to ``max_bytes``.

    A cut original keeps its whole size and sha256, so it can still be matched with
    the producer's copy: a dead letter must fit one record, or it would stop its partition.
    """
    if original is None:
        return {"original": None, "original_encoding": "none"}
    payload: dict[str, Any] = {}
    if len(original) > max_bytes:
        payload = {"original_size": len(original), "original_sha256": hashlib.sha256(original).hexdigest()}
        payload["original_truncated"] = True
    kept = original[:max_bytes]
    try:
        # A cut may split the last character: only the whole original's encoding decides.
        text = kept.decode("utf-8", errors="ignore" if payload else "strict")
        if payload:
            original.decode("utf-8")
        payload.update(original=text, original_encoding="utf-8")
    except UnicodeDecodeError:
        payload.update(original=base64.b64encode(kept).decode("ascii"), original_encoding="base64")
    return payload
