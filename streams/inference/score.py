"""``social-streams score``: model output for texts, one JSON object per input."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from streams.inference.language import detect_language, is_supported
from streams.inference.moderation import Thresholds, decide, explain_flag
from streams.inference.session import Prediction, TextModel
from streams.records import moderation_of
from streams.settings import Settings


def text_of(line: str) -> str:
    """A JSONL line's ``text`` field, or the line itself."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return line.rstrip("\n")
        if isinstance(value, dict) and isinstance(value.get("text"), str):
            return str(value["text"])
    return line.rstrip("\n")


def scored(model: TextModel, text: str, prediction: Prediction, thresholds: Thresholds) -> dict[str, Any]:
    language = detect_language(text)
    supported = is_supported(language)
    scores = {head: result.scores for head, result in prediction.heads.items()}
    decision = explain_flag(model, text, decide(scores, thresholds, supported), prediction)
    return {
        "text": text,
        **{
            head: {"label": r.label, "scores": r.scores, "supported": supported} for head, r in prediction.heads.items()
        },
        "moderation": moderation_of(decision),
        "language": language,
        "explanation": [{"token": c.token, "weight": c.weight} for c in prediction.explanation],
        "tokens": prediction.tokens,
        "truncated": prediction.truncated,
    }


def _chunks(lines: Iterable[str], size: int) -> Iterable[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(text_of(line))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_stream(source: IO[str], sink: IO[str], model_dir: Path, settings: Settings, batch: int) -> int:
    model = TextModel(model_dir, settings.model_threads, settings.max_text_chars, device=settings.model_device)
    thresholds = Thresholds.resolve(model.manifest.thresholds, settings.review_threshold, settings.block_threshold)
    for texts in _chunks(source, batch):
        for text, prediction in zip(texts, model.predict(texts), strict=True):
            sink.write(orjson.dumps(scored(model, text, prediction, thresholds)).decode() + "\n")
    sink.flush()
    return 0
